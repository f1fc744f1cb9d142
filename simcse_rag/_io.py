"""Small file helpers: JSON, JSON Lines, ``.npy`` and crash-safe directory writes (internal)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: Age after which an abandoned ``.NAME.tmp-*`` folder (a crashed save) is removed.
_STALE_TMP_SECONDS = 3600


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as pretty UTF-8 JSON and flush it to disk."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: Path, *, what: str = "file") -> Any:
    """Read a JSON file, raising ``ValueError`` that names the file on any problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise ValueError(f"{what} {path} is missing.") from exc
    except (OSError, ValueError) as exc:  # ValueError: bad UTF-8 / JSON, 4300+ digit integers
        raise ValueError(f"{what} {path} is unreadable or corrupted: {exc}") from exc


def read_json_if_present(path: Path, *, what: str = "file") -> Any:
    """Like :func:`read_json`, but ``None`` when the file does not exist (optional files)."""
    if not path.is_file():
        return None
    return read_json(path, what=what)


def read_npy(path: Path) -> np.ndarray:
    """Read a ``.npy`` array (no pickle); ``ValueError`` naming the file on any problem."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"Index file {path} is missing.") from None
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"Index file {path} is unreadable or corrupted: {exc}") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON Lines file.

    Raises:
        ValueError: A line is not valid JSON or not an object (the line number is named), or the
            file is not UTF-8.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:  # JSONDecodeError, or an integer over 4300 digits
                    msg = getattr(exc, "msg", None) or str(exc).split(";")[0]
                    raise ValueError(f"{path}:{lineno}: malformed JSON ({msg}).") from exc
                except RecursionError as exc:  # "[[[[..." thousands deep
                    raise ValueError(f"{path}:{lineno}: JSON nested too deeply.") from exc
                if not isinstance(obj, dict):
                    raise ValueError(f"{path}:{lineno}: expected a JSON object per line.")
                yield lineno, obj
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text; re-encode it as UTF-8.") from exc


def atomic_write_dir(target: Path, writer: Callable[[Path], None]) -> None:
    """Build a directory in a temporary sibling, then swap it into place.

    A crash or exception at any moment leaves ``target`` either exactly as it was or complete
    with the new contents, never half-written: every file is fsynced before the swap, and on Linux
    the swap is one atomic ``renameat2(RENAME_EXCHANGE)``. Elsewhere the old folder is first
    renamed aside (``.NAME.old-*``) and the new one renamed in; a crash between those two renames
    is repaired by :func:`recover_dir`, which this function (and loaders) call first.

    Args:
        target: Final directory path.
        writer: Called with an empty temporary directory to fill.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(target)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        writer(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists() and _exchange(tmp, target):
        _fsync_path(target.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the old contents
        return
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_path(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: Path) -> None:
    """Undo a crash inside :func:`atomic_write_dir`'s two-rename fallback.

    If ``target`` is missing but a ``.NAME.old-*`` sibling exists (the previous contents, moved
    aside just before the crash), move it back. Once ``target`` is in place, leftover
    ``.NAME.old-*`` folders are removed, and so are ``.NAME.tmp-*`` folders (a crash while
    writing) older than an hour; younger ones may belong to a save still running.
    """
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return
    if not target.exists():
        olds = sorted(parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            os.replace(olds[-1], target)
            _fsync_path(parent)
    if target.exists():
        cutoff = time.time() - _STALE_TMP_SECONDS
        for stale in parent.glob(f".{target.name}.tmp-*"):
            with contextlib.suppress(OSError):
                if stale.stat().st_mtime < cutoff:
                    shutil.rmtree(stale, ignore_errors=True)
        for stale in parent.glob(f".{target.name}.old-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns False where unsupported (other systems, old kernels / C libraries, some
    filesystems), so the caller falls back to two renames.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (so a power cut cannot leave empty files)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            _fsync_path(os.path.join(folder, name))
        _fsync_path(Path(folder))


def _fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file or folder; best effort, so skipped where it cannot be opened or synced."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - unreadable special file, or no directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
