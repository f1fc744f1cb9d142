"""The OpenAI-compatible client against a local fake server: replies, retries, errors, the key."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from simcse_rag.generation.openai_client import (
    OpenAIChatClient,
    RetryPolicy,
    public_url,
    retry_after_seconds,
)
from simcse_rag.generation.protocol import (
    GeneratorRejected,
    GeneratorUnavailable,
    ReplyFormatError,
)
from tests.unit.generation.fake_openai import FakeOpenAI

pytestmark = pytest.mark.enable_socket

FAST = RetryPolicy(max_retries=2, backoff_s=0.01, max_backoff_s=0.02)
KEY = "sk-test-Zq8SECRETkey"


def complete(client: OpenAIChatClient, prompt: str = "Passage:\nsome text") -> str:
    async def go() -> str:
        try:
            return await client.complete(prompt)
        finally:
            await client.aclose()

    return asyncio.run(go())


def check(client: OpenAIChatClient) -> None:
    async def go() -> None:
        try:
            await client.check()
        finally:
            await client.aclose()

    asyncio.run(go())


def one_line(message: str) -> bool:
    return "\n" not in message and len(message) < 400


def test_success(openai_server: FakeOpenAI) -> None:
    client = OpenAIChatClient(openai_server.url, "qwen2.5:7b", retry=FAST)
    reply = complete(client, "Passage:\nabc")
    assert reply.startswith("1. Which finding number 1")
    assert openai_server.received == ["Passage:\nabc"]
    check(client)  # the cheap request passes too


def test_empty_choices_is_an_empty_reply(openai_server: FakeOpenAI) -> None:
    openai_server.script = [("empty_choices",)]
    assert complete(OpenAIChatClient(openai_server.url, "m", retry=FAST)) == ""


@pytest.mark.parametrize(
    "payload", [b"<html>not json</html>", b'{"id": "x"}', b'{"choices": "no"}', b"[1, 2]"]
)
def test_malformed_reply_raises_reply_format_error(
    openai_server: FakeOpenAI, payload: bytes
) -> None:
    openai_server.script = [("raw", payload)]
    with pytest.raises(ReplyFormatError, match="OpenAI-compatible") as info:
        complete(OpenAIChatClient(openai_server.url, "m", retry=FAST))
    assert one_line(str(info.value))
    assert len(openai_server.received) == 1  # not retried


def test_429_then_success_honours_retry_after(openai_server: FakeOpenAI) -> None:
    openai_server.script = [
        ("status", 429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
    ]
    started = time.perf_counter()
    reply = complete(OpenAIChatClient(openai_server.url, "m", retry=FAST))
    elapsed = time.perf_counter() - started
    assert reply.startswith("1.")
    assert len(openai_server.received) == 2
    assert elapsed >= 0.95  # waited what the server asked, not the 0.02 s backoff


def test_retry_after_is_bounded(openai_server: FakeOpenAI) -> None:
    openai_server.script = [("status", 429, {}, {"Retry-After": "3600"})]
    policy = RetryPolicy(max_retries=2, backoff_s=0.01, max_retry_after_s=0.1)
    client = OpenAIChatClient(openai_server.url, "m", retry=policy)

    async def go() -> str:
        try:  # a bound, so an unbounded wait fails here instead of hanging the suite
            return await asyncio.wait_for(client.complete("Passage:\nx"), timeout=5)
        finally:
            await client.aclose()

    assert asyncio.run(go()).startswith("1.")
    assert len(openai_server.received) == 2


def test_500_retries_exhausted_is_a_clear_error(openai_server: FakeOpenAI) -> None:
    openai_server.script = [("status", 500, {"error": {"message": "CUDA out of memory"}}, {})] * 3
    with pytest.raises(GeneratorUnavailable) as info:
        complete(OpenAIChatClient(openai_server.url, "m", retry=FAST))
    message = str(info.value)
    assert "HTTP 500: CUDA out of memory" in message and "after 3 tries" in message
    assert one_line(message)
    assert len(openai_server.received) == 3


def test_hung_request_times_out_then_retries(openai_server: FakeOpenAI) -> None:
    openai_server.script = [("hang",)]
    started = time.perf_counter()
    reply = complete(OpenAIChatClient(openai_server.url, "m", timeout=0.3, retry=FAST))
    assert reply.startswith("1.")
    assert len(openai_server.received) == 2
    assert time.perf_counter() - started < 5


def test_always_hung_request_is_a_timeout_error(openai_server: FakeOpenAI) -> None:
    openai_server.script = [("hang",)] * 3
    with pytest.raises(GeneratorUnavailable, match=r"no reply within 0.2 s after 3 tries") as info:
        complete(OpenAIChatClient(openai_server.url, "m", timeout=0.2, retry=FAST))
    assert "--generator-timeout" in str(info.value)
    assert one_line(str(info.value))


def test_connection_refused_is_one_line() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OpenAIChatClient(f"http://127.0.0.1:{port}/v1", "m", retry=FAST)
    started = time.perf_counter()
    with pytest.raises(GeneratorUnavailable, match="connection refused") as info:
        check(client)
    assert "--generator-url" in str(info.value) and one_line(str(info.value))
    assert time.perf_counter() - started < 2  # no backoff on a refused connection


@pytest.mark.parametrize("status", [404, 400])
def test_rejected_model_names_the_model(openai_server: FakeOpenAI, status: int) -> None:
    error = {"error": {"message": "model 'qwen9:1b' not found, try pulling it first"}}
    openai_server.script = [("status", status, error, {})]
    with pytest.raises(GeneratorRejected) as info:
        check(OpenAIChatClient(openai_server.url, "qwen9:1b", retry=FAST))
    message = str(info.value)
    assert "'qwen9:1b'" in message and "not found, try pulling it first" in message
    assert "--generator-model" in message and one_line(message)
    assert len(openai_server.received) == 1  # a 4xx is not retried


def test_missing_key_says_how_to_set_it(
    openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai_server.script = [("status", 401, {"error": {"message": "missing api key"}}, {})]
    with pytest.raises(GeneratorRejected, match="set the OPENAI_API_KEY environment variable"):
        check(OpenAIChatClient(openai_server.url, "m", retry=FAST))
    assert openai_server.authorizations == [None]


def test_key_is_sent_but_never_shown(
    openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level("DEBUG")
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    openai_server.script = [("status", 500, echo, {})] * 3 + [("status", 401, echo, {})]
    client = OpenAIChatClient(openai_server.url, "m", retry=FAST)
    with pytest.raises(GeneratorUnavailable) as unavailable:
        complete(client)
    with pytest.raises(GeneratorRejected) as rejected:
        complete(client)
    assert openai_server.authorizations == [f"Bearer {KEY}"] * 4
    for text in (str(unavailable.value), str(rejected.value), repr(client), caplog.text):
        assert KEY not in text
    assert "***" in str(rejected.value)


def test_url_credentials_are_not_shown() -> None:
    client = OpenAIChatClient("https://user:pa55@llm.example.com:8443/v1/", "m")
    assert "pa55" not in repr(client) and "pa55" not in client.url
    assert client.url == "https://llm.example.com:8443/v1/chat/completions"
    assert public_url("http://localhost:11434/v1") == "http://localhost:11434/v1"


@pytest.mark.parametrize(
    ("url", "model", "match"),
    [
        ("localhost:11434/v1", "m", "not an http"),
        ("ftp://host/v1", "m", "not an http"),
        ("http://localhost:11434/v1", " ", "model name"),
    ],
)
def test_bad_settings_are_refused(url: str, model: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OpenAIChatClient(url, model)


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
