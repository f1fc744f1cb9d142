"""``adapt --generator-url``: one-line errors before any work, the cache path, a full run."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simcse_rag.cli import main
from simcse_rag.cli.generator_args import add_generator_arguments, generation_cache_path
from tests.unit.cli.test_adapt import _args, corpus_file  # noqa: F401 - a fixture
from tests.unit.generation.fake_openai import FakeOpenAIServer
from tests.unit.test_adapt_generation import writer

KEY = "sk-test-Zq8SECRETkey"


@pytest.fixture()
def existing_model(tmp_path: Path) -> Path:
    out = tmp_path / "adapted"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"the old model")
    return out


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.mark.enable_socket
def test_refused_connection_is_one_line_and_keeps_the_old_model(
    corpus_file: Path,  # noqa: F811
    existing_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    extra = ("--generator-url", _refused_url(), "--generator-model", "m", "--overwrite")
    assert main(_args(corpus_file, existing_model, tmp_path / "no-model", *extra)) == 2
    assert "connection refused" in _error_line(capsys)
    assert (existing_model / "model.safetensors").read_bytes() == b"the old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapted", "corpus.jsonl"]


@pytest.mark.enable_socket
@pytest.mark.parametrize(
    ("status", "body", "key", "expected"),
    [
        (404, {"error": {"message": "model 'qwen9' not found"}}, KEY, "model 'qwen9' not found"),
        (401, {"error": {"message": "no key"}}, None, "set the OPENAI_API_KEY environment"),
        (401, {"error": {"message": f"bad key {KEY}"}}, KEY, "set OPENAI_API_KEY to a key"),
    ],
)
def test_server_rejection_is_one_line_and_keeps_the_old_model(
    corpus_file: Path,  # noqa: F811
    existing_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    body: dict,
    key: str | None,
    expected: str,
) -> None:
    if key:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer() as server:
        server.script = [("status", status, body, {})]
        extra = ("--generator-url", server.url, "--generator-model", "qwen9", "--overwrite")
        assert main(_args(corpus_file, existing_model, tmp_path / "no-model", *extra)) == 2
        assert len(server.received) == 1  # the one check request, nothing after it
    line = _error_line(capsys)
    assert expected in line and KEY not in line
    assert (existing_model / "model.safetensors").read_bytes() == b"the old model"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ("--generator-url", "http://localhost:11434/v1"),
            "--generator-url needs --generator-model",
        ),
        (("--generator-model", "qwen2.5:7b"), "--generator-model needs --generator-url"),
    ],
)
def test_half_a_generator_is_refused(
    corpus_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    extra: tuple[str, ...],
    expected: str,
) -> None:
    assert main(_args(corpus_file, tmp_path / "o", tmp_path / "no-model", *extra)) == 2
    assert expected in _error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_generator_with_labelled_pairs_is_refused(
    corpus_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("query\tpassage_id\nq\td1\n", encoding="utf-8")
    extra = ("--pairs", str(pairs), "--generator-url", "http://x/v1", "--generator-model", "m")
    assert main(_args(corpus_file, tmp_path / "o", tmp_path / "no-model", *extra)) == 2
    assert "drop --generator-url" in _error_line(capsys)


@pytest.mark.parametrize("bad", ["localhost:11434/v1", "ftp://host/v1", "http://"])
def test_bad_url_is_an_argparse_error(bad: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["adapt", "--corpus", __file__, "--out", "o", "--generator-url", bad])
    assert info.value.code == 2
    assert "is not an http(s) URL" in capsys.readouterr().err


def test_unknown_round_trip_model_is_an_argparse_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["adapt", "--corpus", __file__, "--out", "o", "--round-trip-model", "trained"])
    assert info.value.code == 2
    # Python 3.12.8+ quotes the choices, earlier versions do not.
    pattern = r"invalid choice: 'trained' \(choose from '?adapted'?, '?base'?\)"
    assert re.search(pattern, capsys.readouterr().err)


def test_there_is_no_key_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["adapt", "--corpus", __file__, "--out", "o", "--api-key", KEY])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_cache_path_defaults(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cache-dir", type=Path)
    add_generator_arguments(parser)
    parse = parser.parse_args
    out = str(tmp_path / "models" / "adapted")
    assert generation_cache_path(parse(["--out", out])) == Path(f"{out}.generated_questions.jsonl")
    cache = generation_cache_path(parse(["--out", out, "--cache-dir", str(tmp_path / "c")]))
    assert cache == tmp_path / "c" / "generated_questions.jsonl"
    given = generation_cache_path(parse(["--out", out, "--generation-cache", "q.jsonl"]))
    assert given == Path("q.jsonl")


@pytest.mark.enable_socket
def test_cli_adapt_from_an_llm(
    corpus_file: Path,  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "adapted"
    with FakeOpenAIServer() as server:
        server.reply = writer
        extra = ("--generator-url", server.url, "--generator-model", "qwen2.5:7b")
        extra += ("--max-pairs", "30", "--questions-per-passage", "2", "--domain", "medicine")
        extra += ("--round-trip-model", "base")
        assert main(_args(corpus_file, out, tiny_model_dir, *extra)) == 0
        asked = server.received[1:]  # after the check request
    assert len(asked) == 15 and all("in the domain of medicine" in p for p in asked)
    cache = tmp_path / "adapted.generated_questions.jsonl"
    assert len(cache.read_text(encoding="utf-8").splitlines()) == 15
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["training"]["question_filters"]["generation"]["questions"] == 30
    assert report["config"]["round_trip_model"] == "base"
    assert report["training"]["source"].startswith("generated questions kept by the round-trip")
    assert "the base model)" in report["training"]["source"]
    for path in [cache, *(p for p in out.rglob("*") if p.is_file())]:
        assert KEY.encode() not in path.read_bytes()
    assert re.search(r"adapted model saved to", capsys.readouterr().out)


@pytest.mark.slow
@pytest.mark.enable_socket
def test_ctrl_c_during_generation_exits_130_then_the_same_command_resumes(
    corpus_file: Path,  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
    existing_model: Path,
) -> None:
    extra = ("--max-pairs", "30", "--questions-per-passage", "2", "--generator-concurrency", "1")
    with FakeOpenAIServer() as server:
        server.reply = writer
        server.script = [("ok",)] * 4 + [("hang",)]  # the check, 3 passages, then no answer
        args = _args(corpus_file, existing_model, tiny_model_dir, "--overwrite", *extra)
        args += ["--generator-url", server.url, "--generator-model", "m"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": KEY}
        proc = subprocess.Popen(
            [sys.executable, "-m", "simcse_rag", *args],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            # A background pytest (`&`, nohup) passes SIGINT on ignored, so the child would
            # never see the Ctrl-C this test sends: give it the default disposition.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 120
            while len(server.received) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(server.received) == 5, "generation never reached the hung request"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
        assert "3 replies are kept in" in err
        assert (existing_model / "model.safetensors").read_bytes() == b"the old model"
        answered = list(server.answered[1:])
        server.received.clear()
        server.script = []

        assert main(args) == 0  # the same command
        asked = server.received[1:]  # after the check request
    assert len(asked) == 12 and not set(asked) & set(answered)
    cache = tmp_path / "adapted.generated_questions.jsonl"
    assert len(cache.read_text(encoding="utf-8").splitlines()) == 15
    assert KEY not in err and KEY.encode() not in cache.read_bytes()
