"""Pseudo-queries from a corpus: title -> body, ICT, crops; English and Chinese; seeded."""

from __future__ import annotations

import pytest

from simcse_rag.pairs import TrainingPair
from simcse_rag.pseudo_queries import (
    choose_strategy,
    make_pseudo_queries,
    passage_title,
    pseudo_query_pairs,
    query_length,
    split_sentences,
)
from simcse_rag.schema import Passage

EN = (
    "Aspirin reduces fever and mild pain in adults. It should not be given to children with "
    "viral infections! Ask a doctor before long-term use? Take it with food to protect the stomach."
)
ZH = (
    "阿司匹林可以退烧和缓解轻度疼痛。儿童病毒感染时不应服用阿司匹林！"
    "长期服用前请咨询医生？随餐服用可以保护胃部。"
)


def _corpus(n: int = 6, titled: bool = False) -> list[Passage]:
    out = []
    for i in range(n):
        title = f"What is drug number {i} used for" if titled else ""
        text = f"{title}\n{EN} Extra sentence number {i} is here." if titled else f"{EN} Note {i}."
        out.append(Passage(f"p{i}", text, {"title": title} if titled else {}))
    return out


def test_split_sentences_english_and_chinese() -> None:
    assert split_sentences(EN) == [
        "Aspirin reduces fever and mild pain in adults.",
        "It should not be given to children with viral infections!",
        "Ask a doctor before long-term use?",
        "Take it with food to protect the stomach.",
    ]
    assert split_sentences(ZH) == [
        "阿司匹林可以退烧和缓解轻度疼痛。",
        "儿童病毒感染时不应服用阿司匹林！",
        "长期服用前请咨询医生？",
        "随餐服用可以保护胃部。",
    ]
    assert split_sentences("first line\n\nsecond line") == ["first line", "second line"]


def test_title_strategy_uses_title_as_query_and_body_as_positive() -> None:
    pairs = make_pseudo_queries(_corpus(titled=True), strategy="title")
    assert len(pairs) == 6
    for pair in pairs:
        assert pair.query.startswith("What is drug number")
        assert pair.query not in pair.positive  # the title is stripped from the body
        assert pair.positive_id == f"p{pair.query.split()[-3]}"


def test_ict_query_is_a_removed_sentence() -> None:
    corpus = _corpus()
    pairs = make_pseudo_queries(corpus, strategy="ict", seed=1)
    assert len(pairs) == len(corpus)
    texts = {p.id: p.text for p in corpus}
    for pair in pairs:
        assert pair.query in split_sentences(texts[pair.positive_id])
        assert pair.query not in pair.positive


def test_ict_works_for_chinese() -> None:
    corpus = [Passage(f"z{i}", ZH + f"第{i}条补充说明很重要。", {}) for i in range(4)]
    pairs = make_pseudo_queries(corpus, strategy="ict", seed=0)
    assert len(pairs) == 4
    for pair in pairs:
        assert pair.query.endswith(("。", "！", "？"))
        assert pair.query not in pair.positive


def test_crop_spans_come_from_the_passage() -> None:
    corpus = _corpus()
    pairs = make_pseudo_queries(corpus, strategy="crop", seed=2)
    texts = {p.id: p.text for p in corpus}
    for pair in pairs:
        assert pair.query in texts[pair.positive_id]
        assert pair.positive in texts[pair.positive_id]
        assert len(pair.query.split()) <= 32
    zh = [Passage("z", ZH * 2, {})]
    (pair,) = make_pseudo_queries(zh, strategy="crop", seed=0)
    assert pair.query in ZH * 2 and " " not in pair.query


def test_deterministic_with_seed_and_max_pairs() -> None:
    corpus = _corpus(20)
    a = make_pseudo_queries(corpus, strategy="ict", seed=5, max_pairs=7)
    b = make_pseudo_queries(corpus, strategy="ict", seed=5, max_pairs=7)
    c = make_pseudo_queries(corpus, strategy="ict", seed=6, max_pairs=7)
    assert a == b
    assert len(a) == 7
    assert a != c


def test_auto_picks_title_when_titled() -> None:
    assert choose_strategy(_corpus(titled=True)) == "title"
    assert choose_strategy(_corpus()) == "ict"
    assert passage_title(_corpus(titled=True)[0])[0] == "What is drug number 0 used for"


def test_errors() -> None:
    with pytest.raises(ValueError, match="Unknown pseudo-query strategy"):
        make_pseudo_queries(_corpus(), strategy="llm")
    with pytest.raises(ValueError, match="No passage yields"):
        make_pseudo_queries([Passage("a", "short", {})], strategy="ict")
    with pytest.raises(ValueError, match="No passage yields"):
        make_pseudo_queries(_corpus(), strategy="title")


def test_chinese_titles_are_not_dropped_as_too_short() -> None:
    body = "发烧是儿童最常见的症状之一，体温超过三十八度时应及时就医。"
    passages = [
        Passage("zh1", f"儿童发烧怎么办\n{body}", {"title": "儿童发烧怎么办"}),  # 7 characters
        Passage("zh2", f"发烧\n{body}", {"title": "发烧"}),  # 2 characters: too short
        Passage("en1", f"Fever\n{EN}", {"title": "Fever"}),  # 5 characters: too short
    ]
    pairs = make_pseudo_queries(passages, strategy="title")
    assert [p.query for p in pairs] == ["儿童发烧怎么办"]
    assert query_length("儿童发烧怎么办") == 21 and query_length("Fever") == 5


