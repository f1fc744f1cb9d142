"""CLI: `simcse-rag serve` serves a saved index over HTTP; mistakes are one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from simcse_rag.cli import main
from simcse_rag.index.hybrid import HybridRetriever
from simcse_rag.schema import Passage

pytest.importorskip("uvicorn")


@pytest.fixture
def index(tiny_encoder: Any, tmp_path: Path) -> Path:
    passages = [Passage("d1", "child fever cough"), Passage("d2", "dividend tax rate")]
    HybridRetriever.from_passages(passages, tiny_encoder).save(tmp_path / "idx")
    return tmp_path / "idx"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_unknown_folder_is_an_error_before_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tmp_path / "nope"), "--port", "1"]) == 2
    assert "is not a simcse-rag index" in _error(capsys)


def test_bad_port_is_an_argument_error(index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(index), "--port", "70000"])
    assert exit_info.value.code == 2
    assert "expected a port in 1..65535" in capsys.readouterr().err


@pytest.mark.enable_socket
def test_taken_port_is_a_one_line_error(index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", str(index), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in _error(capsys)


@pytest.mark.enable_socket
def test_serve_subprocess_answers_searches(index: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "simcse_rag", "serve", str(index), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"serving 2 passages from {index} (read-only) at http://127.0.0.1:{port}" in banner
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/search",
            data=json.dumps({"query": "tax rate", "k": 1}).encode(),
            headers={"Content-Type": "application/json"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:
                    hits = json.loads(reply.read())["hits"]
                break
            except urllib.error.URLError:  # listening, but the loop may not be running yet
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert [h["id"] for h in hits] == ["d2"]
    finally:
        process.terminate()
        process.wait(timeout=30)
