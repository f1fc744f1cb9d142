"""CLI: index build / add / delete / info, search, eval retrieval; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simcse_rag.cli import main

CORPUS = [
    {"_id": "d1", "title": "Fever", "text": "My child has a fever and a cough."},
    {"_id": "d2", "title": "", "text": "Dividend income and the tax rate."},
    {"_id": "d3", "title": "", "text": "儿童发烧怎么办"},
]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


@pytest.fixture
def built(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    corpus = _jsonl(tmp_path / "corpus.jsonl", CORPUS)
    out = tmp_path / "idx"
    code = main(
        [
            "index",
            "build",
            "--corpus",
            str(corpus),
            "--out",
            str(out),
            "--model",
            str(tiny_model_dir),
            "--no-progress",
        ]
    )
    assert code == 0
    assert "indexed 3 passages" in capsys.readouterr().out
    return out


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_build_search_json(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", str(built), "fever cough", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2 and hits[0]["id"] == "d1" and hits[0]["rank"] == 1
    assert set(hits[0]["sources"]) == {"dense", "bm25"}
    assert main(["search", str(built), "发烧", "--mode", "bm25"]) == 0
    out = capsys.readouterr().out
    assert "d3" in out and "bm25#1" in out


def test_txt_corpus_and_rebuild_reuses_vectors(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    txt = tmp_path / "c.txt"
    txt.write_text("first passage\n\nsecond passage\n", encoding="utf-8")
    out = tmp_path / "idx"
    args = [
        "index",
        "build",
        "--corpus",
        str(txt),
        "--out",
        str(out),
        "--model",
        str(tiny_model_dir),
        "--no-progress",
    ]
    assert main(args) == 0
    assert "2 encoded" in capsys.readouterr().out
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "2 vectors reused" in second and "0 encoded" in second
    assert main(["search", str(out), "second", "--json", "--mode", "bm25"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "3"  # ids are line numbers


def test_csv_corpus_keeps_ids_and_unknown_extension_is_refused(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "docs.csv"
    csv_file.write_text(
        'id,title,text,lang\nd1,Fever,"fever, cough",en\nd2,,儿童发烧怎么办,zh\n', encoding="utf-8"
    )
    out = tmp_path / "idx"
    base = ["index", "build", "--out", str(out), "--model", str(tiny_model_dir), "--no-progress"]
    assert main([*base, "--corpus", str(csv_file)]) == 0
    assert "indexed 2 passages" in capsys.readouterr().out  # the header is not a passage
    assert main(["search", str(out), "发烧", "--json", "--mode", "bm25"]) == 0
    top = json.loads(capsys.readouterr().out)[0]
    assert top["id"] == "d2" and top["metadata"]["lang"] == "zh"
    before = (out / "manifest.json").read_text()
    xlsx = tmp_path / "docs.xlsx"
    xlsx.write_bytes(b"PK\x03\x04 not text")
    assert main([*base, "--corpus", str(xlsx)]) == 2
    assert "unsupported extension '.xlsx'; use .jsonl" in _error(capsys)
    assert (out / "manifest.json").read_text() == before


def test_add_delete_info(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    more = _jsonl(
        tmp_path / "more.jsonl",
        [{"_id": "d4", "text": "insulin dose"}, {"_id": "d1", "text": "replaced"}],
    )
    assert main(["index", "add", str(built), "--corpus", str(more), "--no-progress"]) == 0
    assert "added 1 and replaced 1" in capsys.readouterr().out
    assert main(["index", "delete", str(built), "--ids", "d2"]) == 0
    assert "index now holds 3" in capsys.readouterr().out
    assert main(["index", "info", str(built)]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["counts"]["passages"] == 3 and manifest["format_version"] == 1
    assert main(["index", "delete", str(built), "--ids", "nope"]) == 2
    assert "nothing deleted" in _error(capsys)


def test_bad_corpus_errors(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "idx"
    base = [
        "index",
        "build",
        "--out",
        str(out),
        "--model",
        str(tiny_model_dir),
        "--no-progress",
        "--corpus",
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main([*base, str(empty)]) == 2
    assert "is empty" in _error(capsys)
    dup = _jsonl(tmp_path / "dup.jsonl", [CORPUS[0], CORPUS[1], CORPUS[0]])
    assert main([*base, str(dup)]) == 2
    assert "dup.jsonl:3: duplicate id 'd1' (first on line 1)" in _error(capsys)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CORPUS[0]) + "\n{oops\n")
    assert main([*base, str(bad)]) == 2
    assert "bad.jsonl:2: malformed JSON" in _error(capsys)
    assert not out.exists()


def test_failed_build_keeps_existing_index(
    built: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (built / "manifest.json").read_text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert (
        main(
            [
                "index",
                "build",
                "--corpus",
                str(bad),
                "--out",
                str(built),
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 2
    )
    _error(capsys)
    assert (built / "manifest.json").read_text() == before
    assert main(["search", str(built), "fever", "--json"]) == 0


def test_refuses_foreign_folder(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _jsonl(tmp_path / "corpus.jsonl", CORPUS)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    assert (
        main(
            [
                "index",
                "build",
                "--corpus",
                str(corpus),
                "--out",
                str(foreign),
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 2
    )
    assert "is not a simcse-rag index" in _error(capsys)
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_search_errors(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", str(tmp_path / "nowhere"), "q"]) == 2
    assert "not a simcse-rag index" in _error(capsys)
    with pytest.raises(SystemExit):
        main(["search", str(built), "q", "-k", "0"])
    assert "positive integer" in capsys.readouterr().err
    (built / "dense" / "dense.faiss").write_bytes(b"junk")
    assert main(["search", str(built), "fever"]) == 2
    assert "corrupted" in _error(capsys)


def test_search_with_other_model_fails(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from simcse_rag.testing import build_tiny_bert

    other = build_tiny_bert(tmp_path / "other", seed=3)
    assert main(["search", str(built), "fever", "--model", str(other)]) == 2
    assert "fingerprint" in _error(capsys)


def test_eval_retrieval_json(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    _jsonl(beir / "corpus.jsonl", CORPUS)
    _jsonl(
        beir / "queries.jsonl",
        [{"_id": "q1", "text": "fever cough"}, {"_id": "q2", "text": "tax rate"}],
    )
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    args = [
        "eval",
        "retrieval",
        "--data",
        str(beir),
        "--split",
        "test",
        "--model",
        str(tiny_model_dir),
        "--json",
        "--no-progress",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("ndcg@10", "recall@100", "mrr@10", "p50_ms", "p95_ms", "queries"):
        assert key in result
    assert result["queries"] == 2 and result["recall@100"] == 1.0
    assert 0 < result["ndcg@10"] <= 1 and result["p50_ms"] > 0
    assert main([*args[:-2], "--mode", "bm25", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mrr@10"] == 1.0
    assert (
        main(
            [
                "eval",
                "retrieval",
                "--data",
                str(beir),
                "--split",
                "dev",
                "--model",
                str(tiny_model_dir),
            ]
        )
        == 2
    )
    assert "available splits" in _error(capsys)


def test_build_fusion_options_saved(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _jsonl(tmp_path / "corpus.jsonl", CORPUS)
    out = tmp_path / "idx"
    args = [
        "index",
        "build",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--model",
        str(tiny_model_dir),
    ]
    assert (
        main(
            [
                *args,
                "--no-progress",
                "--fusion",
                "rrf",
                "--rrf-k",
                "10",
                "--dense-weight",
                "1.25",
                "--tokenizer",
                "zh",
                "--query-backend",
                "torch",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["search", str(out), "fever cough", "--json", "-k", "1"]) == 0
    hit = json.loads(capsys.readouterr().out)[0]
    expected = sum(
        w / (10 + hit["sources"][name]["rank"])
        for name, w in (("dense", 1.25), ("bm25", 1.0))
        if name in hit["sources"]
    )
    assert hit["score"] == pytest.approx(expected)
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert (
        config["rrf_k"] == 10
        and config["weights"] == {"dense": 1.25, "bm25": 1.0}
        and config["tokenizer"] == "zh"
        and config["query_backend"] == "torch"
    )
    with pytest.raises(SystemExit) as exc:
        main([*args, "--query-backend", "tensorrt"])
    assert exc.value.code == 2
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_search_through_the_cached_query_model_never_imports_torch(built: Path) -> None:
    """A cold `simcse-rag search` on an index with a valid cached query model skips PyTorch."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from simcse_rag.cli import main\n"
        f"code = main(['search', {str(built)!r}, 'fever cough', '--json'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print('imported:', heavy, 'code:', code, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert "imported: [] code: 0" in done.stderr, done.stderr
    assert json.loads(done.stdout)[0]["id"] == "d1"


