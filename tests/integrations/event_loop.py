"""Checks that an async retriever call leaves the event loop free (shared by the adapter tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def slow_down_search(monkeypatch: pytest.MonkeyPatch, index: Any, seconds: float = 0.5) -> None:
    """Make ``index.search`` hold its thread for ``seconds``, as a large index would."""
    search = index.search

    def slow_search(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return search(*args, **kwargs)

    monkeypatch.setattr(index, "search", slow_search)


async def ticks_while(call: Awaitable[T]) -> tuple[T, int]:
    """Await ``call`` while a ticker coroutine counts 10 ms sleeps; a blocked loop ticks ~once."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await call
    finally:
        task.cancel()
    return result, ticks
