"""CLI: --passage-backend on index build / add and eval retrieval."""

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

#: Each test starts with an empty ONNX store (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("onnx_store_dir")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_build_records_the_backend_and_add_can_switch_it(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _jsonl(tmp_path / "corpus.jsonl", CORPUS)
    out = tmp_path / "idx"
    model = ["--model", str(tiny_model_dir), "--no-progress"]
    build = ["index", "build", "--corpus", str(corpus), "--out", str(out), *model]
    assert main([*build, "--passage-backend", "onnx-int8"]) == 0
    assert _manifest(out)["model"]["passage_backend"] == "onnx-int8"
    more = _jsonl(tmp_path / "more.jsonl", [{"_id": "d4", "text": "insulin dose"}])
    assert main(["index", "add", str(out), "--corpus", str(more), *model]) == 0
    assert _manifest(out)["model"]["passage_backend"] == "onnx-int8"  # kept
    add = ["index", "add", str(out), "--corpus", str(more), *model]
    assert main([*add, "--passage-backend", "torch"]) == 0
    manifest = _manifest(out)
    assert manifest["model"]["passage_backend"] == "torch"
    assert manifest["config"]["passage_backend"] == "torch"
    assert manifest["counts"]["passages"] == 4
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:  # argparse's own choice check
        main([*build, "--passage-backend", "onnx-int4"])
    assert refused.value.code == 2 and "onnx-int4" in capsys.readouterr().err
    assert _manifest(out)["counts"]["passages"] == 4  # the index was left alone