def test_build_fusion_method_saved(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _jsonl(tmp_path / "corpus.jsonl", CORPUS)
    out = tmp_path / "idx"
    args = ["index", "build", "--corpus", str(corpus), "--out", str(out)]
    args += ["--model", str(tiny_model_dir), "--no-progress", "--query-backend", "torch"]
    assert main([*args, "--fusion", "relative_score"]) == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["fusion"] == "relative_score"
    capsys.readouterr()
    assert main(["search", str(out), "fever cough", "--json", "-k", "1"]) == 0
    hit = json.loads(capsys.readouterr().out)[0]
    assert 0 < hit["score"] <= 2.0  # min-max scaled per leg, weights 1 + 1: not an RRF score
    with pytest.raises(SystemExit) as exc:
        main([*args, "--fusion", "sum"])
    assert exc.value.code == 2
    assert "invalid choice: 'sum'" in capsys.readouterr().err


def test_unreadable_query_on_a_cold_index_is_left_to_bm25_without_torch(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Coverage on a saved index comes from its cached query model's tokenizer: a query in a
    script outside the model's vocabulary gets dense weight 0, still without PyTorch."""
    import subprocess
    import sys

    built = tmp_path / "idx"
    corpus = str(_jsonl(tmp_path / "corpus.jsonl", CORPUS))
    args = ["index", "build", "--corpus", corpus, "--out", str(built), "--no-progress"]
    assert main([*args, "--model", str(tiny_model_dir), "--fusion", "rrf"]) == 0
    script = (
        "import sys\n"
        "from simcse_rag.cli import main\n"
        f"code = main(['search', {str(built)!r}, '안녕하세요 fever', '--json', '-k', '1'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print('imported:', heavy, 'code:', code, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert "imported: [] code: 0" in done.stderr, done.stderr
    hit = json.loads(done.stdout)[0]
    # "안녕하세요" is [UNK], "fever" is read: half the dense weight (RRF k=60, weights 1 and 1)
    expected = sum(
        w / (60 + hit["sources"][name]["rank"])
        for name, w in (("dense", 0.5), ("bm25", 1.0))
        if name in hit["sources"]
    )
    assert hit["score"] == pytest.approx(expected)
