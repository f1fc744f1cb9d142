"""Checks that an async retriever call leaves the event loop free (shared by the adapter tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def slow_down_search(monkeypatch: pytest.MonkeyPatch, index: Any, seconds: float = 0.5) -> None:
    """Make ``index.search`` and ``index.search_batch`` (what the async paths call) hold their
    thread for ``seconds``, as a large index would."""
    for name in ("search", "search_batch"):
        method = getattr(index, name)

        def slow(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            time.sleep(seconds)
            return _method(*args, **kwargs)

        monkeypatch.setattr(index, name, slow)


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


def record_batches(monkeypatch: pytest.MonkeyPatch, index: Any, seconds: float = 0.1) -> list[int]:
    """Record the number of queries of each ``index.search_batch`` call (each slowed by
    ``seconds``, so that concurrent requests pile up behind it); returns the live list."""
    sizes: list[int] = []
    search_batch = index.search_batch

    def recording(queries: Any, **kwargs: Any) -> Any:
        sizes.append(len(queries))
        time.sleep(seconds)
        return search_batch(queries, **kwargs)

    monkeypatch.setattr(index, "search_batch", recording)
    return sizes
