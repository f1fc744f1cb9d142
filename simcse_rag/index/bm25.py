"""BM25Index: sparse BM25 over string ids, for English, Chinese and mixed text.

Scoring is Lucene's BM25 (``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, always positive, so a
term found in half of a tiny corpus still scores; ``tf / (tf + k1 (1 - b + b dl / avgdl))``).

Backends (the engines live in :mod:`simcse_rag.index.bm25_scoring`):

* ``bm25s`` (default): bm25s precomputes every (document, term) score into a sparse CSC matrix,
  so a query costs a sum over the postings of its terms.
* ``rank_bm25``: rank-bm25's ``BM25Okapi`` with the same Lucene idf, kept for parity checks; it
  scores every document in Python, far slower (timings in docs/benchmarks.md, "Indexes").

Neither engine supports incremental updates, so ``add`` / ``delete`` mark the index dirty and the
engine is rebuilt from the stored token lists on the next search.
A query term counts once per occurrence in the query (``query_tf=True``, the default), as in
Lucene (each occurrence is a clause of its own), bm25s and rank-bm25: a word the user repeats, as
in "Dementia. Is dementia inherited?", weighs twice. ``query_tf=False`` counts each distinct term
once, as indexes saved before this option did (they load that way); why the default changed is
in docs/benchmarks.md, "BM25 counts repeated query terms".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np

from simcse_rag import _io, _validate
from simcse_rag.index.batch import check_add_batch, empty_results
from simcse_rag.index.bm25_scoring import BACKENDS, Bm25sEngine, new_engine, top_k
from simcse_rag.index.bm25_terms import TermBatch, tokenize_batch
from simcse_rag.index.filters import AllowedCache
from simcse_rag.index.tokenizers import TOKENIZER_VERSION, get_tokenizer

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "FORMAT_VERSION", "BM25Index", "top_k"]

FORMAT_VERSION = 1
_CONFIG = "bm25.json"


class BM25Index:
    """BM25 over string document ids.

    Args:
        tokenizer: ``"auto"`` (per text: jieba when it holds CJK, else English), ``"en"``, ``"zh"``.
        backend: ``"bm25s"`` (fast sparse matrix) or ``"rank_bm25"`` (parity reference).
        k1: Term-frequency saturation (> 0).
        b: Length normalisation in [0, 1].
        tokenizer_version: Tokenizer rule version (:data:`~simcse_rag.index.tokenizers.
            TOKENIZER_VERSION` for new indexes; a loaded index keeps the one it was built with,
            so its stored terms and new queries are tokenized alike).
        query_tf: Count a query term once per occurrence (``True``, the default, as Lucene and
            bm25s) or each distinct term once (``False``, as indexes saved before this option;
            a loaded index keeps what it was saved with).

    Example:
        >>> index = BM25Index(tokenizer="en")
        >>> index.add(["a", "b"], ["fever in children", "tax on dividends"])
        >>> ids, scores = index.search(["child fever"], k=1)
        >>> ids[0, 0]
        'a'
    """

    def __init__(
        self,
        tokenizer: str = "auto",
        backend: str = "bm25s",
        k1: float = 1.5,
        b: float = 0.75,
        *,
        tokenizer_version: int = TOKENIZER_VERSION,
        query_tf: bool = True,
    ) -> None:
        self._tokenize = get_tokenizer(tokenizer, tokenizer_version)
        if backend not in BACKENDS:
            raise ValueError(
                f"Unknown BM25 backend {backend!r}; choose one of: {', '.join(BACKENDS)}."
            )
        k1 = _validate.positive_number(k1, "k1")
        b = _validate.number_between(b, "b", 0, 1)
        self.tokenizer = tokenizer
        self.tokenizer_version = tokenizer_version
        if not isinstance(query_tf, bool):
            raise TypeError(f"query_tf must be True or False, got {query_tf!r}.")
        self.query_tf = query_tf
        self.backend = backend
        self.k1 = float(k1)
        self.b = float(b)
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        self._vocab: dict[str, int] = {}
        self._docs: list[np.ndarray] = []  # token ids per document
        self._engine = new_engine(backend, self.k1, self.b)
        self._dirty = False
        self._ids_arr: np.ndarray | None = None
        self._allowed = AllowedCache()  # filter id set -> sorted rows

    # ------------------------------------------------------------------ tokens
    def tokenize(self, text: str) -> list[str]:
        """Tokenize ``text`` with this index's tokenizer."""
        return self._tokenize(text)

    def _term_ids(self, query: str) -> np.ndarray:
        """A query's term ids; terms no document holds are dropped."""
        vocab = self._vocab
        ids = [vocab.get(token) for token in self._tokenize(query)]
        return np.asarray([i for i in ids if i is not None], dtype=np.int32)

    # ------------------------------------------------------------------ updates
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._pos

    @property
    def ids(self) -> list[str]:
        """Document ids in index order."""
        return list(self._ids)

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Add documents; an id already present is replaced (upsert).

        Raises:
            ValueError: ``ids`` and ``texts`` differ in length, or an id is empty / repeated.
            TypeError: A text is not a string.
        """
        ids = _validate.str_ids(ids)
        texts = _validate.str_list(texts, "texts", single="wrap a single text in a list")
        check_add_batch(ids, len(texts), "texts")
        self.add_tokenized(ids, self.tokenize_batch(texts))

    def tokenize_batch(self, texts: Sequence[str], *, yield_gil: bool = False) -> TermBatch:
        """``texts`` tokenized for :meth:`add_tokenized`; reads nothing of the index but its
        tokenizer, so it may run outside the lock that guards the index (see
        :func:`~simcse_rag.index.bm25_terms.tokenize_batch`)."""
        return tokenize_batch(self._tokenize, texts, yield_gil=yield_gil)

    def add_tokenized(self, ids: Sequence[str], batch: TermBatch) -> None:
        """:meth:`add` of documents already tokenized by :meth:`tokenize_batch`.

        Raises:
            ValueError: ``ids`` and ``batch`` differ in length, or an id is empty / repeated.
        """
        ids = _validate.str_ids(ids)
        check_add_batch(ids, len(batch.docs), "texts")
        vocab = self._vocab
        to_index = np.fromiter(
            (vocab.setdefault(t, len(vocab)) for t in batch.terms),
            dtype=np.int32,
            count=len(batch.terms),
        )
        for doc_id, terms in zip(ids, batch.docs, strict=False):
            tokens = to_index[terms]
            pos = self._pos.get(doc_id)
            if pos is None:
                self._pos[doc_id] = len(self._ids)
                self._ids.append(doc_id)
                self._docs.append(tokens)
            else:
                self._docs[pos] = tokens
        self._dirty = True
        self._ids_arr = None
        self._allowed.clear()

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id; unknown ids are ignored.

        Returns:
            The number of documents removed.
        """
        gone = {i for i in _validate.str_ids(ids) if i in self._pos}
        if not gone:
            return 0
        keep = [p for p, doc_id in enumerate(self._ids) if doc_id not in gone]
        self._ids = [self._ids[p] for p in keep]
        self._docs = [self._docs[p] for p in keep]
        self._pos = {doc_id: p for p, doc_id in enumerate(self._ids)}
        self._dirty = True
        self._ids_arr = None
        self._allowed.clear()
        return len(gone)

    def _ids_array(self) -> np.ndarray:
        # Cached: rebuilding the object array of every id on each query is slow next to the
        # scoring itself on a large index.
        if self._ids_arr is None:
            self._ids_arr = np.asarray(self._ids, dtype=object)
        return self._ids_arr

    def build(self) -> None:
        """Build the scoring matrix now if documents changed (searches would do it lazily)."""
        if not self._dirty:
            return
        self._engine = new_engine(self.backend, self.k1, self.b)
        self._engine.build([d.tolist() for d in self._docs], len(self._vocab))
        self._dirty = False

    # ------------------------------------------------------------------ search
    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (in :attr:`ids` order)."""
        self.build()
        term_ids = self._term_ids(query)
        return self._engine.scores(term_ids if self.query_tf else np.unique(term_ids))

    def search(
        self, queries: Sequence[str], k: int, *, allowed: Collection[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` documents for each query.

        Args:
            queries: Query strings (a bare string is rejected: wrap it in a list).
            k: Results per query (> 0); clamped to the number of documents.
            allowed: If given, only these ids can be returned (a metadata filter's id set); ids
                not in the index are ignored.

        Returns:
            ``(ids, scores)``: ``(m, min(k, len(self)))`` arrays of dtype object (str) and float32
            (with ``allowed``: ``min(k, allowed ids present)`` wide), best first. Documents sharing
            no term with the query score 0 and come last (ties in index order).
        """
        k = _validate.check_k(k)
        queries = _validate.str_list(queries, "queries", single="wrap a single query in a list")
        rows = None if allowed is None else self._allowed.get(allowed, self._allowed_rows)
        width = min(k, len(self._ids) if rows is None else rows.size)
        out_ids, out_scores = empty_results(len(queries), width)
        if width == 0:
            return out_ids, out_scores
        ids_arr = self._ids_array()
        for row, query in enumerate(queries):
            scores = self.scores(query)
            # With a filter, bm25s' ``weight_mask``: disallowed documents are dropped before
            # top-k, so the k best allowed ones come back whatever the filter's selectivity.
            best = top_k(scores, width) if rows is None else rows[top_k(scores[rows], width)]
            out_ids[row] = ids_arr[best]
            out_scores[row] = scores[best]
        return out_ids, out_scores

    def _allowed_rows(self, allowed: Collection[str]) -> np.ndarray:
        """Sorted index positions of the allowed ids (sorted: ties stay in index order)."""
        pos = self._pos
        rows = np.fromiter((pos[i] for i in allowed if i in pos), dtype=np.int64)
        rows.sort()
        return rows

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to a folder (JSON + ``.npy``, no pickle), atomically.

        Files: ``bm25.json`` (settings, counts), ``ids.json``, ``vocab.json``, the token ids of
        every document (``tokens.npy`` + ``offsets.npy``) and, for bm25s, its score matrix
        (``scores_{data,indices,indptr}.npy``), so loading needs no re-indexing.
        """
        target = Path(path)
        _io.atomic_write_dir(target, self.write_to)
        return target

    def write_to(self, folder: Path) -> None:
        """Write the index into an existing empty ``folder`` (:meth:`save` makes it atomic)."""
        self.build()
        lengths = np.asarray([len(d) for d in self._docs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(self._docs).astype(np.int32) if self._docs else np.zeros(0, np.int32)
        np.save(folder / "tokens.npy", flat, allow_pickle=False)
        np.save(folder / "offsets.npy", offsets, allow_pickle=False)
        vocab = sorted(self._vocab, key=self._vocab.__getitem__)
        _io.write_json(folder / "vocab.json", vocab)
        _io.write_json(folder / "ids.json", self._ids)
        if isinstance(self._engine, Bm25sEngine):
            for name in ("data", "indices", "indptr"):
                np.save(
                    folder / f"scores_{name}.npy", getattr(self._engine, name), allow_pickle=False
                )
        _io.write_json(
            folder / _CONFIG,
            {
                "format_version": FORMAT_VERSION,
                "kind": "bm25",
                "tokenizer": self.tokenizer,
                "tokenizer_version": self.tokenizer_version,
                "query_tf": self.query_tf,
                "backend": self.backend,
                "k1": self.k1,
                "b": self.b,
                "method": "lucene",
                "count": len(self._ids),
                "vocab_size": len(vocab),
                "num_tokens": int(flat.size),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BM25Index:
        """Load an index written by :meth:`save`.

        Raises:
            ValueError: The folder is missing, of another format version, or its files are
                corrupted or inconsistent (the file and the mismatch are named).
        """
        folder = Path(path)
        if not folder.is_dir():
            raise ValueError(f"BM25 index folder {str(folder)!r} does not exist.")
        config = _io.read_json(folder / _CONFIG, what="BM25 index config")
        if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{folder / _CONFIG}: unsupported format version "
                f"{config.get('format_version') if isinstance(config, dict) else None!r}; "
                f"expected {FORMAT_VERSION}. Rebuild the index."
            )
        try:
            # Indexes saved before tokenizer versions existed were built with rule 1, and those
            # saved before query_tf existed counted each distinct query term once.
            index = cls(
                config["tokenizer"],
                config["backend"],
                config["k1"],
                config["b"],
                tokenizer_version=config.get("tokenizer_version", 1),
                query_tf=config.get("query_tf", False),
            )
        except KeyError as exc:
            raise ValueError(
                f"{folder / _CONFIG} lacks key {exc}; the file is corrupted."
            ) from None
        ids = _io.read_json(folder / "ids.json", what="BM25 ids file")
        vocab = _io.read_json(folder / "vocab.json", what="BM25 vocabulary file")
        flat = _io.read_npy(folder / "tokens.npy")
        offsets = _io.read_npy(folder / "offsets.npy")
        n = config.get("count")
        if not isinstance(ids, list) or len(ids) != n or len(set(ids)) != len(ids):
            raise ValueError(f"{folder / 'ids.json'} does not hold {n} unique ids; corrupted.")
        if not isinstance(vocab, list) or len(vocab) != config.get("vocab_size"):
            raise ValueError(f"{folder / 'vocab.json'} does not match vocab_size; corrupted.")
        if (
            offsets.ndim != 1
            or offsets.shape[0] != n + 1
            or flat.shape[0] != config.get("num_tokens")
            or (
                n
                and (
                    offsets[0] != 0 or offsets[-1] != flat.shape[0] or np.any(np.diff(offsets) < 0)
                )
            )
            or (flat.size and (flat.min() < 0 or flat.max() >= len(vocab)))
        ):
            raise ValueError(f"Token files in {folder} are inconsistent with {_CONFIG}; corrupted.")
        index._ids = [str(i) for i in ids]
        index._pos = {doc_id: p for p, doc_id in enumerate(index._ids)}
        index._vocab = {tok: i for i, tok in enumerate(vocab)}
        index._docs = [flat[offsets[p] : offsets[p + 1]] for p in range(n)]
        index._dirty = True
        if isinstance(index._engine, Bm25sEngine) and (folder / "scores_data.npy").is_file():
            data = _io.read_npy(folder / "scores_data.npy")
            indices = _io.read_npy(folder / "scores_indices.npy")
            indptr = _io.read_npy(folder / "scores_indptr.npy")
            if (
                indptr.shape != (len(vocab) + 1,)
                or data.shape != indices.shape
                or int(indptr[-1]) != data.shape[0]
                or (indices.size and (indices.min() < 0 or indices.max() >= n))
            ):
                raise ValueError(f"BM25 score matrix in {folder} is inconsistent; corrupted.")
            index._engine.set_matrix(data, indices, indptr, n)
            index._dirty = False
        return index
