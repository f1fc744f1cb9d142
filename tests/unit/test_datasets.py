"""The one BEIR reader: one exception and one wording per mistake, from every entry point."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from simcse_rag.cli import main
from simcse_rag.datasets import (
    BeirData,
    MissingFileError,
    MissingSplitError,
    QuerySet,
    available_splits,
    load_beir,
    load_queries,
    load_query_set,
    qrels_file,
)
from simcse_rag.pairs import pairs_from_beir
from simcse_rag.schema import Passage

QRELS_HEADER = "query-id\tcorpus-id\tscore\n"


def write_beir(
    folder: Path,
    *,
    qrels: str = "q1\td1\t2\nq2\td2\t0\n",
    queries: list[str] | None = None,
    split: str = "test",
) -> Path:
    """Two passages, three queries (q3 unjudged), one qrels split."""
    (folder / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Fever", "text": "High temperature."},
        {"_id": "d2", "text": "Tax."},
    ]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in corpus), encoding="utf-8"
    )
    if queries is None:
        queries = [
            json.dumps({"_id": q, "text": t})
            for q, t in [("q1", "fever"), ("q2", "tax"), ("q3", "x")]
        ]
    (folder / "queries.jsonl").write_text("".join(q + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels" / f"{split}.tsv").write_text(QRELS_HEADER + qrels, encoding="utf-8")
    return folder


def cli_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run the CLI, expect a user error, return the one ``error:`` line's message."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err.removeprefix("error: ")


def one_line(exc: BaseException) -> str:
    """The message as the CLI prints it (whitespace folded)."""
    return " ".join(str(exc).split())


def eval_args(folder: Path, split: str) -> list[str]:
    return ["eval", "retrieval", "--data", str(folder), "--split", split, "--no-progress"]


def adapt_args(folder: Path, out: Path, model: Path, split: str) -> list[str]:
    corpus = folder / "corpus.jsonl"
    return [
        "adapt", "--corpus", str(corpus), "--out", str(out), "--model", str(model),
        "--device", "cpu", "--eval-data", str(folder), "--eval-split", split, "--no-progress",
    ]  # fmt: skip


CORPUS = {"d1": Passage("d1", "Fever\nHigh temperature."), "d2": Passage("d2", "Tax.")}


# --------------------------------------------------------------------------- missing split
def test_missing_split_is_one_exception_with_one_wording_from_every_reader(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir")
    readers = {
        "qrels_file": lambda: qrels_file(folder, "nope"),
        "load_query_set": lambda: load_query_set(folder, "nope"),
        "load_beir": lambda: load_beir(folder, "nope"),
        "pairs_from_beir": lambda: pairs_from_beir(folder, "nope", CORPUS),
    }
    messages = {}
    for name, read in readers.items():
        with pytest.raises(MissingSplitError) as info:
            read()
        # Callers written against either of the old exception types still catch it.
        assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
        messages[name] = str(info.value)
    assert len(set(messages.values())) == 1, messages
    message = messages["load_beir"]
    assert "'nope'" in message and str(folder / "qrels" / "nope.tsv") in message
    assert "available splits: ['test']" in message and message.endswith(": test.")


def test_missing_split_cli_eval_retrieval_and_adapt_say_the_same(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_beir(tmp_path / "beir")
    with pytest.raises(MissingSplitError) as info:
        load_beir(folder, "nope")
    expected = one_line(info.value)
    assert cli_error(capsys, eval_args(folder, "nope")) == expected
    out = tmp_path / "model"
    assert cli_error(capsys, adapt_args(folder, out, tiny_model_dir, "nope")) == expected
    assert not out.exists()  # refused before anything was written


def test_missing_split_without_any_qrels_says_what_to_add(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir")
    (folder / "qrels" / "test.tsv").unlink()
    (folder / "qrels" / "notes.txt").write_text("not a split")
    assert available_splits(folder) == []
    with pytest.raises(MissingSplitError, match=r"available splits: \[\]\); add qrels/dev.tsv"):
        load_query_set(folder, "dev")


def test_available_splits_are_the_qrels_tsv_names(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir")
    (folder / "qrels" / "dev.tsv").write_text(QRELS_HEADER)
    assert available_splits(folder) == ["dev", "test"]
    assert qrels_file(folder, "dev") == folder / "qrels" / "dev.tsv"


# --------------------------------------------------------------------------- missing files
@pytest.mark.parametrize("missing", ["folder", "queries.jsonl", "corpus.jsonl"])
def test_missing_folder_or_file_is_one_exception(tmp_path: Path, missing: str) -> None:
    folder = write_beir(tmp_path / "beir")
    if missing == "folder":
        folder = tmp_path / "absent"
    else:
        (folder / missing).unlink()
    with pytest.raises(MissingFileError) as info:
        load_beir(folder, "test")
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    assert not isinstance(info.value, MissingSplitError)
    assert (str(folder) if missing == "folder" else missing) in str(info.value)


def test_query_set_and_pairs_need_no_corpus_file(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir")
    (folder / "corpus.jsonl").unlink()
    assert load_query_set(folder, "test").qrels == {"q1": {"d1": 2}, "q2": {"d2": 0}}
    assert [p.positive_id for p in pairs_from_beir(folder, "test", CORPUS)] == ["d1"]


# --------------------------------------------------------------------------- malformed lines
@pytest.mark.parametrize(
    ("qrels", "match"),
    [
        ("q1\td1\t2\nq2\td2\n", r"qrels/test.tsv:3: expected 3 tab-separated columns, got 2"),
        ("q1\td1\thigh\n", r"qrels/test.tsv:2: score 'high' is not a number"),
    ],
)
def test_malformed_qrels_line_is_named_by_every_reader(
    tmp_path: Path, qrels: str, match: str, tiny_model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = write_beir(tmp_path / "beir", qrels=qrels)
    for read in (load_beir, load_query_set, lambda f, s: pairs_from_beir(f, s, CORPUS)):
        with pytest.raises(ValueError, match=match):
            read(folder, "test")
    assert re.search(match, cli_error(capsys, eval_args(folder, "test")))
    assert re.search(
        match, cli_error(capsys, adapt_args(folder, tmp_path / "o", tiny_model_dir, "test"))
    )


@pytest.mark.parametrize(
    "bad_line",
    [
        json.dumps({"_id": "q2"}),  # no text
        json.dumps({"_id": "q2", "text": ["tax"]}),  # text not a string
        json.dumps({"_id": None, "text": "tax"}),  # no usable id
        json.dumps({"_id": True, "text": "tax"}),  # a bool is not an id
        "{not json",
    ],
)
def test_malformed_queries_line_is_named_by_every_reader(tmp_path: Path, bad_line: str) -> None:
    queries = [json.dumps({"_id": "q1", "text": "fever"}), bad_line]
    folder = write_beir(tmp_path / "beir", queries=queries)
    for read in (
        lambda: load_queries(folder / "queries.jsonl"),
        lambda: load_query_set(folder, "test"),
        lambda: load_beir(folder, "test"),
        lambda: pairs_from_beir(folder, "test", CORPUS),
    ):
        with pytest.raises(ValueError, match=r"queries.jsonl:2: "):
            read()


def test_qrels_judging_unknown_queries_are_counted_with_examples(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_beir(tmp_path / "beir", qrels="q1\td1\t1\nghost1\td1\t1\nghost2\td2\t0\n")
    with pytest.raises(ValueError) as info:
        load_beir(folder, "test")
    message = str(info.value)
    assert "judges 2 queries missing from" in message and "'ghost1', 'ghost2'" in message
    for read in (load_query_set, lambda f, s: pairs_from_beir(f, s, CORPUS)):
        with pytest.raises(ValueError) as other:
            read(folder, "test")
        assert str(other.value) == message
    err = cli_error(capsys, adapt_args(folder, tmp_path / "o", tiny_model_dir, "test"))
    assert err == one_line(info.value)


# --------------------------------------------------------------------------- value types
def test_load_query_set_keeps_judged_queries_in_file_order(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir", qrels="q2\td2\t0\nq1\td1\t2\n")
    judged = load_query_set(folder, "test")
    assert list(judged.queries) == ["q1", "q2"]  # q3 has no judgment
    assert judged.source == f"{folder} qrels/test"
    relevant = judged.with_relevant()
    assert relevant == QuerySet({"q1": "fever"}, {"q1": {"d1": 2}}, judged.source)
    assert load_query_set(folder, "test", source="held out").source == "held out"


def test_query_set_is_validated_and_frozen() -> None:
    with pytest.raises(ValueError, match=r"judge 1 queries that have no text \(e.g. 'q9'\)"):
        QuerySet({"q1": "a"}, {"q1": {"d": 1}, "q9": {"d": 1}})
    with pytest.raises(TypeError, match="query 'q1'"):
        QuerySet({"q1": None}, {})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="integer grades"):
        QuerySet({"q1": "a"}, {"q1": {"d": "1"}})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="integer grades"):
        QuerySet({"q1": "a"}, {"q1": {"d": True}})
    with pytest.raises(ValueError, match="no text"):
        BeirData([], {}, {"q1": {"d": 1}})
    query_set = QuerySet({"q1": "a"}, {"q1": {"d": 1}}, "here")
    with pytest.raises(dataclasses.FrozenInstanceError):
        query_set.source = "there"  # type: ignore[misc]


def test_one_query_set_type_under_every_old_name() -> None:
    from simcse_rag import adapt, demo, sample
    from simcse_rag.evaluation import retrieval

    assert adapt.EvalSet is QuerySet
    assert retrieval.BeirData is BeirData and retrieval.load_beir is load_beir
    bundled = sample.load_sample()
    assert isinstance(bundled, BeirData) and demo.SampleData is sample.SampleData
    held = bundled.query_set("bundled")
    assert isinstance(held, QuerySet) and held.qrels == bundled.qrels and held.source == "bundled"
