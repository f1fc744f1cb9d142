"""CPU thread policy: cores from affinity and cgroup quota, passive waiting, user values win."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simcse_rag import threads

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("content", "expected"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000", 0.5), ("garbage", None)],
)
def test_cgroup_quota(tmp_path: Path, content: str, expected: float | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(content)
    assert threads._cgroup_quota(path) == expected
    assert threads._cgroup_quota(tmp_path / "missing") is None


def test_available_cores_is_capped_by_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    assert threads.available_cores() == 4
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 1.5)
    assert threads.available_cores() == 2  # a fractional quota still gets a whole thread
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 0.2)
    assert threads.available_cores() == 1


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("0", None), ("x", None), ("", None)])
def test_thread_count_honours_omp_num_threads(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int | None
) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 7)
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert threads.thread_count() == (expected or 7)


def test_configure_environment_keeps_user_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv("KMP_BLOCKTIME", raising=False)
    threads.configure_environment()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert os.environ["KMP_BLOCKTIME"] == "0"


PROBE = """
import json, os
import simcse_rag
from simcse_rag.index.dense import DenseIndex
import faiss, torch
DenseIndex(4, "flat")
cores = simcse_rag.threads.available_cores()
print(json.dumps({"wait": os.environ.get("OMP_WAIT_POLICY"), "torch": torch.get_num_threads(),
                  "faiss": faiss.omp_get_max_threads(), "cores": cores}))
"""


def _probe(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    clean["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=clean | env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_sets_passive_waiting_and_sizes_pools_from_the_usable_cores() -> None:
    got = _probe()
    assert got["wait"] == "PASSIVE"
    assert got["torch"] == got["faiss"] == got["cores"]


def test_user_thread_count_wins() -> None:
    got = _probe(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    assert got["wait"] == "ACTIVE"
    assert got["torch"] == got["faiss"] == 1


class _FakeTorch:
    def __init__(self, threads: int) -> None:
        self.threads = threads

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, n: int) -> None:
        self.threads = n


@pytest.mark.parametrize(("before", "after"), [(8, 2), (1, 1), (2, 2)])
def test_configure_torch_only_lowers_the_pool(
    monkeypatch: pytest.MonkeyPatch, before: int, after: int
) -> None:
    """An application's smaller setting stands; a pool sized past the usable cores is capped."""
    monkeypatch.setattr(threads, "_configured", set())
    monkeypatch.setattr(threads, "thread_count", lambda: 2)
    fake = _FakeTorch(before)
    threads.configure_torch(fake)
    assert fake.threads == after
    fake.threads = 8
    threads.configure_torch(fake)  # once per process
    assert fake.threads == 8
