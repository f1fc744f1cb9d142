"""Domain adaptation: pair loading, held-out splits, bad input, end to end on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simcse_rag.adapt import (
    LABELLED_LEARNING_RATE,
    PSEUDO_LEARNING_RATE,
    REPORT_JSON,
    REPORT_MD,
    AdaptConfig,
    EvalSet,
    adapt,
    check_output_dir,
    hold_out,
)
from simcse_rag.adapt_questions import LabelRule
from simcse_rag.data import TrainExample
from simcse_rag.mining import MiningConfig
from simcse_rag.pairs import TrainingPair, pairs_from_beir, pairs_from_tsv, split_queries
from simcse_rag.pseudo_queries import make_pseudo_queries
from simcse_rag.schema import Passage

TOPICS = [
    "fever aspirin dose tablet child",
    "insulin diabetes blood sugar dose",
    "asthma inhaler breath allergy throat",
    "rash skin allergy cream infection",
    "revenue income tax quarter profit",
    "bank loan interest rate debt",
    "stock share dividend equity fund",
    "cash asset liability total cost",
]


def synthetic_corpus(n: int = 40) -> list[Passage]:
    """Titled passages: each topic's words repeated with a varying second sentence."""
    out = []
    for i in range(n):
        words = TOPICS[i % len(TOPICS)].split()
        title = f"question {i} about {words[0]} and {words[1]}"
        body = (
            f"The {words[0]} answer {i} mentions {words[2]} often. "
            f"Patients and clients ask about {words[3]} and {words[4]} number {i}. "
            f"More detail on {words[1]} follows here."
        )
        out.append(Passage(f"d{i}", f"{title}\n{body}", {"title": title}))
    return out


