"""MilvusDenseIndex: the dense backend on Milvus, through ``pymilvus`` (extra ``milvus``).

The same code runs embedded or against a cluster, chosen by the URI:

* a local path ending in ``.db`` (e.g. ``./index/vectors.db``) starts **Milvus Lite** inside the
  process (package ``milvus-lite``; it serves gRPC on 127.0.0.1 on a free port and stores the data
  in that folder);
* ``http://host:19530`` / ``https://...`` / ``tcp://...`` / ``unix:...`` talks to a Milvus server
  or cluster (pass ``token="user:password"`` or an API key, or set ``MILVUS_TOKEN``).

Vectors live in one collection with a ``VARCHAR`` primary key ``id`` and a ``FLOAT_VECTOR`` field
``vector``, compared by inner product (``IP``; callers pass unit vectors, so this is cosine). Milvus
persists the vectors itself: :meth:`MilvusDenseIndex.save` writes only the connection settings
(never the token) and the count, which :meth:`MilvusDenseIndex.load` checks against the
collection.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from simcse_rag import _validate
from simcse_rag.index._milvus import (
    ID_FIELD,
    MilvusCollection,
    check_collection_name,
    check_ids,
    ids_expr,
    is_lite,
    quote,
    resolve_uri,
)
from simcse_rag.index.batch import check_add_batch, empty_results

__all__ = ["INDEX_TYPES", "MAX_TOP_K", "MilvusDenseIndex", "is_lite", "quote", "resolve_uri"]

logger = logging.getLogger(__name__)

SETTINGS_FILE = "milvus.json"
INDEX_TYPES: tuple[str, ...] = ("AUTOINDEX", "FLAT", "HNSW", "IVF_FLAT")
#: Milvus rejects ``limit`` above this (``topk`` limit of the server).
MAX_TOP_K = 16_384
_VECTOR_FIELD = "vector"
#: Rows per insert request, keeping gRPC messages far below their 64 MiB cap.
_WRITE_BYTES = 8 * 1024 * 1024
#: Largest HNSW ``ef`` Milvus accepts.
_MAX_EF = 32_768
#: Queries per search request.
_SEARCH_BATCH = 1_024


class MilvusDenseIndex(MilvusCollection):
    """Inner-product vector index in a Milvus collection, keyed by string ids.

    Args:
        dim: Vector dimension; an existing collection must match it.
        uri: Local path ending in ``.db`` (Milvus Lite) or a server URI (``http://host:19530``).
        collection: Collection name (letters, digits, ``_``; created when missing).
        index_type: ``AUTOINDEX`` (server's choice; HNSW on Lite), ``FLAT`` (exact), ``HNSW`` or
            ``IVF_FLAT``. Applies when the collection is created.
        index_params: Build parameters, e.g. ``{"M": 32, "efConstruction": 200}`` (HNSW) or
            ``{"nlist": 1024}`` (IVF_FLAT).
        search_params: Search parameters, e.g. ``{"ef": 128}`` (HNSW) or ``{"nprobe": 32}``.
        token: Server credentials (``"user:password"`` or an API key); default ``$MILVUS_TOKEN``.
            Never saved.
        db_name: Milvus database (server only; default the server's default database).

    Raises:
        ImportError: pymilvus / milvus-lite missing (names the extra).
        ValueError: Bad URI or collection name, Milvus unreachable, or an existing collection
            whose schema does not fit (wrong dimension, metric or fields).

    Note:
        :meth:`__len__` is cached and refreshed after every write through this object; call
        :meth:`refresh` when other clients write to the same collection.
    """

    BACKEND = "milvus"
    SETTINGS_FILE = SETTINGS_FILE
    SETTINGS_WHAT = "Milvus index settings"
    ROWS = "vectors"

    def __init__(
        self,
        dim: int,
        uri: str,
        *,
        collection: str = "simcse_rag",
        index_type: str = "AUTOINDEX",
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
        token: str | None = None,
        db_name: str = "",
    ) -> None:
        _validate.positive_int(dim, "dim")
        check_collection_name(collection)
        if index_type not in INDEX_TYPES:
            raise ValueError(
                f"Unknown Milvus index_type {index_type!r}; "
                f"choose one of: {', '.join(INDEX_TYPES)}."
            )
        for name, value in (("index_params", index_params), ("search_params", search_params)):
            if value is not None and not isinstance(value, Mapping):
                raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}.")
        self.dim = dim
        self.uri = resolve_uri(uri)
        self.collection = collection
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self.db_name = db_name
        self._open(token, self._create, self._check_schema)

    # ------------------------------------------------------------------ collection
    def _create(self) -> None:
        schema = self._new_schema()
        schema.add_field(_VECTOR_FIELD, self._pymilvus.DataType.FLOAT_VECTOR, dim=self.dim)
        index = self._client.prepare_index_params()
        index.add_index(
            _VECTOR_FIELD, index_type=self.index_type, metric_type="IP", params=self.index_params
        )
        self._create_collection(schema, index)
        logger.info(
            "Created Milvus collection %s (%d-d, %s, IP) at %s",
            self.collection,
            self.dim,
            self.index_type,
            self.uri,
        )

    def _check_schema(self, info: dict[str, Any]) -> None:
        fields = {f["name"]: f for f in info.get("fields", [])}
        vec, pk = fields.get(_VECTOR_FIELD), fields.get(ID_FIELD)
        data_type = self._pymilvus.DataType
        if (
            vec is None
            or pk is None
            or vec.get("type") != data_type.FLOAT_VECTOR
            or pk.get("type") != data_type.VARCHAR
            or not pk.get("is_primary")
        ):
            raise ValueError(
                f"Milvus collection {self.collection!r} at {self.uri!r} was not made by simcse-rag "
                f"(needs VARCHAR primary key {ID_FIELD!r} and FLOAT_VECTOR {_VECTOR_FIELD!r}); "
                "choose another collection name."
            )
        have = int(vec.get("params", {}).get("dim", -1))
        if have != self.dim:
            raise ValueError(
                f"Milvus collection {self.collection!r} at {self.uri!r} holds {have}-d vectors but "
                f"the model gives {self.dim}-d; use another collection name or drop this one."
            )

    @property
    def structure(self) -> str:
        """Where the vectors live and how they are indexed, e.g. ``milvus-HNSW``."""
        return f"milvus-{self.index_type}"

    # ------------------------------------------------------------------ updates
    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Insert vectors; an id already present is replaced (upsert).

        Raises:
            ValueError: Shape mismatch, repeated / empty / over-long ids, non-finite values, or a
                Milvus error (one line, naming the collection).
        """
        ids = check_ids(ids)
        matrix = _validate.float_matrix(vectors, self.dim)
        check_add_batch(ids, matrix.shape[0], "vectors")
        if not ids:
            return
        step = max(1, _WRITE_BYTES // (4 * self.dim))
        for start in range(0, len(ids), step):
            rows = [
                {ID_FIELD: doc_id, _VECTOR_FIELD: vec}
                for doc_id, vec in zip(
                    ids[start : start + step], matrix[start : start + step], strict=True
                )
            ]
            self._call("upsert", "upsert", self.collection, rows)
        self._count = self._count_rows()

    def delete(self, ids: Iterable[str]) -> int:
        """Remove vectors by id; unknown ids are ignored.

        Returns:
            The number of vectors removed.
        """
        return self._delete_ids(ids)

    # ------------------------------------------------------------------ search
    def search(
        self, queries: np.ndarray, k: int, *, allowed: Collection[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ids by inner product for each query row.

        Args:
            queries: ``(m, dim)`` array.
            k: Results per query (> 0); clamped to the number of vectors and to Milvus's
                :data:`MAX_TOP_K`.
            allowed: If given, only these ids can be returned (a metadata filter's id set). The
                collection holds ids and vectors only, no metadata, so the filter reaches Milvus
                as the boolean expression ``id in [...]``, which Milvus applies inside the search.

        Returns:
            ``(ids, scores)``: ``(m, min(k, len(self), MAX_TOP_K))`` arrays of dtype object (str)
            and float32, best first (with ``allowed``: at most as wide as the allowed ids found).

        Raises:
            ValueError: Bad shapes, or Milvus returned fewer hits than that width for some query
                even at exhaustive search settings (an index that cannot reach every vector).
        """
        k = _validate.check_k(k)
        q = _validate.float_matrix(queries, self.dim, "queries")
        expr = "" if allowed is None else ids_expr(sorted(allowed))
        width = min(k, len(self), MAX_TOP_K, len(self) if allowed is None else len(allowed))
        if width == 0 or q.shape[0] == 0:
            return empty_results(q.shape[0], width)
        rows: list[list[dict[str, Any]]] = []
        for start in range(0, q.shape[0], _SEARCH_BATCH):
            block = q[start : start + _SEARCH_BATCH]
            results = self._search(block, width, self.search_params, expr)
            short = [i for i, hits in enumerate(results) if len(hits) < width]
            if short:  # approximate index gave fewer than asked: retry those rows exhaustively
                again = self._search(block[short], width, self._exhaustive_params(width), expr)
                for i, hits in zip(short, again, strict=True):
                    results[i] = hits
            rows.extend(results)
        if allowed is not None:  # allowed ids missing from the collection narrow the results
            width = min(width, *(len(hits) for hits in rows))
        out_ids, out_scores = empty_results(q.shape[0], width)
        for i, hits in enumerate(rows):
            if len(hits) < width:
                raise ValueError(
                    f"Milvus returned {len(hits)} of {width} hits for query {i}; the "
                    f"collection's {self.index_type} index cannot reach every vector. "
                    "Rebuild it with index_type='FLAT' or 'HNSW'."
                )
            out_ids[i] = [h[ID_FIELD] for h in hits[:width]]
            out_scores[i] = [h["distance"] for h in hits[:width]]
        return out_ids, out_scores

    def _search(
        self, q: np.ndarray, limit: int, params: Mapping[str, Any], expr: str = ""
    ) -> list[list[dict[str, Any]]]:
        results = self._call(
            "search",
            "search",
            self.collection,
            data=q,
            limit=limit,
            filter=expr,
            anns_field=_VECTOR_FIELD,
            output_fields=[ID_FIELD],
            search_params={"metric_type": "IP", "params": dict(params)},
            consistency_level="Strong",
        )
        return [list(hits) for hits in results]

    def _exhaustive_params(self, width: int) -> dict[str, Any]:
        params = dict(self.search_params)
        if self.index_type == "IVF_FLAT":  # probe every list (Milvus's default nlist is 128)
            params["nprobe"] = int(self.index_params.get("nlist", 128))
        elif self.index_type in ("HNSW", "AUTOINDEX"):
            params["ef"] = min(_MAX_EF, max(int(params.get("ef", 0)), 4 * width))
        return params

    # ------------------------------------------------------------------ persistence
    def _own_settings(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "metric": "IP",
            "index_type": self.index_type,
            "index_params": self.index_params,
            "search_params": self.search_params,
        }

    @classmethod
    def _settings_kwargs(cls, settings: dict[str, Any]) -> dict[str, Any]:
        return {
            "dim": int(settings["dim"]),
            "index_type": settings["index_type"],
            "index_params": settings["index_params"],
            "search_params": settings["search_params"],
        }

    def __repr__(self) -> str:
        return (
            f"MilvusDenseIndex(dim={self.dim}, uri={self.uri!r}, collection={self.collection!r}, "
            f"index_type={self.index_type!r}, n={len(self)})"
        )
