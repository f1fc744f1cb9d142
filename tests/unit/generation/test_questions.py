"""generate_pairs: pairs from replies, concurrency, the cache, resuming after Ctrl-C, the key."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simcse_rag.generation.openai_client import OpenAIChatClient, RetryPolicy
from simcse_rag.generation.protocol import GeneratorUnavailable
from simcse_rag.generation.questions import generate_pairs, passages_needed, sample_passages
from simcse_rag.schema import Passage
from tests.unit.generation.fake_openai import FakeOpenAI, questions_for

FAST = RetryPolicy(max_retries=1, backoff_s=0.01, max_backoff_s=0.02)
KEY = "sk-test-Zq8SECRETkey"
PASSAGES = [
    Passage(f"d{i}", f"Report {i}: the plant in region {i} produced {100 + i} tonnes in 2020.")
    for i in range(8)
]


def by_passage(pairs: list) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for pair in pairs:
        out.setdefault(pair.positive_id, []).append(pair.query)
    return out


def test_pairs_from_a_function_generator() -> None:
    result = generate_pairs(PASSAGES[:3], questions_for, per_passage=2)
    assert [len(qs) for qs in by_passage(result.pairs).values()] == [2, 2, 2]
    assert result.counts["questions"] == 6 and result.counts["requests"] == 3
    assert result.counts["dropped_extra"] == 3  # questions_for writes 3, 2 were asked for
    pair = result.pairs[0]
    assert pair.positive == PASSAGES[0].text and pair.query_id.startswith("gen:")
    assert len({p.query_id for p in result.pairs}) == 6


def test_async_function_and_running_event_loop() -> None:
    async def generator(prompt: str) -> str:
        await asyncio.sleep(0)
        return questions_for(prompt)

    async def from_async_code() -> int:
        return len(generate_pairs(PASSAGES[:2], generator).pairs)

    assert asyncio.run(from_async_code()) == 6


def test_same_question_for_two_passages_is_kept_once() -> None:
    result = generate_pairs(PASSAGES[:2], lambda prompt: "What did the plant produce in 2020?")
    assert len(result.pairs) == 1 and result.counts["dropped_duplicate"] == 1


@pytest.mark.parametrize("bad", [{"per_passage": 0}, {"concurrency": 0}])
def test_bad_settings(bad: dict) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        generate_pairs(PASSAGES, questions_for, **bad)


def test_sample_passages_is_seeded() -> None:
    first = sample_passages(PASSAGES, 3, seed=1)
    assert first == sample_passages(PASSAGES, 3, seed=1) and len(first) == 3
    assert [p.id for p in first] == sorted((p.id for p in first), key=lambda i: int(i[1:]))
    assert sample_passages(PASSAGES, 100, seed=1) == PASSAGES
    assert passages_needed(10, 3) == 4


@pytest.mark.enable_socket
def test_concurrency_limit_is_respected(openai_server: FakeOpenAI) -> None:
    openai_server.delay_s = 0.1
    client = OpenAIChatClient(openai_server.url, "m", retry=FAST, max_connections=8)
    result = generate_pairs(PASSAGES, client, concurrency=3)
    assert openai_server.max_in_flight == 3
    assert result.counts["requests"] == 8 and len(result.pairs) == 24


@pytest.mark.enable_socket
def test_malformed_and_empty_replies_are_counted(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    openai_server.script = [("raw", b"<html>oops"), ("empty_choices",)]
    cache = tmp_path / "q.jsonl"
    client = OpenAIChatClient(openai_server.url, "m", retry=FAST)
    result = generate_pairs(PASSAGES[:4], client, concurrency=1, cache_path=cache)
    assert result.counts["bad_replies"] == 1 and result.counts["dropped_empty_reply"] == 1
    assert len(by_passage(result.pairs)) == 2
    again = generate_pairs(PASSAGES[:4], client, concurrency=1, cache_path=cache)
    assert again.counts["requests"] == 1  # only the passage whose reply was not a completion
    assert len(by_passage(again.pairs)) == 3


@pytest.mark.enable_socket
def test_server_down_mid_run_keeps_the_replies(
    openai_server: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.script = [("ok",), ("ok",)] + [("status", 503, {}, {})] * 2
    cache = tmp_path / "q.jsonl"
    client = OpenAIChatClient(openai_server.url, "m", retry=FAST)
    with pytest.raises(GeneratorUnavailable, match="HTTP 503"):
        generate_pairs(PASSAGES[:4], client, concurrency=1, cache_path=cache)
    assert "stopped after 2 of 4 passages; 2 replies are kept in" in caplog.text
    result = generate_pairs(PASSAGES[:4], client, concurrency=1, cache_path=cache)
    assert result.counts["cached"] == 2 and result.counts["requests"] == 2


@pytest.fixture
def ctrl_c_reaches_python() -> Iterator[None]:
    """Python's Ctrl-C handler for the test's duration. A shell starts a background job
    (``pytest &``, ``nohup``) with SIGINT ignored, and Python then installs no handler, so the
    SIGINT the fake server sends would be dropped; Ctrl-C at a terminal reaches this handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.enable_socket
@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_ctrl_c_then_resume_sends_no_answered_prompt_again(
    openai_server: FakeOpenAI, tmp_path: Path, ctrl_c_reaches_python: None
) -> None:
    openai_server.script = [("ok",)] * 3 + [("sigint",)]
    cache = tmp_path / "q.jsonl"
    client = OpenAIChatClient(openai_server.url, "m", timeout=10, retry=FAST)
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        generate_pairs(PASSAGES, client, concurrency=1, cache_path=cache)
    assert time.perf_counter() - started < 5
    first_run = list(openai_server.answered)
    assert len(first_run) == 3
    openai_server.received.clear()

    result = generate_pairs(PASSAGES, client, concurrency=1, cache_path=cache)
    assert not set(openai_server.received) & set(first_run)  # nothing answered is asked again
    assert len(openai_server.answered) == len(set(openai_server.answered)) == len(PASSAGES)
    assert result.counts["cached"] == 3 and result.counts["requests"] == 5
    assert len(by_passage(result.pairs)) == len(PASSAGES)


@pytest.mark.enable_socket
def test_key_is_in_no_written_file_or_log(
    openai_server: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level("DEBUG")
    cache = tmp_path / "q.jsonl"
    openai_server.script = [("status", 429, {"error": {"message": f"key {KEY} over quota"}}, {})]
    client = OpenAIChatClient(openai_server.url, "m", retry=FAST)
    result = generate_pairs(PASSAGES, client, cache_path=cache, show_progress=True)
    assert len(result.pairs) == 24
    assert set(openai_server.authorizations) == {f"Bearer {KEY}"}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [cache]
    for path in files:
        assert KEY not in path.read_text(encoding="utf-8")
    assert KEY not in caplog.text and "over quota" in caplog.text  # the retry was logged