def _beir(folder: Path, qrels_rows: list[tuple[str, str, int]], queries: dict[str, str]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels_rows]
    (folder / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- pairs
def test_pairs_from_beir_reads_relevant_rows(tmp_path: Path) -> None:
    corpus = {p.id: p for p in synthetic_corpus(10)}
    folder = _beir(
        tmp_path / "b",
        [("q1", "d1", 1), ("q1", "d2", 0), ("q2", "d3", 2)],
        {"q1": "fever in a child", "q2": "insulin dose"},
    )
    pairs = pairs_from_beir(folder, "train", corpus)
    assert [(p.query_id, p.positive_id) for p in pairs] == [("q1", "d1"), ("q2", "d3")]
    assert pairs[0].positive == corpus["d1"].text
    only = pairs_from_beir(folder, "train", corpus, query_ids=["q2"])
    assert [p.query_id for p in only] == ["q2"]


def test_pairs_from_beir_unknown_ids_are_counted_with_examples(tmp_path: Path) -> None:
    corpus = {p.id: p for p in synthetic_corpus(10)}
    folder = _beir(
        tmp_path / "b",
        [("q1", "d1", 1), ("q1", "nope1", 1), ("q2", "nope2", 1), ("q2", "nope3", 1)],
        {"q1": "fever", "q2": "insulin"},
    )
    with pytest.raises(ValueError, match=r"3 of 4 pairs .* unknown corpus ids .*'nope1'") as info:
        pairs_from_beir(folder, "train", corpus)
    assert str(info.value).endswith("; check that --corpus is the corpus these qrels point into.")


def test_pairs_from_beir_empty_query_and_missing_split(tmp_path: Path) -> None:
    corpus = {p.id: p for p in synthetic_corpus(10)}
    folder = _beir(tmp_path / "b", [("q1", "d1", 1)], {"q1": "   "})
    with pytest.raises(ValueError, match="empty"):
        pairs_from_beir(folder, "train", corpus)
    with pytest.raises(FileNotFoundError, match="splits in .*: train"):
        pairs_from_beir(folder, "test", corpus)


def test_pairs_from_tsv(tmp_path: Path) -> None:
    corpus = {p.id: p for p in synthetic_corpus(10)}
    path = tmp_path / "pairs.tsv"
    path.write_text(
        f"fever in kids\t{corpus['d0'].text.replace(chr(10), ' ')}\n"
        "some question\tan outside passage text\n"
        "fever in kids\tanother outside answer\n",
        encoding="utf-8",
    )
    pairs = pairs_from_tsv(path, corpus)
    assert [p.positive_id for p in pairs] == ["d0", "", ""]
    assert pairs[0].query_id == pairs[2].query_id != pairs[1].query_id

    ids = tmp_path / "ids.tsv"
    ids.write_text("query\tpassage_id\nq a\td1\nq b\tmissing\nq c\tgone\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"2 of 3 pairs .*'missing', 'gone'"):
        pairs_from_tsv(ids, corpus)

    bad = tmp_path / "bad.tsv"
    bad.write_text("fine\tpassage\nno tab on this line\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected"):
        pairs_from_tsv(bad, corpus)
    empty = tmp_path / "empty.tsv"
    empty.write_text("q\tp\n\tpassage\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty.tsv:2: the query is empty"):
        pairs_from_tsv(empty, corpus)


def test_split_queries_is_deterministic_and_disjoint() -> None:
    ids = [f"q{i}" for i in range(100)]
    train, held = split_queries(ids, eval_fraction=0.3, seed=1)
    assert len(held) == 30 and len(train) == 70
    assert not set(train) & set(held)
    assert split_queries(list(reversed(ids)), eval_fraction=0.3, seed=1) == (train, held)
    assert split_queries(ids, eval_fraction=0.3, seed=2)[1] != held
    with pytest.raises(ValueError, match="eval_fraction"):
        split_queries(ids, eval_fraction=1.0)


def test_hold_out_keeps_all_pairs_of_a_query_together() -> None:
    pairs = [TrainingPair(f"q{i // 2}", f"query {i // 2}", f"text {i}", f"d{i}") for i in range(40)]
    train, eval_set = hold_out(pairs, eval_fraction=0.25, seed=0, source="s")
    held = set(eval_set.qrels)
    assert held and not held & {p.query_id for p in train}
    assert all(len(docs) == 2 for docs in eval_set.qrels.values())
    assert len(train) + 2 * len(held) == 40


def test_hold_out_keeps_pseudo_queries_of_a_passage_together() -> None:
    pairs = [
        TrainingPair(f"pq:{strategy}:d{i}", f"{strategy} query {i}", f"text {i}", f"d{i}")
        for i in range(30)
        for strategy in ("title", "ict")
    ]
    train, eval_set = hold_out(pairs, eval_fraction=0.3, seed=0, source="s")
    held_passages = {d for docs in eval_set.qrels.values() for d in docs}
    assert held_passages and not held_passages & {p.positive_id for p in train}
    assert len(train) + len(eval_set.qrels) == 60


# --------------------------------------------------------------------------- adapt
def test_config_validation() -> None:
    with pytest.raises(ValueError, match="strategy"):
        AdaptConfig(strategy="gpt")
    with pytest.raises(ValueError, match="batch_size"):
        AdaptConfig(batch_size=1)
    with pytest.raises(TypeError, match="MiningConfig"):
        AdaptConfig(mining={"num_negatives": 2})  # type: ignore[arg-type]
    for bad in (0.0, -1e-4, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning_rate must be a positive number"):
            AdaptConfig(learning_rate=bad)
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="mini_batch_size must be a positive integer"):
            AdaptConfig(mini_batch_size=bad)


def test_too_small_corpus_is_a_clear_error(tiny_encoder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"corpus has 5 passages; mining 1 negatives needs"):
        adapt(
            synthetic_corpus(5),
            tiny_encoder,
            tmp_path / "out",
            config=AdaptConfig(strategy="title"),
        )
    assert not (tmp_path / "out").exists()


def test_corpus_only_needs_an_explicit_strategy(tiny_encoder, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"No labelled pairs given.*--strategy keywords\|title\|ict\|crop"
    ):
        adapt(synthetic_corpus(20), tiny_encoder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pairs_naming_unknown_passages(tiny_encoder, tmp_path: Path) -> None:
    pairs = [TrainingPair("q", "question", "text", "ghost")] * 3
    with pytest.raises(ValueError, match=r"1 training pairs name passages .*'ghost'"):
        adapt(synthetic_corpus(20), tiny_encoder, tmp_path / "out", pairs=pairs)


def test_check_output_dir_refuses_non_empty(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    assert check_output_dir(tmp_path / "m", overwrite=False) == tmp_path / "m"
    (tmp_path / "m" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_output_dir(tmp_path / "m", overwrite=False)
    assert check_output_dir(tmp_path / "m", overwrite=True) == tmp_path / "m"


def tiny_adapt_config() -> AdaptConfig:
    """Three steps of title pseudo-queries on :func:`synthetic_corpus` (40 passages): adapt end
    to end in seconds; shared with tests/gpu."""
    return AdaptConfig(
        strategy="title",
        max_steps=3,
        batch_size=8,
        learning_rate=1e-3,
        mining=MiningConfig(num_negatives=1, relative_margin=None),
        max_pairs=40,
    )


def test_adapt_end_to_end_tiny(tiny_model_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    before_weights = encoder.model.embeddings.word_embeddings.weight.detach().clone()
    corpus = synthetic_corpus(40)
    out = tmp_path / "adapted"
    result = adapt(corpus, encoder, out, config=tiny_adapt_config())
    report = json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))
    assert report == json.loads(json.dumps(result.report))
    assert set(report["before"]) == set(report["after"]) == {"dense", "bm25", "hybrid"}
    assert report["training"]["source"].startswith("pseudo-queries (title)")
    held = report["held_out"]
    assert held["queries"] == len(held["query_ids"]) == 12  # 30% of 40 pseudo-queries
    assert report["training"]["pairs"] == 28
    # BM25 does not depend on the model: identical before and after.
    assert report["before"]["bm25"] == report["after"]["bm25"]
    assert report["rounds"][0]["train"]["steps"] == 3
    assert report["rounds"][0]["mining"]["negatives_kept"] > 0
    assert "| dense |" in (out / REPORT_MD).read_text(encoding="utf-8")
    mined = [json.loads(x) for x in (out / "mined.jsonl").read_text().splitlines()]
    assert len(mined) == 28 and all(m["negatives"] for m in mined)
    assert all(n["id"] != m["positive_id"] for m in mined for n in m["negatives"])
    # The output is a model folder both loaders accept, with trained weights.
    reloaded = SimCSEEncoder.from_pretrained(out, device="cpu")
    assert not np.allclose(
        reloaded.model.embeddings.word_embeddings.weight.detach().numpy(),
        before_weights.numpy(),
    )
    st = SentenceTransformer(str(out), device="cpu")
    texts = ["fever aspirin dose", "bank loan interest"]
    np.testing.assert_allclose(
        st.encode(texts, normalize_embeddings=True), reloaded.encode(texts), atol=1e-5
    )
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp leftovers


def test_adapt_with_eval_set_never_trains_on_eval_queries(restored_encoder, tmp_path: Path) -> None:
    corpus = synthetic_corpus(24)
    pairs = [
        TrainingPair(f"q{i}", f"about {TOPICS[i % 8]}", corpus[i].text, f"d{i}") for i in range(24)
    ]
    eval_set = EvalSet(
        {"q0": pairs[0].query, "e1": "bank loan"}, {"q0": {"d0": 1}, "e1": {"d5": 1}}
    )
    config = AdaptConfig(max_steps=1, batch_size=4, mining=MiningConfig(num_negatives=1))
    result = adapt(
        corpus, restored_encoder, tmp_path / "o", config=config, pairs=pairs, eval_set=eval_set
    )
    # q0 (same id) and q8, q16 (same text as q0) are excluded from training.
    assert result.report["training"]["pairs"] == 21
    assert result.report["held_out"]["query_ids"] == ["e1", "q0"]


def test_refuses_to_overwrite_and_keeps_existing_model(tiny_encoder, tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        adapt(synthetic_corpus(20), tiny_encoder, out)
    assert (out / "model.safetensors").read_bytes() == b"precious"


def test_adaptation_warnings() -> None:
    from simcse_rag.adapt import adaptation_warnings

    before = {"dense": {"ndcg@10": 0.44}, "bm25": {"ndcg@10": 0.5}, "hybrid": {"ndcg@10": 0.53}}
    worse = {"dense": {"ndcg@10": 0.25}, "bm25": {"ndcg@10": 0.5}, "hybrid": {"ndcg@10": 0.54}}
    warnings = adaptation_warnings(before, worse, pseudo_eval=False)
    assert warnings == [
        "dense nDCG@10 fell from 44.0 to 25.0 on the evaluation queries: rerun with "
        "--merge-weight 0.5 to keep more of the base model, or keep the base model for this corpus"
    ]
    # A run that already merged at 0.5 or below (pseudo-queries: 0.3) gets no merge advice.
    assert adaptation_warnings(before, worse, pseudo_eval=False, merge_weight=0.3) == [
        "dense nDCG@10 fell from 44.0 to 25.0 on the evaluation queries: keep the base model "
        "for this corpus"
    ]
    assert adaptation_warnings(before, before, pseudo_eval=False) == []
    pseudo = adaptation_warnings(before, before, pseudo_eval=True)
    assert len(pseudo) == 1 and "--eval-data" in pseudo[0]


def _topic_pairs(corpus: list[Passage]) -> list[TrainingPair]:
    """One labelled pair per passage of ``synthetic_corpus``."""
    return [
        TrainingPair(f"q{i}", f"about {TOPICS[i % 8]}", p.text, p.id) for i, p in enumerate(corpus)
    ]


@pytest.mark.parametrize("labelled", [False, True])
def test_pseudo_query_negatives_are_bodies_like_their_positives(
    tiny_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labelled: bool
) -> None:
    import simcse_rag.adapt_rounds as rounds_module

    corpus = synthetic_corpus(24)
    titles = {p.metadata["title"] for p in corpus}
    seen: list[TrainExample] = []

    def fake_round(encoder, examples, *args, **kwargs):  # noqa: ANN001, ANN202 - records only
        seen.extend(examples)
        return {"steps": 0, "first_loss": None, "final_loss": None, "seconds": 0.0}

    monkeypatch.setattr(rounds_module, "train_round", fake_round)
    pairs = _topic_pairs(corpus) if labelled else None
    config = AdaptConfig(strategy="title", max_steps=1, batch_size=4)
    adapt(corpus, tiny_encoder, tmp_path / "o", config=config, pairs=pairs)
    negatives = [n for example in seen for n in example.negatives]
    positives = [example.positive for example in seen]
    assert negatives and positives
    starts_with_title = [any(t.startswith(title) for title in titles) for t in negatives]
    # Pseudo-queries: positive and negatives are bodies. Labelled: whole passages, both sides.
    assert all(starts_with_title) if labelled else not any(starts_with_title)
    assert all(any(p.startswith(title) for title in titles) == labelled for p in positives)


@pytest.mark.parametrize("strategy", ["crop", "ict", "keywords"])
def test_pseudo_query_negatives_take_their_strategys_form(strategy: str) -> None:
    from simcse_rag.adapt_rounds import training_examples
    from simcse_rag.mining import MinedExample, MinedNegative, MiningResult
    from simcse_rag.pseudo_queries import split_sentences

    corpus = [
        Passage(
            f"d{i}",
            " ".join(f"Sentence {j} of passage {i} talks about topic{i}x{j}." for j in range(8)),
            {},
        )
        for i in range(4)
    ]
    pairs = make_pseudo_queries(corpus, strategy=strategy, seed=0)
    negatives = tuple(MinedNegative(p.id, p.text, 0.5, r) for r, p in enumerate(corpus[1:], 1))
    labelled = TrainingPair("q0", "what about topic0x1", corpus[0].text, "d0")
    mined = MiningResult(
        [
            MinedExample(p.query_id, p.query, p.positive_id, p.positive, 0.9, negatives)
            for p in (pairs[0], labelled)
        ],
        {},
        0,
        0,
    )
    pseudo, labelled_example = training_examples(mined, [pairs[0], labelled], corpus, seed=0)
    pseudo_negs, labelled_negs = pseudo.negatives, labelled_example.negatives
    assert labelled_negs == tuple(p.text for p in corpus[1:])  # labelled pairs: whole passages
    for neg, passage in zip(pseudo_negs, corpus[1:], strict=True):
        if strategy == "crop":  # a span, like the crop positives
            assert neg in passage.text and len(neg) < len(passage.text)
        elif strategy == "ict":  # one sentence fewer, like the ICT positives
            assert len(split_sentences(neg)) == len(split_sentences(passage.text)) - 1
        else:
            assert neg == passage.text


def test_merge_with_base_interpolates_weights(tiny_model_dir: Path) -> None:
    import torch

    from simcse_rag.adapt import base_weights, merge_with_base
    from simcse_rag.encoder import SimCSEEncoder

    # A private encoder: the session's tiny_encoder must not be shifted for other tests.
    tiny_encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    base = base_weights(tiny_encoder)
    name = next(iter(base))
    with torch.no_grad():
        for tensor in tiny_encoder.model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(1.0)  # "fine-tuned": every weight moved by +1
    merge_with_base(tiny_encoder, base, 0.25)
    merged = tiny_encoder.model.state_dict()[name]
    torch.testing.assert_close(merged, base[name] + 0.25)
    merge_with_base(tiny_encoder, base, 1.0)  # weight 1 keeps the current weights
    torch.testing.assert_close(tiny_encoder.model.state_dict()[name], base[name] + 0.25)


@pytest.mark.parametrize("labelled", [False, True])
def test_pseudo_query_and_labelled_runs_get_their_own_merge_weight_and_learning_rate(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labelled: bool
) -> None:
    import simcse_rag.adapt_rounds as rounds_module
    from simcse_rag.encoder import SimCSEEncoder

    # adapt() trains in place: a private encoder keeps the session's tiny_encoder unchanged.
    tiny_encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")

    calls: list[float] = []
    monkeypatch.setattr(rounds_module, "merge_with_base", lambda enc, base, w: calls.append(w))
    corpus = synthetic_corpus(24)
    pairs = _topic_pairs(corpus) if labelled else None
    config = AdaptConfig(strategy="title", max_steps=1, batch_size=4)
    result = adapt(corpus, tiny_encoder, tmp_path / "o", config=config, pairs=pairs)
    assert result.report["training"]["merge_weight"] == (1.0 if labelled else 0.3)
    assert calls == ([] if labelled else [0.3])
    lr = LABELLED_LEARNING_RATE if labelled else PSEUDO_LEARNING_RATE
    assert result.report["training"]["learning_rate"] == lr
    assert result.report["rounds"][0]["train"]["training_config"]["learning_rate"] == lr
    # Training runs in GradCache chunks (peak memory of one chunk's activations).
    assert result.report["rounds"][0]["train"]["training_config"]["mini_batch_size"] == 16
    report_md = (tmp_path / "o" / "report.md").read_text(encoding="utf-8")
    assert ("merged with the base model's at 0.3" in report_md) is not labelled
    assert f"peak learning rate: {lr:g}" in report_md
    with pytest.raises(ValueError, match="merge_weight"):
        AdaptConfig(merge_weight=0.0)


@pytest.mark.parametrize(
    ("source", "range_max", "skipped"),
    [
        ("pseudo", 50, 6),  # a tenth of the 60 passages, less than pseudo_range_min=8
        ("labelled", 50, 0),  # labelled pairs mine as configured
        ("pseudo", 4, 3),  # the window (range_min, 4] keeps room for the one negative
        ("queries", 50, 6),  # labels the base retriever guessed: as pseudo-queries
        ("generated", 50, 0),  # generated questions mine as configured
    ],
)
def test_pseudo_queries_and_guessed_labels_skip_their_best_ranked_candidates(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    range_max: int,
    skipped: int,
) -> None:
    import simcse_rag.adapt_rounds as rounds_module
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    seen: list[MiningConfig] = []
    real = rounds_module.mine_with_retriever

    def spy(retriever, pairs, config):  # noqa: ANN001, ANN202
        seen.append(config)
        return real(retriever, pairs, config)

    monkeypatch.setattr(rounds_module, "mine_with_retriever", spy)
    corpus = synthetic_corpus(60)
    sources = {
        "labelled": {"pairs": _topic_pairs(corpus)},
        "queries": {"queries": [p.text.split("\n")[1] for p in corpus]},
        "generated": {
            "generated": [TrainingPair(f"g{p.id}", p.text, p.text, p.id) for p in corpus]
        },
    }
    mining = MiningConfig(num_negatives=1, range_max=range_max)
    config = AdaptConfig(
        strategy="title",
        max_steps=1,
        batch_size=4,
        pseudo_range_min=8,
        mining=mining,
        label_rule=LabelRule(max_leg_rank=None),  # the tiny model's ranking: trust every label
        round_trip_model="base",
    )
    result = adapt(corpus, encoder, tmp_path / "o", config=config, **sources.get(source, {}))
    assert [c.range_min for c in seen] == [skipped]
    stats = result.report["rounds"][0]["mining"]
    assert stats["range_min"] == skipped
    if skipped:  # candidates ranked 1..skipped were passed over (the positive is one of them)
        assert stats["removed"]["rank_window"] > 0


def test_pseudo_range_min_is_checked() -> None:
    with pytest.raises(ValueError, match="pseudo_range_min must be an integer >= 0, got -1"):
        AdaptConfig(pseudo_range_min=-1)
    with pytest.raises(ValueError, match="pseudo_range_min must be an integer >= 0, got True"):
        AdaptConfig(pseudo_range_min=True)
    # A narrow rank window for labelled pairs is no error: the pseudo skip shrinks to fit it.
    assert AdaptConfig(mining=MiningConfig(num_negatives=1, range_max=10)).pseudo_range_min == 10


# --------------------------------------------------------------------------- pipeline stages
def test_rounds_train_in_memory_with_no_work_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    beside_out: dict[str, list[str]] = {}

    def on_stage(message: str) -> None:  # what sits next to the output as each stage starts
        beside_out[message] = sorted(p.name for p in tmp_path.iterdir())

    config = AdaptConfig(strategy="title", max_steps=2, batch_size=4, rounds=2)
    adapt(synthetic_corpus(24), encoder, tmp_path / "o", config=config, on_stage=on_stage)
    after_training = [m for m in beside_out if "with the adapted model" in m]
    assert len(after_training) == 2
    assert all(beside_out[m] == [] for m in after_training), beside_out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_encode_stages_use_the_encode_limit_and_always_restore_the_model_limit(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    own = encoder.max_length
    assert own != 8
    limits: dict[str, int] = {}

    def record(message: str) -> None:
        limits[message] = encoder.max_length

    config = AdaptConfig(strategy="title", max_steps=1, batch_size=4, encode_max_length=8)
    adapt(synthetic_corpus(24), encoder, tmp_path / "o", config=config, on_stage=record)
    # Pairs, base encoding, mining, fine-tuning, adapted encoding: all but the first encode.
    assert len(limits) == 5 and limits.pop("making training pairs") == own
    assert set(limits.values()) == {8}
    assert encoder.max_length == own

    def fail_in_base_encoding(message: str) -> None:
        if "with the base model" in message:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        adapt(
            synthetic_corpus(24),
            encoder,
            tmp_path / "o2",
            config=config,
            on_stage=fail_in_base_encoding,
        )
    assert encoder.max_length == own
    assert not (tmp_path / "o2").exists()


def test_prepare_pairs_refuses_corpus_only_without_a_strategy() -> None:
    from simcse_rag.adapt import CORPUS_ONLY_REFUSAL, prepare_pairs

    with pytest.raises(ValueError) as info:
        prepare_pairs(synthetic_corpus(20), AdaptConfig())
    assert str(info.value) == CORPUS_ONLY_REFUSAL
    prepared = prepare_pairs(synthetic_corpus(20), AdaptConfig(strategy="title"))
    assert prepared.pseudo and prepared.pseudo_eval
    assert not {p.query_id for p in prepared.train} & set(prepared.eval_set.qrels)
