"""A JSONL cache of LLM replies, so an interrupted generation resumes without asking again.

One line per answered passage, appended and flushed as each reply arrives::

    {"key": "<sha256>", "model": "qwen2.5:7b", "prompt_version": 1, "passage_id": "d1",
     "n": 3, "reply": "..."}

The key hashes (model, prompt version, passage id, passage text, questions asked, domain hint), so
a changed passage, prompt or model is asked again. The raw reply is kept rather than the parsed
questions, so the parsing rules may change without asking the model again. Nothing secret is
written: no API key, header or URL. A torn last line (a run killed mid-write) is skipped on
reading, and the next write starts on a fresh line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from simcse_rag.generation.prompts import PROMPT_VERSION

logger = logging.getLogger(__name__)


def cache_key(model: str, passage_id: str, text: str, n: int, domain: str | None) -> str:
    """The cache key of one request (a hex digest; equal inputs give equal keys)."""
    text_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    fields = [PROMPT_VERSION, model, passage_id, text_hash, n, domain or ""]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


class QuestionCache:
    """Replies by cache key, read from and appended to one JSONL file.

    Use as a context manager (the file is opened for appending on entry)::

        with QuestionCache(path) as cache:
            reply = cache.get(key)
            ...
            cache.add(key, reply, model=..., passage_id=..., n=...)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Read the replies already in ``path`` (a missing file is an empty cache).

        Raises:
            IsADirectoryError: ``path`` is a folder.
        """
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(
                f"generation cache {str(self.path)!r} is a folder; give a file path "
                "(e.g. generated_questions.jsonl)."
            )
        self._replies: dict[str, str] = {}
        self._file: IO[str] | None = None
        self._needs_newline = False
        if self.path.exists():
            self._read()

    def __len__(self) -> int:
        return len(self._replies)

    def __enter__(self) -> QuestionCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        if self._needs_newline:
            self._file.write("\n")
            self._needs_newline = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def get(self, key: str) -> str | None:
        """The cached reply for ``key``, or ``None``."""
        return self._replies.get(key)

    def add(self, key: str, reply: str, **fields: Any) -> None:
        """Record ``reply`` under ``key`` and flush it to disk at once.

        Args:
            key: :func:`cache_key` of the request.
            reply: The model's raw reply.
            **fields: Descriptive fields written with it (model, passage_id, n).
        """
        if self._file is None:
            raise RuntimeError("QuestionCache.add needs the cache opened: use `with cache:`.")
        record = {"key": key, **fields, "prompt_version": PROMPT_VERSION, "reply": reply}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        self._replies[key] = reply

    def _read(self) -> None:
        raw = self.path.read_bytes()
        self._needs_newline = bool(raw) and not raw.endswith(b"\n")
        lines = raw.decode("utf-8", errors="replace").splitlines()
        bad = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key, reply = record["key"], record["reply"]
            except (json.JSONDecodeError, KeyError, TypeError):
                bad += 1
                if number != len(lines):
                    logger.warning("%s line %d is not a cache record; skipped", self.path, number)
                continue
            if isinstance(key, str) and isinstance(reply, str):
                self._replies[key] = reply
        logger.info(
            "generation cache %s: %d replies (%d unreadable lines)",
            self.path,
            len(self._replies),
            bad,
        )
