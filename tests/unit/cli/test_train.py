"""CLI: ``simcse-rag train unsup|sup`` and ``simcse-rag eval sts``."""

from __future__ import annotations

import json

import pytest

from simcse_rag.cli import main

SENTS = [
    f"{w} {v} number {i}"
    for i, w in enumerate(
        ("fever", "cough", "vaccine", "insulin", "loan", "stock", "tax", "revenue") * 2
    )
    for v in ("child", "bank")
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def files(tmp_path):
    txt = tmp_path / "unsup.txt"
    txt.write_text("\n".join(SENTS) + "\n", encoding="utf-8")
    csv = tmp_path / "sup.csv"
    csv.write_text(
        "sent0,sent1,hard_neg\n"
        + "".join(
            f"{s},{s.replace('number', 'is')},{SENTS[(i + 3) % len(SENTS)]}\n"
            for i, s in enumerate(SENTS)
        ),
        encoding="utf-8",
    )
    sts = tmp_path / "sts.tsv"
    sts.write_text(
        "sentence1\tsentence2\tscore\n"
        + "".join(
            f"{s}\t{SENTS[(i + k) % len(SENTS)]}\t{5 - k}\n"
            for i, s in enumerate(SENTS[:8])
            for k in (0, 1, 4)
        ),
        encoding="utf-8",
    )
    return txt, csv, sts


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_unsup_then_eval_then_resume(tiny_model_dir, files, tmp_path, capsys):
    txt, _, sts = files
    out = tmp_path / "model"
    base = [
        "train",
        "unsup",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(txt),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--max-length",
        "16",
        "--no-progress",
    ]
    code, stdout, err = _run(
        capsys, *base, "--max-steps", "3", "--eval-data", str(sts), "--eval-steps", "2"
    )
    assert code == 0, err
    assert "trained 3 steps" in stdout and "best eval" in stdout
    assert (out / "best" / "model.safetensors").is_file()
    code, stdout, err = _run(
        capsys, "eval", "sts", "--model", str(out), "--data", str(sts), "--json"
    )
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["pairs"] == 24 and -1 <= metrics["spearman"] <= 1 and "pearson" in metrics
    # non-empty --out is refused; --resume continues to a larger step budget
    code, _, err = _run(capsys, *base, "--max-steps", "5")
    assert code == 2 and err.startswith("error:") and "--resume" in err
    code, stdout, err = _run(capsys, *base, "--max-steps", "5", "--resume")
    assert code == 0, err
    assert "trained 5 steps" in stdout


def test_train_sup_and_eval_text_output(tiny_model_dir, files, tmp_path, capsys):
    _, csv, sts = files
    out = tmp_path / "sup"
    code, stdout, err = _run(
        capsys,
        "train",
        "sup",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(csv),
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--max-steps",
        "2",
        "--pooling",
        "mean",
        "--no-progress",
    )
    assert code == 0, err
    code, stdout, err = _run(
        capsys, "eval", "sts", "--model", str(out), "--data", str(sts), "--no-progress"
    )
    assert code == 0, err
    lines = dict(line.split("\t") for line in stdout.strip().splitlines())
    assert set(lines) >= {"spearman", "pearson", "pairs"} and lines["pairs"] == "24"


@pytest.mark.parametrize(
    ("setup", "extra", "needle"),
    [
        ("empty", [], "no examples"),
        ("bad_row", [], "bad.csv:3"),
        ("big_batch", ["--batch-size", "500"], "batch_size 500 is larger than the 32"),
        ("pooling", ["--pooling", "avg"], "Unknown pooling mode 'avg'"),
        ("sup_on_txt", [], "use 'train unsup'"),
    ],
)
def test_train_user_errors_are_one_line(
    tiny_model_dir, files, tmp_path, capsys, setup, extra, needle
):
    txt, csv, _ = files
    mode, data = "unsup", txt
    if setup == "empty":
        data = tmp_path / "empty.txt"
        data.write_text("\n\n", encoding="utf-8")
    elif setup == "bad_row":
        mode, data = "sup", tmp_path / "bad.csv"
        data.write_text("sent0,sent1\na,b\nc\n", encoding="utf-8")
    elif setup == "sup_on_txt":
        mode = "sup"
    code, _, err = _run(
        capsys,
        "train",
        mode,
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
        *extra,
    )
    assert code == 2
    assert err.startswith("error:") and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "model.safetensors").exists()


def _train_args(model, data, out, *extra):
    """``train unsup`` on the tiny model with small batches."""
    paths = ["--model", str(model), "--data", str(data), "--out", str(out)]
    return [
        "train",
        "unsup",
        *paths,
        "--batch-size",
        "8",
        "--max-length",
        "16",
        "--no-progress",
        *extra,
    ]


def test_out_errors_are_in_flags_and_keep_the_folder(tiny_model_dir, files, tmp_path, capsys):
    txt = files[0]
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("x", encoding="utf-8")
    code, _, err = _run(capsys, *_train_args(tiny_model_dir, txt, out))
    assert code == 2
    assert err == (
        f"error: --out {str(out)!r} is not empty; pass --resume to continue its run, "
        "--overwrite to replace it, or choose another --out.\n"
    )
    code, _, err = _run(capsys, *_train_args(tiny_model_dir, txt, out, "--resume"))
    assert code == 2
    assert err == (
        f"error: Cannot resume: {out / 'checkpoint-last'} has no checkpoint; drop --resume to "
        "start a new run.\n"
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_resume_with_another_model_names_the_flag(tiny_model_dir, files, tmp_path, capsys):
    from simcse_rag.testing import build_tiny_bert

    txt, out = files[0], tmp_path / "run"
    code, _, err = _run(capsys, *_train_args(tiny_model_dir, txt, out, "--max-steps", "1"))
    assert code == 0, err
    wider = build_tiny_bert(tmp_path / "wider", hidden_size=48, num_heads=2)
    code, _, err = _run(capsys, *_train_args(wider, txt, out, "--max-steps", "2", "--resume"))
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: Checkpoint {out / 'checkpoint-last'} does not match the model")
    assert err.endswith("; resume with the same --model.\n") and "=True" not in err


def test_diverged_run_names_the_flags(tiny_model_dir, files, tmp_path, capsys, monkeypatch):
    from simcse_rag import trainer
    from simcse_rag.train_step import DivergedError

    real_step = trainer.take_step
    steps = iter(range(100))

    def nan_on_third_step(*args, **kwargs):
        if next(steps) == 2:
            raise DivergedError("loss is nan")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "take_step", nan_on_third_step)
    txt, out = files[0], tmp_path / "run"
    argv = _train_args(tiny_model_dir, txt, out, "--max-steps", "4", "--checkpoint-steps", "2")
    code, _, err = _run(capsys, *argv)
    assert code == 1
    assert err == (
        f"error: Training stopped at step 3: loss is nan. The last good checkpoint is "
        f"{out / 'checkpoint-last'} (step 2); lower --lr or check the data, then resume with "
        "--resume.\n"
    )


def test_eval_sts_bad_file(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "x.tsv"
    bad.write_text("a\tb\n1\t2\n", encoding="utf-8")
    code, _, err = _run(capsys, "eval", "sts", "--model", str(tiny_model_dir), "--data", str(bad))
    assert code == 2 and "sentence1, sentence2 and score" in err
