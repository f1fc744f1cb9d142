"""Every cookbook recipe runs with ``--tiny`` (tiny model, few steps) and documents itself."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

COOKBOOK = Path(__file__).resolve().parents[1] / "cookbook"
RECIPES = sorted(p.name for p in COOKBOOK.glob("[0-9][0-9]_*.py"))

#: A line each recipe must print when it worked.
EXPECTED = {
    "01_hybrid_search_quickstart.py": "loaded back: same hits = True",
    "02_langchain_rag_chain.py": "   source ",
    "03_llamaindex_query_engine.py": "persisted and reloaded:",
    "04_adapt_medical.py": "| hybrid |",
    "05_adapt_financial.py": "| hybrid |",
    "06_chinese_medical_search.py": "| BM25, whitespace tokens |",
    "07_evaluate_beir.py": "| your retriever (rank_bm25) |",
    "09_adapt_from_an_llm.py": "| hybrid |",
}

#: What a recipe must tell the reader about its stand-ins when run with ``--tiny``.
TINY_NOTES = {
    "02_langchain_rag_chain.py": "fake chat model standing in for your LLM",
    "04_adapt_medical.py": "[--tiny: random weights, the numbers mean nothing]",
    "09_adapt_from_an_llm.py": "[--tiny: random weights, the numbers mean nothing]",
}


def test_every_recipe_is_listed() -> None:
    assert sorted(EXPECTED) == RECIPES
    readme = (COOKBOOK / "README.md").read_text(encoding="utf-8")
    for name in RECIPES:
        assert name in readme


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_documents_itself(name: str) -> None:
    doc = ast.get_docstring(ast.parse((COOKBOOK / name).read_text(encoding="utf-8")))
    assert doc and doc.startswith(name[:2])
    assert "Shows:" in doc and "Time:" in doc and "--tiny" in doc


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_tiny(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    temp = tmp_path / "tmp"
    temp.mkdir()
    env["TMPDIR"] = str(temp)
    proc = subprocess.run(
        [sys.executable, str(COOKBOOK / name), "--tiny"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert EXPECTED[name] in proc.stdout, proc.stdout[-3000:]
    assert TINY_NOTES.get(name, "") in proc.stdout, proc.stdout[-3000:]
    # Models are removed at the end (tool caches may stay).
    models = [p for p in temp.rglob("*") if p.suffix in (".safetensors", ".onnx", ".bin")]
    assert not models, models[:5]
