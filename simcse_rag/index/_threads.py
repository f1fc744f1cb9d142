"""Thread helpers for the indexes (internal): scoped thread-count limits and a read/write lock."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class ThreadLimit:
    """Scoped, re-entrant-safe cap on a library's global thread count.

    One short query is too small to split across threads: the OpenMP fork/join costs more than it
    saves, and on a busy CPU the extra workers made a query many times slower (numbers in
    docs/benchmarks.md, "Threads"). The setting is process-global, so concurrent users share one
    counter: the first entrant lowers it, the last one out restores it.

    Args:
        get: Returns the library's current thread count.
        set_: Sets it.
    """

    def __init__(self, get: Callable[[], int], set_: Callable[[int], None]) -> None:
        self._get, self._set = get, set_
        self._lock = threading.Lock()
        self._users = 0
        self._before = 0

    @contextlib.contextmanager
    def __call__(self, n: int | None) -> Iterator[None]:
        if n is None:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._before = self._get()
                if n < self._before:
                    self._set(n)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._get() != self._before:
                    self._set(self._before)


@contextlib.contextmanager
def openmp_thread_limit(
    get: Callable[[], int], set_: Callable[[int], None], n: int | None
) -> Iterator[None]:
    """Cap an OpenMP library's thread count at ``n`` for the calling thread only.

    OpenMP keeps the count per thread (libgomp's ``nthreads-var`` belongs to the calling
    thread), so :class:`ThreadLimit`'s shared counter is wrong for it: the first of two
    concurrent callers would lower only its own count and the second would search with the full
    pool, and with a pool per calling thread, searches from an executor's threads oversubscribe
    the CPU. Each caller therefore lowers and restores its own count (``None``: no change).
    """
    before = get() if n is not None else 0
    if n is None or n >= before:
        yield
        return
    set_(n)
    try:
        yield
    finally:
        set_(before)


class ReadWriteLock:
    """Many readers or one writer (writers are not starved: new readers wait for them)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
