"""Property-based tests (hypothesis): the CLI's input readers on hostile files.

Random bytes, huge lines, wrong encodings, JSON with missing or mistyped fields, fed to the
readers behind ``simcse-rag index build`` (corpus ``.jsonl`` / ``.csv`` / ``.tsv`` / ``.txt``),
``encode`` (lines or a corpus), ``train`` (``.txt`` / ``.csv`` / ``.tsv``) and ``eval retrieval``
/ ``adapt --eval-data`` (qrels, queries). Each must return a well-formed result or raise
``ValueError`` (one line naming the file), nothing else. End to end, ``simcse-rag index build``
on such a file exits 2 with ``error: ...`` and leaves the existing index untouched.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcse_rag import _io
from simcse_rag.cli._common import read_lines, read_texts
from simcse_rag.corpus import read_corpus
from simcse_rag.data import load_examples
from simcse_rag.datasets import load_queries
from simcse_rag.evaluation.retrieval import load_qrels
from simcse_rag.schema import Passage

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
DEEP = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
# JSON objects that sometimes have the right keys with the wrong types, sometimes miss them.
json_objects = st.fixed_dictionaries(
    {},
    optional={
        "_id": st.one_of(st.text(max_size=8), st.integers(), json_values),
        "id": json_values,
        "title": st.one_of(st.text(max_size=10), json_values),
        "text": st.one_of(st.text(max_size=30), json_values),
        "metadata": json_values,
    },
)
jsonl_files = st.lists(
    st.one_of(
        json_objects.map(lambda o: json.dumps(o, ensure_ascii=False)),
        json_values.map(json.dumps),
        st.text(max_size=30),
    ),
    max_size=8,
).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))
encodings = st.sampled_from(["utf-16", "gb18030", "latin-1", "utf-8-sig", "cp1252", "utf-32"])
mis_encoded = st.builds(
    lambda text, enc: text.encode(enc, errors="replace"),
    st.text(min_size=1, max_size=60),
    encodings,
)
huge = st.builds(
    lambda word, n: ((word or "x") * n).encode("utf-8", "surrogatepass"),
    st.text(max_size=5),
    st.integers(50_000, 400_000),
)
contents = st.one_of(st.binary(max_size=300), jsonl_files, mis_encoded, huge)
SUFFIXES = (".jsonl", ".txt", ".csv", ".tsv", ".json")


@contextlib.contextmanager
def written(data: bytes, suffix: str) -> Iterator[Path]:
    """``data`` in a file of its own, removed afterwards (examples run by the hundred)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-readers-") as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        yield path


def one_line(exc: BaseException, path: Path) -> None:
    """The documented error: one line that names the file."""
    message = str(exc).strip()
    assert message and "\n" not in message and path.name in message, message


def check_readers(data: bytes, suffix: str) -> None:
    with written(data, suffix) as path:
        try:
            passages = read_corpus(path, allow_empty=True)
        except ValueError as exc:
            one_line(exc, path)
        else:
            assert all(
                isinstance(p, Passage) and p.id and isinstance(p.text, str) for p in passages
            )
            assert len({p.id for p in passages}) == len(passages)
        try:
            lines = read_lines(path)
        except ValueError as exc:
            one_line(exc, path)
        else:
            assert all(isinstance(x, str) and x.strip() and "\n" not in x for x in lines)
        try:
            texts = read_texts(path)
        except ValueError as exc:
            one_line(exc, path)
        else:
            assert all(isinstance(x, str) for x in texts)
        if suffix in (".txt", ".csv", ".tsv"):
            try:
                examples = load_examples(path)
            except ValueError as exc:
                one_line(exc, path)
            else:
                assert examples
        if suffix == ".jsonl":
            try:
                rows = list(_io.iter_jsonl(path))
            except ValueError as exc:
                one_line(exc, path)
            else:
                assert all(isinstance(obj, dict) for _, obj in rows)


@FAST
@given(contents, st.sampled_from(SUFFIXES))
def test_readers_return_or_raise_value_error(data, suffix):
    check_readers(data, suffix)


@pytest.mark.slow
@DEEP
@given(contents, st.sampled_from(SUFFIXES))
def test_readers_return_or_raise_value_error_deep(data, suffix):
    check_readers(data, suffix)


def returns_or_raises(data: bytes, suffix: str, read, valid) -> None:  # noqa: ANN001
    """``read(path)`` of ``data`` either returns what ``valid`` accepts or raises the one-line
    ``ValueError`` naming the file."""
    with written(data, suffix) as path:
        try:
            result = read(path)
        except ValueError as exc:
            one_line(exc, path)
        else:
            assert valid(result)


def check_qrels(data: bytes) -> None:
    returns_or_raises(
        data,
        ".tsv",
        load_qrels,
        lambda qrels: all(isinstance(q, str) and isinstance(d, dict) for q, d in qrels.items()),
    )


@FAST
@given(contents)
def test_qrels_reader_returns_or_raises_value_error(data):
    check_qrels(data)


@pytest.mark.slow
@DEEP
@given(contents)
def test_qrels_reader_returns_or_raises_value_error_deep(data):
    check_qrels(data)


def check_queries(data: bytes) -> None:
    returns_or_raises(
        data,
        ".jsonl",
        load_queries,
        lambda queries: all(isinstance(q, str) and isinstance(t, str) for q, t in queries.items()),
    )


@FAST
@given(contents)
def test_queries_reader_returns_or_raises_value_error(data):
    check_queries(data)


@pytest.fixture(scope="module")
def existing_index(tmp_path_factory, tiny_model_dir):
    from simcse_rag.cli import main

    folder = tmp_path_factory.mktemp("cli-fuzz")
    corpus = folder / "corpus.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"_id": f"p{i}", "text": f"fever in children {i}"}) for i in range(5)),
        encoding="utf-8",
    )
    out = folder / "index"
    args = ["index", "build", "--corpus", str(corpus), "--out", str(out)]
    assert main([*args, "--model", str(tiny_model_dir), "--no-progress"]) == 0
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# Inputs that must be refused (the valid-corpus case is covered by the CLI's own tests).
bad_corpora = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda b: b.strip()),
    mis_encoded,
    st.lists(json_objects, min_size=1, max_size=4).map(
        lambda objs: "\n".join(json.dumps(o) for o in objs).encode()
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad_corpora, st.sampled_from([".jsonl", ".txt", ".csv", ".tsv"]))
def test_cli_index_build_on_bad_input_keeps_existing_index(
    existing_index, tiny_model_dir, capsys, data, suffix
):
    from simcse_rag.cli import main
    from simcse_rag.index.hybrid import HybridRetriever

    before = snapshot(existing_index)
    with written(data, suffix) as path:
        capsys.readouterr()
        rc = main(
            [
                "index",
                "build",
                "--corpus",
                str(path),
                "--out",
                str(existing_index),
                "--no-progress",
                "--model",
                str(tiny_model_dir),
            ]
        )
        err = capsys.readouterr().err
        if rc == 0:  # the random file happened to be a valid corpus: the new index must load
            loaded = HybridRetriever.load(existing_index)
            assert len(loaded) == len(read_corpus(path))
            return
        assert rc == 2
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
        assert snapshot(existing_index) == before


def test_deeply_nested_json_is_a_one_line_error() -> None:
    # Found by hypothesis: json raises RecursionError (not ValueError) past ~1000 levels.
    check_readers(b"[" * 50_000, ".jsonl")
