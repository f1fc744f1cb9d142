"""``simcse-rag adapt`` end to end on the tiny model, and its refusals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from simcse_rag.cli import main
from tests.unit.test_adapt import synthetic_corpus


@pytest.fixture()
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for p in synthetic_corpus(30):
            title, body = p.text.split("\n", 1)
            fh.write(json.dumps({"_id": p.id, "title": title, "text": body}) + "\n")
    return path


def _args(corpus: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [
        "adapt",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--model",
        str(model),
        "--device",
        "cpu",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--no-progress",
        *extra,
    ]


def test_cli_adapt_with_pairs_writes_model_and_report(
    corpus_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "query\tpassage_id\n" + "".join(f"question on item {i}\td{i}\n" for i in range(30)),
        encoding="utf-8",
    )
    out = tmp_path / "adapted"
    assert main(_args(corpus_file, out, tiny_model_dir, "--pairs", str(pairs), "--lr", "2e-4")) == 0
    captured = capsys.readouterr()
    assert "[adapt] round 1" in captured.err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # The terminal gets an aligned plain-text table (report.md keeps the Markdown one).
    lines = captured.out.splitlines()
    table = lines[: lines.index(next(x for x in lines if x.startswith("hybrid"))) + 1]
    assert "|" not in captured.out and max(len(line) for line in table) <= 100
    assert table[0].split() == ["nDCG@10", "recall@100", "MRR@10"]
    assert table[1].split() == ["mode", *["before", "after", "delta"] * 3]
    assert [line.split()[0] for line in table[3:]] == ["dense", "bm25", "hybrid"]
    hybrid = report["after"]["hybrid"]["ndcg@10"]
    assert table[-1].split()[2] == f"{100 * hybrid:.2f}"
    assert len({len(line) for line in table[2:]}) == 1  # the columns line up
    dense_wins = report["after"]["dense"]["ndcg@10"] > hybrid
    assert ("dense retrieval alone beats hybrid" in captured.out) is dense_wins
    report_md = (out / "report.md").read_text(encoding="utf-8")
    assert "| hybrid |" in report_md and "](report.png)" in report_md
    assert report["training"]["source"] == str(pairs)
    assert report["config"]["learning_rate"] == 2e-4
    assert report["held_out"]["queries"] == 9  # 30% of 30 queries
    # Labelled pairs: no pseudo-query warning; a drop in quality is always reported.
    fell = [m for m in ("dense", "hybrid") if report["delta"][m]["ndcg@10"] < 0]
    assert [w.split()[0] for w in report["warnings"]] == fell
    assert all(f"warning: {w}" in captured.err for w in report["warnings"])
    assert (out / "report.md").is_file() and (out / "mined.jsonl").is_file()
    assert (out / "model.safetensors").is_file() and (out / "modules.json").is_file()

    # A second run without --overwrite is refused and leaves the model untouched.
    weights = (out / "model.safetensors").read_bytes()
    assert main(_args(corpus_file, out, tiny_model_dir, "--pairs", str(pairs))) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == weights

    # The adapted folder is a model the other commands load.
    texts = tmp_path / "texts.txt"
    texts.write_text("fever aspirin\nbank loan\n", encoding="utf-8")
    npy = tmp_path / "v.npy"
    assert main(["encode", "--model", str(out), "--input", str(texts), "--output", str(npy)]) == 0


def test_cli_adapt_unknown_ids_and_small_corpus(
    corpus_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("query\tpassage_id\nq one\td1\nq two\tx9\nq three\tx10\n", encoding="utf-8")
    code = main(_args(corpus_file, tmp_path / "o", tiny_model_dir, "--pairs", str(pairs)))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: 2 of 3 pairs") and "'x9'" in err and "Traceback" not in err

    small = tmp_path / "small.txt"
    small.write_text("one passage\nanother passage\n", encoding="utf-8")
    assert main(_args(small, tmp_path / "o2", tiny_model_dir, "--strategy", "ict")) == 2
    assert "corpus has 2 passages" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM test needs POSIX")
def test_sigterm_while_training_leaves_no_temp_folder_and_keeps_existing_model(
    corpus_file: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapted"
    out.mkdir()
    (out / "keep.txt").write_text("previous model", encoding="utf-8")
    args = _args(corpus_file, out, tiny_model_dir, "--overwrite", "--strategy", "title")
    args[args.index("--max-steps") + 1] = "100000"  # still training when the signal comes
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simcse_rag", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # Training writes nothing to disk, so its start shows only in the stage lines on stderr.
    lines: list[str] = []
    training = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "fine-tuning" in line:
                training.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert training.wait(timeout=120), "training never started: " + "".join(lines)
        time.sleep(1.0)  # inside the training loop
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        proc.kill()
    err = "".join(lines)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: terminated (SIGTERM)")
    assert "Traceback" not in err
    assert not list(tmp_path.glob(".adapted*")), list(tmp_path.iterdir())
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_cli_corpus_only_needs_a_strategy(
    corpus_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(_args(corpus_file, tmp_path / "o", tiny_model_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: No labelled pairs given.") and "\n" not in err
    assert "--strategy keywords|title|ict|crop" in err and not (tmp_path / "o").exists()


_MERGE = "must be a number in (0, 1]"
_POSITIVE = "expected a positive number"


@pytest.mark.parametrize(
    ("flag", "bad", "message"),
    [
        *[("--merge-weight", bad, _MERGE) for bad in ("0", "1.5", "half")],
        *[("--lr", bad, _POSITIVE) for bad in ("0", "-0.001", "nan", "inf", "fast")],
    ],
)
def test_cli_bad_numbers_are_refused_before_any_work(
    corpus_file: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    flag: str,
    bad: str,
    message: str,
) -> None:
    args = _args(corpus_file, tmp_path / "o", tiny_model_dir, "--strategy", "title")
    with pytest.raises(SystemExit) as exc:
        main([*args, flag, bad])
    assert exc.value.code == 2
    assert f"{flag}: {message}, got '{bad}'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_existing_out_names_the_flag_not_the_python_argument(
    corpus_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(_args(corpus_file, out, tiny_model_dir, "--strategy", "title")) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: --out {str(out)!r} already exists and is not empty; pass --overwrite to "
        "replace it, or choose another --out."
    )
    assert (out / "keep.txt").read_text() == "mine"


def test_cli_help_names_the_library_defaults(capsys: pytest.CaptureFixture) -> None:
    """The parser keeps torch out, so its help repeats the library's defaults as literals."""
    from simcse_rag import adapt

    with pytest.raises(SystemExit) as exc:
        main(["adapt", "--help"])
    assert exc.value.code == 0
    # Each option's help runs from its "  --flag" line to the next option line.
    options = re.split(r"\n  (?=-)", capsys.readouterr().out)
    for flag, constants in [
        ("--lr", [adapt.LABELLED_LEARNING_RATE, adapt.PSEUDO_LEARNING_RATE]),
        ("--merge-weight", [adapt.PSEUDO_MERGE_WEIGHT, adapt.STRONG_BASE_MERGE_WEIGHT]),
    ]:
        (help_text,) = [o for o in options if o.startswith(f"{flag} ")]
        named = {float(n) for n in re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", help_text)}
        assert set(constants) <= named, (flag, help_text)


# --------------------------------------------------------------------------- --queries
def test_cli_corpus_only_refusal_names_the_three_ways_forward(
    corpus_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(_args(corpus_file, tmp_path / "o", tiny_model_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and not re.search(r"\d", err)
    for way in ("--pairs", "--train-data", "--queries", "--generator-url"):
        assert way in err
    assert "e.g. simcse-rag adapt --corpus" in err


def test_cli_adapt_from_a_questions_file(
    corpus_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    questions = tmp_path / "questions.txt"
    # Whole passages as questions: dense and BM25 agree on them even with the random tiny model.
    lines = [" ".join(p.text.split()) for p in synthetic_corpus(30)]
    questions.write_text("\n".join(lines + ["", lines[0]]) + "\n", encoding="utf-8")
    out = tmp_path / "adapted"
    assert main(_args(corpus_file, out, tiny_model_dir, "--queries", str(questions))) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    counts = report["training"]["question_filters"]["queries"]
    assert counts["given"] == 31 and counts["duplicates"] == 1 and counts["blank"] == 0
    assert counts["kept"] + counts["untrusted"] == 30
    assert "- queries: given 31" in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.txt", b""),
        ("blank.txt", b"\n   \n\t\n"),
        ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("latin1.txt", "caf\xe9 fi\xe8vre\n".encode("latin-1")),
        ("blank.jsonl", b'{"_id": "q1", "text": "  "}\n'),
    ],
)
def test_cli_bad_questions_file_is_one_error_line_and_keeps_the_old_model(
    corpus_file: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    name: str,
    content: bytes,
) -> None:
    questions = tmp_path / name
    questions.write_bytes(content)
    out = tmp_path / "adapted"
    out.mkdir()
    (out / "keep.txt").write_text("old model", encoding="utf-8")
    argv = _args(corpus_file, out, tiny_model_dir, "--queries", str(questions), "--overwrite")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --queries") and "\n" not in err, err
    assert str(questions) in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not list(tmp_path.glob(".adapted*"))


def test_cli_queries_and_pairs_are_mutually_exclusive(
    corpus_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    questions = tmp_path / "q.txt"
    questions.write_text("fever\n", encoding="utf-8")
    argv = _args(corpus_file, tmp_path / "o", tiny_model_dir, "--queries", str(questions))
    with pytest.raises(SystemExit) as info:
        main([*argv, "--pairs", str(questions)])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
