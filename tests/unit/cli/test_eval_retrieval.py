"""``simcse-rag eval retrieval``: on a saved index (--index), and with an embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simcse_rag.cli import main
from tests.unit.test_adapt import synthetic_corpus

METRICS = ("ndcg@10", "recall@100", "mrr@10", "queries")


def _write_corpus(path: Path, passages: list) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for p in passages:
            title, body = p.text.split("\n", 1)
            fh.write(json.dumps({"_id": p.id, "title": title, "text": body}) + "\n")
    return path


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 titled passages, one judged question per passage."""
    folder = tmp_path_factory.mktemp("beir")
    (folder / "qrels").mkdir()
    passages = synthetic_corpus(20)
    _write_corpus(folder / "corpus.jsonl", passages)
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for p in passages:
            fh.write(json.dumps({"_id": f"q{p.id}", "text": p.metadata["title"]}) + "\n")
    rows = "".join(f"q{p.id}\t{p.id}\t1\n" for p in passages)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def _build(corpus: Path, out: Path, model: Path, *extra: str) -> None:
    args = ["index", "build", "--corpus", str(corpus), "--out", str(out), "--model", str(model)]
    assert main([*args, "--no-progress", *extra]) == 0


def _eval(capsys: pytest.CaptureFixture[str], beir: Path, *extra: str) -> dict:
    args = ["eval", "retrieval", "--data", str(beir), "--json", "--no-progress", *extra]
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_index_gives_the_same_metrics_and_takes_query_options(
    beir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(tiny_model_dir)
    idx = tmp_path / "idx"
    _build(beir / "corpus.jsonl", idx, tiny_model_dir, "--query-backend", "torch")
    built = _eval(capsys, beir, "--model", model, "--query-backend", "torch")
    loaded = _eval(capsys, beir, "--index", str(idx))
    assert {m: loaded[m] for m in METRICS} == {m: built[m] for m in METRICS}
    assert built["encoded"] == 20 and loaded["encoded"] == 0 and loaded["extra_passages"] == 0
    assert loaded["index"] == str(idx) and built["index"] is None

    # Query-time options apply to the loaded index as they do to a fresh one.
    options = ["--dense-weight", "0", "--rrf-k", "5"]
    built_bm25 = _eval(capsys, beir, "--model", model, "--query-backend", "torch", *options)
    loaded_bm25 = _eval(capsys, beir, "--index", str(idx), *options)
    assert {m: loaded_bm25[m] for m in METRICS} == {m: built_bm25[m] for m in METRICS}
    assert built_bm25["ndcg@10"] != built["ndcg@10"]  # the options did change the ranking

    # The index's own model is used; another one is refused by its fingerprint.
    from simcse_rag.testing import build_tiny_bert

    other = build_tiny_bert(tmp_path / "other", seed=3)
    args = ["eval", "retrieval", "--data", str(beir), "--index", str(idx)]
    assert "fingerprint" in _error(capsys, *args, "--model", str(other))


def test_index_missing_or_changed_passages_are_refused(
    beir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passages = synthetic_corpus(20)
    args = ["eval", "retrieval", "--data", str(beir), "--query-backend", "torch"]

    partial = tmp_path / "partial"
    _build(_write_corpus(tmp_path / "c1.jsonl", passages[2:]), partial, tiny_model_dir)
    err = _error(capsys, *args, "--index", str(partial))
    assert "lacks 2 of the 20 corpus passages" in err and "['d0', 'd1']" in err
    assert "simcse-rag index build" in err

    changed = tmp_path / "changed"
    passages[5] = type(passages[5])("d5", "new title\nnew text", {})
    _build(_write_corpus(tmp_path / "c2.jsonl", passages), changed, tiny_model_dir)
    assert "1 corpus passages" in _error(capsys, *args, "--index", str(changed))

    # Extra passages are allowed, counted and noted.
    larger = tmp_path / "larger"
    _build(_write_corpus(tmp_path / "c3.jsonl", synthetic_corpus(23)), larger, tiny_model_dir)
    assert main([*args, "--index", str(larger), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "extra_passages: 3" in captured.out
    assert "3 passages beyond the corpus" in captured.err


def test_index_refuses_build_options_that_contradict_it(
    beir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    idx = tmp_path / "idx"
    _build(beir / "corpus.jsonl", idx, tiny_model_dir, "--tokenizer", "en")
    args = ["eval", "retrieval", "--data", str(beir), "--index", str(idx)]
    err = _error(capsys, *args, "--tokenizer", "zh")
    assert "--tokenizer zh contradicts" in err and "built with --tokenizer en" in err
    assert "--dense-index hnsw contradicts" in _error(capsys, *args, "--dense-index", "hnsw")
    assert "--cache-dir" in _error(capsys, *args, "--cache-dir", str(tmp_path / "cache"))
    # Options that match the index are fine.
    _eval(capsys, beir, "--index", str(idx), "--tokenizer", "en", "--query-backend", "torch")


def test_cache_dir_makes_the_second_run_encode_nothing(
    beir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--model", str(tiny_model_dir), "--query-backend", "torch"]
    args += ["--cache-dir", str(tmp_path / "cache")]
    first = _eval(capsys, beir, *args)
    second = _eval(capsys, beir, *args)
    assert first["encoded"] == 20 and first["reused"] == 0
    assert second["encoded"] == 0 and second["reused"] == 20
    assert {m: second[m] for m in METRICS} == {m: first[m] for m in METRICS}
