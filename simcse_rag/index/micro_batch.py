"""Micro-batching of concurrent async searches into :meth:`HybridRetriever.search_batch` calls.

An async application (a LangChain or LlamaIndex chain under asyncio, a web service) issues many
searches at once. Run as one thread per search, each pays the whole per-call cost and they
contend for the CPU; gathered into one ``search_batch`` call, the dense leg scores all of them in
one FAISS call and the per-call work runs once per batch. Model servers call this dynamic
batching.

Policy, with no timer: a request leaves at once while fewer than ``max_in_flight`` batches run,
so a request to an idle retriever never waits; otherwise it waits for a running batch to end,
and everything waiting by then leaves together (at most ``max_batch`` queries per call). Requests
are grouped by everything besides the query that changes a result (``k``, ``mode``,
``candidates``, the filter's canonical key), so one call never mixes two filters. Each caller
awaits its own future: an error reaches the callers of its group only, a bad filter only its own
caller, and a caller cancelled before its batch leaves is dropped from it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from simcse_rag import _validate, threads
from simcse_rag.index.filters import Filter, parse_filter
from simcse_rag.schema import Hit

__all__ = ["MicroBatcher", "shared_batcher"]

#: What a search's result depends on besides its query: k, mode, candidates, filter key.
GroupKey = tuple[int, str, int, str | None]


@dataclass
class _Waiting:
    """The requests of one event loop that have not left yet, by group, oldest group first."""

    groups: dict[GroupKey, list[tuple[str, asyncio.Future[list[Hit]]]]] = field(
        default_factory=dict
    )
    filters: dict[GroupKey, Filter | None] = field(default_factory=dict)
    in_flight: int = 0
    flush_scheduled: bool = False


class MicroBatcher:
    """Gathers concurrent :meth:`search` calls on one retriever into ``search_batch`` calls.

    Args:
        retriever: A :class:`~simcse_rag.index.hybrid.HybridRetriever` (anything with its
            ``search_batch``).
        max_batch: Most queries in one call.
        max_in_flight: Most calls running at once, each in the event loop's default executor
            (default: the usable cores, so each core can run one).

    Example:
        >>> batcher = MicroBatcher(retriever)
        >>> hits = await asyncio.gather(*(batcher.search(q, k=5) for q in questions))
    """

    def __init__(
        self, retriever: Any, *, max_batch: int = 32, max_in_flight: int | None = None
    ) -> None:
        self._retriever = retriever
        self.max_batch = _validate.positive_int(max_batch, "max_batch")
        self.max_in_flight = (
            threads.available_cores()
            if max_in_flight is None
            else _validate.positive_int(max_in_flight, "max_in_flight")
        )
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waiting] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()  # event loops in several threads may share a batcher

    async def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: str = "hybrid",
        candidates: int = 100,
        filter: Any = None,  # noqa: A002 - the name every RAG framework uses
    ) -> list[Hit]:
        """:meth:`HybridRetriever.search`, awaited: the same hits, searched with whichever
        concurrent requests share its settings.

        Raises:
            TypeError: ``query`` is not a string.
            ValueError: A bad ``k``, ``mode``, ``candidates`` or filter (raised here, to this
                caller only, before anything is queued).
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}.")
        k = _validate.check_k(k)
        mode = _validate.check_mode(mode)
        candidates = _validate.positive_int(candidates, "candidates")
        flt = None if filter is None else parse_filter(filter)
        key: GroupKey = (k, mode, candidates, None if flt is None else flt.key)
        loop = asyncio.get_running_loop()
        waiting = self._waiting(loop)
        future: asyncio.Future[list[Hit]] = loop.create_future()
        waiting.groups.setdefault(key, []).append((query, future))
        waiting.filters.setdefault(key, flt)
        self._schedule(loop, waiting)
        return await future

    def _waiting(self, loop: asyncio.AbstractEventLoop) -> _Waiting:
        with self._lock:
            return self._loops.setdefault(loop, _Waiting())

    def _schedule(self, loop: asyncio.AbstractEventLoop, waiting: _Waiting) -> None:
        # Flushing on the loop's next turn (not now) lets requests that arrive in this turn
        # leave with this one, at no wait.
        if waiting.in_flight < self.max_in_flight and not waiting.flush_scheduled:
            waiting.flush_scheduled = True
            loop.call_soon(self._flush, loop, waiting)

    def _flush(self, loop: asyncio.AbstractEventLoop, waiting: _Waiting) -> None:
        waiting.flush_scheduled = False
        while waiting.groups and waiting.in_flight < self.max_in_flight:
            key = next(iter(waiting.groups))
            queued = [(q, f) for q, f in waiting.groups[key] if not f.cancelled()]
            batch, rest = queued[: self.max_batch], queued[self.max_batch :]
            flt = waiting.filters[key]
            if rest:
                waiting.groups[key] = rest
            else:
                del waiting.groups[key], waiting.filters[key]
            if batch:
                self._start(loop, waiting, key, flt, batch)

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        waiting: _Waiting,
        key: GroupKey,
        flt: Filter | None,
        batch: Sequence[tuple[str, asyncio.Future[list[Hit]]]],
    ) -> None:
        k, mode, candidates, _ = key
        call = functools.partial(
            self._retriever.search_batch,
            [q for q, _ in batch],
            k=k,
            mode=mode,
            candidates=candidates,
            filter=flt,
        )
        waiting.in_flight += 1
        running = loop.run_in_executor(None, call)
        running.add_done_callback(
            functools.partial(self._finish, loop, waiting, [f for _, f in batch])
        )

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        waiting: _Waiting,
        futures: list[asyncio.Future[list[Hit]]],
        running: asyncio.Future[list[list[Hit]]],
    ) -> None:
        waiting.in_flight -= 1
        error = None if running.cancelled() else running.exception()
        for i, future in enumerate(futures):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if running.cancelled():
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(running.result()[i])
        if waiting.groups:
            self._schedule(loop, waiting)


_SHARED: weakref.WeakKeyDictionary[Any, MicroBatcher] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def shared_batcher(retriever: Any) -> MicroBatcher:
    """The one :class:`MicroBatcher` of ``retriever`` (made on first use), so every adapter over
    the same index batches its requests together."""
    with _SHARED_LOCK:
        batcher = _SHARED.get(retriever)
        if batcher is None:
            batcher = _SHARED[retriever] = MicroBatcher(retriever)
        return batcher
