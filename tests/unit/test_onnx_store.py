"""The on-disk store of ONNX exports stays bounded: least recently used entries go first."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from simcse_rag import onnx_store

MB = 2**20


def _put(key: str, megabytes: float, used: float | None = None) -> Path:
    """Store ``megabytes`` of bytes under ``key``; ``used`` sets its last-use time."""
    onnx_store.put(key, b"x" * int(megabytes * MB), fingerprint=key, recipe="fp32")
    folder = onnx_store.cache_dir() / key
    if used is not None:
        os.utime(folder / onnx_store.META_FILE, (used, used))
    return folder


def _keys(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir()}


def test_prune_removes_least_recently_used_first_and_never_the_kept_one(
    onnx_store_dir: Path,
) -> None:
    old, mid, new = _put("old", 1, used=1_000), _put("mid", 1, used=2_000), _put("new", 1, 3_000)
    assert _keys(onnx_store_dir) == {"old", "mid", "new"}
    assert onnx_store.prune(onnx_store_dir, int(2.5 * MB), keep="new") == ["old"]
    assert not old.exists() and mid.exists() and new.exists()
    # Under a limit no entry fits, the kept one still stays.
    assert onnx_store.prune(onnx_store_dir, 0, keep="new") == ["mid"]
    assert _keys(onnx_store_dir) == {"new"}


def test_a_read_marks_the_entry_as_used(
    onnx_store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(onnx_store.MAX_MB_ENV_VAR, "0")  # no pruning while filling
    _put("a", 1, used=1_000)
    _put("b", 1, used=2_000)
    onnx_store.clear_memory()  # a new process: the read goes to disk
    assert onnx_store.get("a") is not None
    assert onnx_store.prune(onnx_store_dir, int(1.5 * MB)) == ["b"]
    assert _keys(onnx_store_dir) == {"a"}


def test_each_write_prunes_to_the_limit_set_in_the_environment(
    onnx_store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(onnx_store.MAX_MB_ENV_VAR, "2.5")
    _put("first", 1, used=1_000)
    _put("second", 1, used=2_000)
    _put("third", 1)  # now 3 MB: the least recently used goes
    assert _keys(onnx_store_dir) == {"second", "third"}
    _put("huge", 4)  # larger than the limit alone: it stays, everything else goes
    assert _keys(onnx_store_dir) == {"huge"}
    assert onnx_store.get("huge") == b"x" * (4 * MB)


def test_zero_keeps_everything_and_incomplete_entries_are_left_alone(
    onnx_store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(onnx_store.MAX_MB_ENV_VAR, "0")
    assert onnx_store.max_bytes() is None
    for i in range(3):
        _put(f"k{i}", 1)
    assert len(_keys(onnx_store_dir)) == 3
    writing = onnx_store_dir / ".k9.tmp-1234"  # another process's write in progress
    writing.mkdir()
    (writing / onnx_store.MODEL_FILE).write_bytes(b"x" * MB)
    broken = onnx_store_dir / "no-meta"
    broken.mkdir()
    assert sorted(onnx_store.prune(onnx_store_dir, 0, keep="k2")) == ["k0", "k1"]
    assert writing.exists() and broken.exists()


@pytest.mark.parametrize("value", ["lots", "-1", "nan"])
def test_a_bad_limit_warns_and_keeps_the_default(
    value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(onnx_store.MAX_MB_ENV_VAR, value)
    with caplog.at_level(logging.WARNING):
        assert onnx_store.max_bytes() == onnx_store.DEFAULT_MAX_MB * MB
    (record,) = caplog.records
    assert f"{onnx_store.MAX_MB_ENV_VAR}={value!r}" in record.getMessage()
    assert "set 0 to keep every model" in record.getMessage()
