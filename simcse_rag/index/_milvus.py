"""Shared plumbing of the Milvus-backed indexes (internal).

Connection handling, one-line errors, id checks, filter-expression quoting and the save / load of
connection settings, used by :class:`~simcse_rag.index.milvus.MilvusDenseIndex` and
:class:`~simcse_rag.index.milvus_bm25.MilvusBM25Index`.

Ids are matched with filter expressions quoted here, because ``pymilvus``'s ``get`` /
``delete(ids=...)`` paste string ids into the expression unescaped (an id holding a quote breaks
them) and Milvus Lite does not support templated ``filter_params``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from simcse_rag import _io, _validate

logger = logging.getLogger(__name__)

#: Longest id accepted (UTF-8 bytes); the ``VARCHAR`` primary key's ``max_length``.
MAX_ID_BYTES = 2_048
ID_FIELD = "id"
COLLECTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
REMOTE_SCHEMES = ("http://", "https://", "tcp://", "unix:")
#: Ids per query / delete request.
ID_BATCH = 1_000

_IndexT = TypeVar("_IndexT", bound="MilvusCollection")


def import_pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError:
        raise ImportError(
            "The Milvus backend needs pymilvus and milvus-lite; install them with "
            "`pip install 'simcse-rag[milvus]'`."
        ) from None
    return pymilvus


def one_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


def quote(text: str) -> str:
    """Quote ``text`` as a Milvus filter-expression string literal (C-style escapes)."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def ids_expr(ids: Sequence[str]) -> str:
    return f"{ID_FIELD} in [{', '.join(quote(i) for i in ids)}]"


def check_ids(ids: Iterable[str], what: str = "ids") -> list[str]:
    out = _validate.str_ids(ids, what)
    for i, doc_id in enumerate(out):
        if len(doc_id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise ValueError(
                f"{what}[{i}] is longer than {MAX_ID_BYTES} UTF-8 bytes (Milvus VARCHAR primary "
                "key limit); shorten or hash the id."
            )
        try:
            doc_id.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"{what}[{i}] is not valid Unicode (lone surrogate): {doc_id!r}."
            ) from None
    return out


def resolve_uri(uri: str) -> str:
    """Validate a Milvus URI; a Milvus Lite path is made absolute.

    Raises:
        ValueError: Neither a server URI nor a local path ending in ``.db``, or the path's folder
            does not exist.
    """
    if not isinstance(uri, (str, os.PathLike)):
        raise TypeError(f"uri must be a string, got {type(uri).__name__}.")
    uri = os.fspath(uri)
    if uri.startswith(REMOTE_SCHEMES):
        return uri
    if "://" in uri:
        raise ValueError(
            f"Milvus URI {uri!r} has an unsupported scheme; use http://host:19530 (or https://, "
            "tcp://, unix:) for a server, or a local path ending in .db for Milvus Lite."
        )
    if not uri.endswith(".db"):
        raise ValueError(
            f"Milvus Lite path {uri!r} must end in '.db' (e.g. {uri.rstrip('/')}.db), or use "
            "http://host:19530 for a Milvus server."
        )
    path = Path(uri).expanduser().resolve()
    if not path.parent.is_dir():
        raise ValueError(
            f"Milvus Lite path {uri!r}: folder {str(path.parent)!r} does not exist; "
            "create it first."
        )
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"Milvus Lite path {uri!r} is a file, not a Milvus Lite data folder; "
            "choose another path."
        )
    return str(path)


def is_lite(uri: str) -> bool:
    """Whether ``uri`` names a local Milvus Lite database (rather than a server)."""
    return not os.fspath(uri).startswith(REMOTE_SCHEMES)


def check_save_target(uri: str, target: Path) -> None:
    """Refuse a save whose folder (replaced as a whole) would contain the Milvus Lite data."""
    if is_lite(uri) and Path(uri).resolve().is_relative_to(Path(target).resolve()):
        raise ValueError(
            f"Milvus Lite data {uri!r} lies inside {str(target)!r}, which save() "
            "replaces; keep the .db folder beside the saved index instead."
        )


