"""MilvusBM25Index: BM25 full-text search inside Milvus (extra ``milvus``).

For corpora too large for one machine's :class:`~simcse_rag.index.bm25.BM25Index`, Milvus
(2.5+; Milvus Lite 3.x too) computes BM25 itself: a ``BM25`` function turns each ``text`` into a
sparse vector with its analyzer, and searches by the ``BM25`` metric on a
``SPARSE_INVERTED_INDEX``. The interface mirrors ``BM25Index`` (``add`` / ``delete`` / ``search``
over strings, ``(ids, scores)`` arrays of one shape), so it can stand in as the sparse side of a
hybrid search.

Analyzers: ``"en"`` (Milvus's ``standard`` tokenizer + lowercase; no stemming, unlike our English
tokenizer), ``"zh"`` (``jieba``), or a raw Milvus ``analyzer_params`` dict. Milvus Lite 3.x knows
only the ``standard`` and ``jieba`` tokenizers; a server also offers e.g. ``{"type": "english"}``.

Scores: Milvus Lite reports BM25 hits with ``distance = -score`` while a server reports the score
itself; both are mapped to the (non-negative) BM25 score.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from simcse_rag import _validate
from simcse_rag.index._milvus import (
    ID_FIELD,
    MilvusCollection,
    check_collection_name,
    check_ids,
    ids_expr,
    resolve_uri,
)
from simcse_rag.index.batch import check_add_batch, empty_results

logger = logging.getLogger(__name__)

SETTINGS_FILE = "milvus_bm25.json"
#: Named analyzers (anything else: pass Milvus ``analyzer_params`` as a dict).
ANALYZERS: dict[str, dict[str, Any]] = {
    "en": {"tokenizer": "standard", "filter": ["lowercase"]},
    "zh": {"tokenizer": "jieba"},
}
#: Longest text accepted (UTF-8 bytes): Milvus's VARCHAR maximum.
MAX_TEXT_BYTES = 65_535
_TEXT_FIELD = "text"
_SPARSE_FIELD = "sparse"
_WRITE_ROWS = 2_000


class MilvusBM25Index(MilvusCollection):
    """BM25 over string document ids, computed by Milvus.

    Args:
        uri: Local path ending in ``.db`` (Milvus Lite) or a server URI.
        collection: Collection name (created when missing).
        analyzer: ``"en"``, ``"zh"`` or a Milvus ``analyzer_params`` dict.
        k1: Term-frequency saturation (> 0).
        b: Length normalisation in [0, 1].
        token: Server credentials (default ``$MILVUS_TOKEN``); never saved.
        db_name: Milvus database (server only).

    Raises:
        ImportError: pymilvus / milvus-lite missing (names the extra).
        ValueError: Bad settings or URI, Milvus unreachable, or an existing collection that is
            not a BM25 collection made by this class.
    """

    BACKEND = "milvus_bm25"
    SETTINGS_FILE = SETTINGS_FILE
    SETTINGS_WHAT = "Milvus BM25 settings"
    ROWS = "documents"

    def __init__(
        self,
        uri: str,
        *,
        collection: str = "simcse_rag_bm25",
        analyzer: str | Mapping[str, Any] = "en",
        k1: float = 1.5,
        b: float = 0.75,
        token: str | None = None,
        db_name: str = "",
    ) -> None:
        check_collection_name(collection)
        if isinstance(analyzer, str):
            if analyzer not in ANALYZERS:
                raise ValueError(
                    f"Unknown analyzer {analyzer!r}; choose one of: {', '.join(ANALYZERS)} "
                    "or pass Milvus analyzer_params as a dict."
                )
            analyzer_params = ANALYZERS[analyzer]
        elif isinstance(analyzer, Mapping):
            analyzer_params = dict(analyzer)
        else:
            raise TypeError(f"analyzer must be a name or a dict, got {type(analyzer).__name__}.")
        k1 = _validate.positive_number(k1, "k1")
        b = _validate.number_between(b, "b", 0, 1)
        self.uri = resolve_uri(uri)
        self.collection = collection
        self.analyzer = analyzer if isinstance(analyzer, str) else analyzer_params
        self.analyzer_params = analyzer_params
        self.k1, self.b = float(k1), float(b)
        self.db_name = db_name
        self._open(token, self._create, self._check_schema)

    # ------------------------------------------------------------------ collection
    def _create(self) -> None:
        pm = self._pymilvus
        schema = self._new_schema()
        schema.add_field(
            _TEXT_FIELD,
            pm.DataType.VARCHAR,
            max_length=MAX_TEXT_BYTES,
            enable_analyzer=True,
            analyzer_params=self.analyzer_params,
        )
        schema.add_field(_SPARSE_FIELD, pm.DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            pm.Function(
                name="bm25",
                function_type=pm.FunctionType.BM25,
                input_field_names=[_TEXT_FIELD],
                output_field_names=[_SPARSE_FIELD],
            )
        )
        index = self._client.prepare_index_params()
        index.add_index(
            _SPARSE_FIELD,
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": self.k1, "bm25_b": self.b},
        )
        self._create_collection(schema, index)

    def _check_schema(self, info: dict[str, Any]) -> None:
        names = {f["name"] for f in info.get("fields", [])}
        functions = info.get("functions", [])
        if not {ID_FIELD, _TEXT_FIELD, _SPARSE_FIELD} <= names or not functions:
            raise ValueError(
                f"Milvus collection {self.collection!r} at {self.uri!r} is not a BM25 collection "
                "made by simcse-rag; choose another collection name."
            )

    # ------------------------------------------------------------------ updates
    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index texts; an id already present is replaced (upsert).

        Raises:
            TypeError: ``texts`` is a bare string or holds non-strings.
            ValueError: Length mismatch, repeated / empty ids, a text over 65,535 UTF-8 bytes, or
                a Milvus error.
        """
        ids = check_ids(ids)
        texts = _validate.str_list(texts, "texts", single="wrap a single text in a list")
        check_add_batch(ids, len(texts), "texts")
        for i, text in enumerate(texts):
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:
                raise ValueError(f"texts[{i}] is not valid Unicode (lone surrogate).") from None
            if size > MAX_TEXT_BYTES:
                raise ValueError(
                    f"texts[{i}] ({ids[i]!r}) is {size} UTF-8 bytes, over Milvus's VARCHAR limit "
                    f"of {MAX_TEXT_BYTES}; split long documents into passages first."
                )
        for start in range(0, len(ids), _WRITE_ROWS):
            rows = [
                {ID_FIELD: i, _TEXT_FIELD: t}
                for i, t in zip(
                    ids[start : start + _WRITE_ROWS],
                    texts[start : start + _WRITE_ROWS],
                    strict=True,
                )
            ]
            self._call("upsert", "upsert", self.collection, rows)
        if ids:
            self._count = self._count_rows()

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        return self._delete_ids(ids)

    # ------------------------------------------------------------------ search
    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` documents for each query.

        Returns:
            ``(ids, scores)``: ``(m, min(k, len(self)))`` arrays of dtype object (str) and float32,
            best first. As in ``BM25Index``, documents sharing no term with the query score 0
            and fill the rest of the row (in Milvus's order).
        """
        k = _validate.check_k(k)
        queries = _validate.str_list(queries, "queries", single="wrap a single query in a list")
        width = min(k, len(self))
        out_ids, out_scores = empty_results(len(queries), width)
        if width == 0:
            return out_ids, out_scores
        for row, query in enumerate(queries):
            hits = self._match(query, width)
            if len(hits) < width:
                hits += [(i, 0.0) for i in self._others({h[0] for h in hits}, width - len(hits))]
            out_ids[row] = [h[0] for h in hits]
            out_scores[row] = [h[1] for h in hits]
        return out_ids, out_scores

    def _match(self, query: str, width: int) -> list[tuple[str, float]]:
        if not query.strip():
            return []
        results = self._call(
            "search",
            "search",
            self.collection,
            data=[query],
            limit=width,
            anns_field=_SPARSE_FIELD,
            output_fields=[ID_FIELD],
            search_params={"metric_type": "BM25"},
            consistency_level="Strong",
        )
        # abs(): Milvus Lite returns distance = -score, a server returns the score (both >= 0).
        return [(h[ID_FIELD], abs(float(h["distance"]))) for h in results[0] if h["distance"]]

    def _others(self, exclude: set[str], n: int) -> list[str]:
        """``n`` ids not in ``exclude`` (the zero-score tail of a row)."""
        skip = sorted(exclude)
        filter_expr = f"not ({ids_expr(skip)})" if skip else ""
        return self._query_ids(filter_expr, limit=n)[:n]

    # ------------------------------------------------------------------ persistence
    def _own_settings(self) -> dict[str, Any]:
        return {"analyzer": self.analyzer, "k1": self.k1, "b": self.b}

    @classmethod
    def _settings_kwargs(cls, settings: dict[str, Any]) -> dict[str, Any]:
        return {"analyzer": settings["analyzer"], "k1": settings["k1"], "b": settings["b"]}
