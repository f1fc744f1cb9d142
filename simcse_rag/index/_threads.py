"""Thread helpers for the indexes (internal): a per-thread OpenMP limit and a read/write lock."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def openmp_thread_limit(
    get: Callable[[], int], set_: Callable[[int], None], n: int | None
) -> Iterator[None]:
    """Cap an OpenMP library's thread count at ``n`` for the calling thread only.

    OpenMP keeps the count per thread (libgomp's ``nthreads-var`` belongs to the calling
    thread), so the shared counter of :class:`simcse_rag.threads.ThreadLimit` is wrong for it:
    the first of two concurrent callers would lower only its own count and the second would
    search with the full pool, and with a pool per calling thread, searches from an executor's
    threads oversubscribe the CPU. Each caller therefore lowers and restores its own count
    (``None``: no change).
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
