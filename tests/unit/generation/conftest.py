"""Fixtures of the generator tests: the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.generation.fake_openai import FakeOpenAI, FakeOpenAIServer


@pytest.fixture()
def openai_server() -> Iterator[FakeOpenAI]:
    """A fake chat-completions server on 127.0.0.1 (tests using it need ``enable_socket``)."""
    with FakeOpenAIServer() as state:
        yield state