def check_collection_name(collection: str) -> str:
    if not isinstance(collection, str) or not COLLECTION_RE.match(collection):
        raise ValueError(
            f"Milvus collection name {collection!r} is invalid; use letters, digits and '_' "
            "(not starting with a digit, at most 255 characters)."
        )
    return collection


class MilvusCollection:
    """Base of the Milvus indexes: a client bound to one collection, with a cached row count.

    Subclasses set ``uri``, ``collection`` and ``db_name``, then call :meth:`_open` with a
    ``create`` callback (makes the collection) and a ``check`` callback (validates an existing
    one's schema). For persistence they set the class attributes below and implement
    :meth:`_own_settings` / :meth:`_settings_kwargs`; :meth:`save` and :meth:`load` do the rest.
    """

    #: Version written into, and required from, the settings file.
    FORMAT_VERSION = 1
    #: ``backend`` value in the settings file.
    BACKEND: str
    #: Name of the settings file :meth:`save` writes.
    SETTINGS_FILE: str
    #: What the settings file is called in error messages.
    SETTINGS_WHAT: str
    #: What one row is called in error messages (``"vectors"``, ``"documents"``).
    ROWS: str

    uri: str
    collection: str
    db_name: str

    def _open(self, token: str | None, create: Any, check: Any) -> None:
        self._pymilvus = import_pymilvus()
        self._client = None
        self._client = self._connect(
            token if token is not None else os.environ.get("MILVUS_TOKEN", "")
        )
        if self._call("lookup", "has_collection", self.collection):
            check(self._call("describe", "describe_collection", self.collection))
        else:
            create()
        self._call("load", "load_collection", self.collection)
        self._count = self._count_rows()

    def _new_schema(self) -> Any:
        """A fixed schema holding only the ``VARCHAR`` primary key; the caller adds the rest."""
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(
            ID_FIELD, self._pymilvus.DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES
        )
        return schema

    def _create_collection(self, schema: Any, index: Any) -> None:
        self._call(
            "create collection",
            "create_collection",
            self.collection,
            schema=schema,
            consistency_level="Strong",
        )
        # sync=False: do not poll for the index build (pymilvus sleeps 0.5 s per poll, and its
        # AllocTimestamp call is not implemented by Milvus Lite); searches work while it builds.
        self._call("create index", "create_index", self.collection, index, sync=False)

    def _connect(self, token: str) -> Any:
        kwargs: dict[str, Any] = {"uri": self.uri, "token": token or ""}
        if self.db_name:
            kwargs["db_name"] = self.db_name
        try:
            return self._pymilvus.MilvusClient(**kwargs)
        except self._pymilvus.MilvusException as exc:
            raise ValueError(f"Cannot open Milvus at {self.uri!r}: {one_line(exc)}") from None

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a MilvusClient method, turning server errors into one-line ``ValueError``s."""
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except self._pymilvus.MilvusException as exc:
            raise ValueError(
                f"Milvus {what} failed on collection {self.collection!r} at {self.uri!r}: "
                f"{one_line(exc)}"
            ) from None

    def close(self) -> None:
        """Close the connection (Milvus Lite keeps serving the file until the process exits)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def flush(self) -> None:
        """Seal buffered writes into indexed segments; call once after bulk loading.

        Milvus Lite searches unflushed rows by brute force, an order of magnitude slower
        (docs/benchmarks.md, "Indexes"); a server flushes on its own schedule.
        """
        self._call("flush", "flush", self.collection)

    def drop(self) -> None:
        """Delete the collection and everything in it."""
        self._call("drop", "drop_collection", self.collection)
        self._count = 0

    def _count_rows(self) -> int:
        rows = self._query("count", filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def refresh(self) -> int:
        """Re-read the row count from Milvus (after writes by other clients); return it."""
        self._count = self._count_rows()
        return self._count

    def __len__(self) -> int:
        return self._count

    def __contains__(self, doc_id: object) -> bool:
        if not isinstance(doc_id, str) or not doc_id:
            return False
        return bool(self._existing([doc_id]))

    def _query(self, what: str, **kwargs: Any) -> list[dict[str, Any]]:
        """A strongly consistent ``query`` on this collection (sees every write made so far)."""
        return self._call(what, "query", self.collection, consistency_level="Strong", **kwargs)

    def _query_ids(self, filter_expr: str, **kwargs: Any) -> list[str]:
        rows = self._query("query", filter=filter_expr, output_fields=[ID_FIELD], **kwargs)
        return [r[ID_FIELD] for r in rows]

    def _existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), ID_BATCH):
            found.update(self._query_ids(ids_expr(ids[start : start + ID_BATCH])))
        return found

    def _delete_ids(self, ids: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(check_ids(ids)))
        present = sorted(self._existing(wanted))
        for start in range(0, len(present), ID_BATCH):
            chunk = present[start : start + ID_BATCH]
            self._call("delete", "delete", self.collection, filter=ids_expr(chunk))
        if present:
            self._count = self._count_rows()
        return len(present)

    # ------------------------------------------------------------------ persistence
    def _own_settings(self) -> dict[str, Any]:
        """The subclass's own settings, saved between the connection settings and the count."""
        raise NotImplementedError

    @classmethod
    def _settings_kwargs(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments read back from :meth:`_own_settings`'s keys.

        Raises:
            KeyError, TypeError: A key is missing or has the wrong type (reported as corruption).
        """
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings to reopen this index (no credentials)."""
        return {
            "format_version": self.FORMAT_VERSION,
            "backend": self.BACKEND,
            "uri": self.uri,
            "collection": self.collection,
            "db_name": self.db_name,
            **self._own_settings(),
            "count": len(self),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the settings (:attr:`SETTINGS_FILE`) to a folder, atomically.

        Milvus persists the rows itself; with Milvus Lite the ``.db`` folder should live
        outside ``path`` (saving replaces ``path`` as a whole).

        Raises:
            ValueError: The Milvus Lite data lies inside ``path``.
        """
        target = Path(path)
        check_save_target(self.uri, target)
        _io.atomic_write_dir(target, self.write_to)
        return target

    def write_to(self, folder: Path) -> None:
        """Write into an existing empty ``folder`` (:meth:`save` makes it atomic)."""
        _io.write_json(Path(folder) / self.SETTINGS_FILE, self.settings())

    @classmethod
    def load(
        cls: type[_IndexT],
        path: str | os.PathLike[str],
        *,
        uri: str | None = None,
        token: str | None = None,
    ) -> _IndexT:
        """Reopen an index saved by :meth:`save`.

        Args:
            path: Folder holding :attr:`SETTINGS_FILE`.
            uri: Override the saved URI (e.g. the same data behind another address).
            token: Server credentials (default ``$MILVUS_TOKEN``).

        Raises:
            ValueError: Missing / corrupted settings, other format version, a collection that
                does not fit the settings, or whose row count differs from the saved one.
        """
        file = Path(path) / cls.SETTINGS_FILE
        settings = _io.read_json(file, what=cls.SETTINGS_WHAT)
        if not isinstance(settings, dict) or settings.get("format_version") != cls.FORMAT_VERSION:
            raise ValueError(f"{file}: unsupported format version; expected {cls.FORMAT_VERSION}.")
        try:
            count = int(settings["count"])
            index = cls(
                uri=uri or settings["uri"],
                collection=settings["collection"],
                token=token,
                db_name=settings.get("db_name", ""),
                **cls._settings_kwargs(settings),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{file} is corrupted ({exc!r}).") from None
        if len(index) != count:
            raise ValueError(
                f"Milvus collection {index.collection!r} at {index.uri!r} holds {len(index)} "
                f"{cls.ROWS} but {file} recorded {count}; it was changed since the save. "
                "Rebuild the index (or re-save it if the change was intended)."
            )
        return index
