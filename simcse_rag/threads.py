"""CPU thread policy: one thread count for every library, taken from the cores we may use.

PyTorch, FAISS (both OpenMP) and ONNX Runtime each size their thread pools to all the cores of
the machine, and OpenMP workers spin while they wait for the next parallel region. On a 2-core
laptop with a browser open, or a CI runner with another job, the spinning workers compete with
the other process and with each other, and CPU time (not only wall time) grows several-fold.
So, once per process:

- the thread count comes from the cores this process may actually run on (CPU affinity and the
  cgroup CPU quota, not ``os.cpu_count()``), or from ``OMP_NUM_THREADS`` when the user set it;
- OpenMP waits passively (``OMP_WAIT_POLICY=PASSIVE``; ``KMP_BLOCKTIME=0`` for Intel's
  runtime): an idle worker sleeps instead of burning a core. These are read when the OpenMP
  runtime loads, so :func:`configure_environment` runs when ``simcse_rag`` is imported, before
  it imports torch or faiss; a value the user exported wins;
- ONNX Runtime sessions are created with spinning off (see :mod:`simcse_rag.query_encoder`).

Nothing here changes a setting the user made explicitly.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Environment defaults applied before the OpenMP runtimes load (never over a user's value).
ENV_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}

_lock = threading.Lock()
_configured: set[str] = set()


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """CPUs allowed by the cgroup v2 quota (``"max 100000"`` means no quota), or ``None``."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def thread_count() -> int:
    """Threads each library should use: ``OMP_NUM_THREADS`` when set to a positive integer,
    else :func:`available_cores`."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return available_cores()


def configure_environment() -> None:
    """Set the OpenMP wait policy defaults (see the module docstring); idempotent."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def configure_torch(torch: Any) -> None:
    """Cap PyTorch's intra-op pool at :func:`thread_count` once per process.

    Only ever lowers it (torch sizes it to the machine's physical cores, which can exceed the
    affinity or quota), so a smaller count the application set stands. The inter-op pool is left
    alone: setting it would make a later ``torch.set_num_interop_threads`` in the application
    fail.
    """
    if _first("torch"):
        n = thread_count()
        if torch.get_num_threads() > n:
            torch.set_num_threads(n)


def configure_faiss(faiss: Any) -> None:
    """Cap FAISS's OpenMP pool at :func:`thread_count` once per process (only ever lowered)."""
    if _first("faiss"):
        n = thread_count()
        if faiss.omp_get_max_threads() > n:
            faiss.omp_set_num_threads(n)


def _first(library: str) -> bool:
    with _lock:
        if library in _configured:
            return False
        _configured.add(library)
        return True


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