def test_pair_ids_name_the_strategy() -> None:
    from simcse_rag.pseudo_queries import pseudo_query_strategy

    for strategy in ("ict", "crop", "keywords"):
        pairs = make_pseudo_queries(_varied(), strategy=strategy, seed=0)
        assert pairs and all(p.query_id == f"pq:{strategy}:{p.positive_id}" for p in pairs)
        assert {pseudo_query_strategy(p) for p in pairs} == {strategy}
    assert pseudo_query_strategy(TrainingPair("q1", "a query", "a passage", "p1")) is None


def test_negative_view_matches_the_positive_form() -> None:
    import random

    from simcse_rag.pseudo_queries import negative_view

    (titled,) = _corpus(1, titled=True)
    title, body = passage_title(titled)
    for strategy in ("title", "keywords"):
        assert negative_view(titled, strategy, random.Random(0)) == body
    ict = negative_view(titled, "ict", random.Random(0))
    kept = split_sentences(ict)
    assert len(kept) == len(split_sentences(body)) - 1 and set(kept) < set(split_sentences(body))
    crop = negative_view(titled, "crop", random.Random(0))
    assert crop in " ".join(body.split()) and len(crop.split()) < len(body.split())
    assert not crop.startswith(title)


def _varied(n: int = 10) -> list[Passage]:
    return [
        Passage(f"p{i}", f"{EN} Dosage table {i}: ibuprofen{i} naproxen{i} codeine{i} 200 mg.", {})
        for i in range(n)
    ]


def test_keyword_queries_are_rare_words_of_their_passage() -> None:
    corpus = _varied()
    pairs = make_pseudo_queries(corpus, strategy="keywords", seed=3)
    assert len(pairs) == 10
    texts = {p.id: p.text for p in corpus}
    for pair in pairs:
        words = pair.query.split()
        assert 3 <= len(words) <= 6
        assert all(w in texts[pair.positive_id] for w in words)
        assert not any(w.isdigit() for w in words)  # values are what queries ask for
        # Words shared by every passage carry no signal and are never picked.
        assert "Aspirin" not in words and "stomach" not in words
    drugs = ["布洛芬", "萘普生", "对乙酰氨基酚", "可待因", "吗啡", "曲马多", "双氯芬酸", "塞来昔布"]
    ills = ["偏头痛", "关节炎", "牙痛", "痛风", "感冒", "腰痛", "肩周炎", "痛经"]
    zh = [
        Passage(f"z{i}", ZH + f"{d}治疗{ill}的剂量。", {})
        for i, (d, ill) in enumerate(zip(drugs, ills, strict=True))
    ]
    zh_pairs = make_pseudo_queries(zh, strategy="keywords", seed=0)
    assert len(zh_pairs) == len(zh)
    for pair in zh_pairs:
        assert " " not in pair.query and "阿司匹林" not in pair.query
        assert any(w in pair.query for w in drugs + ills)


def test_keyword_document_frequency_counts_a_passage_once_whatever_the_case() -> None:
    # "Zeta" opens a sentence and recurs as "zeta": still two passages of ten (the 20% cap).
    # Counting case variants separately gave it document frequency 4, so it was never picked.
    # Each of p0/p1 has exactly three candidate words, and a query takes at least three.
    filler = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]
    corpus = [Passage(f"p{i}", "Zeta stream. The zeta value.", {}) for i in range(2)] + [
        Passage(f"q{i}", f"Common {w}{i} and {filler[(i + 1) % 8]}{i} appear here.", {})
        for i, w in enumerate(filler)
    ]
    pairs = {p.positive_id: p for p in make_pseudo_queries(corpus, strategy="keywords", seed=0)}
    assert pairs["p0"].query == "Zeta stream value" == pairs["p1"].query


# --------------------------------------------------------------------------- pseudo_query_pairs
@pytest.fixture(scope="module")
def sample():
    from simcse_rag.demo import load_sample

    return load_sample()


def test_pseudo_query_pairs_use_titles_and_sentences(sample) -> None:
    pairs, source = pseudo_query_pairs(sample.corpus)
    assert source == "pseudo-queries (title + ict) from the corpus"
    texts = [" ".join(p.query.split()).lower() for p in pairs]
    assert len(texts) == len(set(texts))
    ids = {p.id for p in sample.corpus}
    assert {p.positive_id for p in pairs} <= ids
    titles = {p.metadata["title"] for p in sample.corpus}
    assert any(p.query in titles for p in pairs) and any(p.query not in titles for p in pairs)
    # Chinese passages contribute too (their titles are often too short to be kept).
    assert sum(p.positive_id.startswith("zh-") for p in pairs) >= len(ids) // 4
    # A title may equal a judged query (疱疹性咽峡炎); adapt() drops such pairs before training
    # (test_adapt_with_eval_set_never_trains_on_eval_queries), and the bundled demo trains on
    # medical_faq_train.tsv instead.
    judged = {" ".join(t.split()).lower() for t in sample.queries.values()}
    assert set(texts) & judged <= {"疱疹性咽峡炎"}


def test_pseudo_query_pairs_fall_back_to_crops(tmp_path) -> None:
    from simcse_rag.corpus import read_corpus

    path = tmp_path / "lines.txt"
    path.write_text(
        "\n".join(f"line {i} has eight or more plain words without any stop" for i in range(5)),
        encoding="utf-8",
    )
    pairs, source = pseudo_query_pairs(read_corpus(path))
    assert source == "pseudo-queries (crop) from the corpus"
    assert 1 <= len(pairs) <= 5 and {p.positive_id for p in pairs} <= {"1", "2", "3", "4", "5"}
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="--no-adapt"):
        pseudo_query_pairs(read_corpus(tiny))
