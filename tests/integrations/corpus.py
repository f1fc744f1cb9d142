"""A small mixed English / Chinese corpus for the adapter tests (distinct token counts)."""

from __future__ import annotations

#: (id, text, metadata); the Chinese passages exercise jieba tokenization in BM25.
CORPUS: list[tuple[str, str, dict]] = [
    ("med-1", "Fever in children above 38.5 degrees needs a doctor.", {"domain": "medical"}),
    ("med-2", "Insulin dose depends on blood sugar and diet.", {"domain": "medical"}),
    ("med-3", "儿童发烧超过三天应该去医院检查。", {"domain": "medical", "lang": "zh"}),
    ("med-4", "糖尿病患者需要按时注射胰岛素。", {"domain": "medical", "lang": "zh"}),
    (
        "fin-1",
        "Dividend income is taxed at the marginal shareholder tax rate.",
        {"domain": "finance"},
    ),
    ("fin-2", "The bank raised the loan interest rate this quarter.", {"domain": "finance"}),
    ("fin-3", "银行本季度上调了贷款利率。", {"domain": "finance", "lang": "zh"}),
]
