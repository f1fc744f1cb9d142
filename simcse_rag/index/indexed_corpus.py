"""IndexedCorpus: the passages and the indexes kept in step with them.

One :class:`IndexedCorpus` holds what a :class:`~simcse_rag.index.hybrid.HybridRetriever`
searches: the passages by id, the dense index, the BM25 index, the embedding cache, the backend
that made the passage vectors, and the read/write lock that keeps them consistent. Adding,
deleting and re-encoding passages happen here; the retriever composes this with query encoding
(:mod:`simcse_rag.query_encoder`), the search path (:mod:`simcse_rag.index.hybrid_search`) and
the saved layout (:mod:`simcse_rag.index.persist`). Retrievers made by
:meth:`~simcse_rag.index.hybrid.HybridRetriever.with_query_settings` share one instance, so an
update through one is seen by the other.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from simcse_rag.index import passage_vectors, persist
from simcse_rag.index._threads import ReadWriteLock
from simcse_rag.index.backend import DenseBackend
from simcse_rag.index.bm25 import BM25Index
from simcse_rag.index.cache import EmbeddingCache
from simcse_rag.index.config import HybridConfig
from simcse_rag.index.coverage import CoverageMeter, CoverageTally, DenseCoverage
from simcse_rag.index.deferred import DeferredEncoder
from simcse_rag.index.dense import DenseIndex
from simcse_rag.index.filters import Filter, FilterIdCache
from simcse_rag.passage_encoder import resolve_passage_backend
from simcse_rag.schema import Passage

__all__ = ["IndexedCorpus"]


class IndexedCorpus:
    """Passages with their dense index, BM25 index and embedding cache, updated together.

    Searches share the indexes (:attr:`lock` read side); :meth:`add`, :meth:`delete` and a
    passage-backend switch take them exclusively, so a search sees the whole state before or
    after an update, never a mix.

    Args:
        encoder: The encoder (or a :class:`~simcse_rag.index.deferred.DeferredEncoder` that
            loads it on first use).
        config: The retriever's settings (dense structure, tokenizer, BM25 backend).
        dense_index: Another dense backend than a FAISS :class:`DenseIndex` (e.g. Milvus).

    Attributes:
        model: The encoder as given (possibly deferred; :attr:`encoder` loads it).
        fingerprint: Fingerprint of the encoder the passage vectors are made with.
        passages: Passages by id, in insertion order.
        dense: The dense index.
        bm25: The BM25 index.
        cache: The embedding cache.
        backend: The backend of the passage vectors held, ``None`` until first resolved.
        lock: Shared by searches, exclusive for updates and saves.
        filter_ids: Id sets of recent filters; every write clears it.
        coverage: How much of the text the dense encoder sees (dense weights per query).
    """

    def __init__(
        self, encoder: Any, config: HybridConfig, dense_index: DenseBackend | None = None
    ) -> None:
        self.model = encoder
        self.fingerprint: str = encoder.fingerprint()
        self.passages: dict[str, Passage] = {}
        self.dense: DenseBackend = (
            dense_index if dense_index is not None else DenseIndex(encoder.dim, config.dense_index)
        )
        self.bm25 = BM25Index(config.tokenizer, config.bm25_backend)
        self.cache = EmbeddingCache(self.fingerprint, encoder.dim)
        # Resolved on first use (or taken from a saved index's manifest): see passage_backend.
        self.backend: str | None = None
        self.lock = ReadWriteLock()
        self.filter_ids = FilterIdCache()
        self.coverage = DenseCoverage(
            functools.partial(CoverageMeter.for_model, encoder), encoder.name_or_path
        )

    @property
    def encoder(self) -> Any:
        """The encoder, loading a deferred one on first use."""
        if isinstance(self.model, DeferredEncoder):
            return self.model.load()
        return self.model

    def passage_backend(self, config: HybridConfig) -> str:
        """The backend of the passage vectors: the one held, else ``config.passage_backend``
        resolved for the encoder (and kept)."""
        if self.backend is None:
            self.backend = resolve_passage_backend(config.passage_backend, self.encoder)
        return self.backend

    def embed(
        self, texts: Sequence[str], config: HybridConfig, *, show_progress: bool = False
    ) -> np.ndarray:
        """Vectors ``(len(texts), dim)`` for ``texts``, encoding only those not in the cache."""
        self._cache_vectors(texts, config, show_progress)
        vectors, _ = self.cache.lookup(texts, self.passage_backend(config))
        return vectors

    def _cache_vectors(
        self,
        texts: Sequence[str],
        config: HybridConfig,
        show_progress: bool,
        tally: CoverageTally | None = None,
    ) -> None:
        """Encode into the embedding cache the texts it lacks (this index's passage backend);
        ``tally`` collects the vocabulary coverage of the texts encoded from their token ids."""
        self.backend = passage_vectors.usable_backend(
            self.encoder, self.passage_backend(config), len(self.dense)
        )
        passage_vectors.encode_missing(
            self.encoder,
            self.cache,
            texts,
            backend=self.backend,
            batch_size=config.batch_size,
            show_progress=show_progress,
            on_tokens=None if tally is None else tally.observe,
        )

    def add(
        self, items: Sequence[Passage], config: HybridConfig, *, show_progress: bool = False
    ) -> None:
        """Add checked passages (an id already present is replaced): encode the missing vectors
        and tokenize for BM25 outside the lock, then insert into both indexes under the write
        lock."""
        if not items:
            return
        ids = [p.id for p in items]
        texts = [p.text for p in items]
        # Outside the lock: BM25 tokenizes (jieba, the stemmer) on a thread of its own while
        # the encoder runs, and the coverage check reads the encoder's token ids (tally) rather
        # than tokenizing the new texts a second time.
        tally = self.coverage.tally(texts)
        with ThreadPoolExecutor(1, thread_name_prefix="simcse-bm25") as pool:
            terms = pool.submit(self.bm25.tokenize_batch, texts, yield_gil=True)
            self._cache_vectors(texts, config, show_progress, tally)
            self.coverage.check(texts, "passages", tally)
            batch = terms.result()
        with self.lock.write():
            passage_vectors.insert(self.dense, self.cache, ids, texts, self.passage_backend(config))
            self.bm25.add_tokenized(ids, batch)
            self.bm25.build()  # rebuild now, not in the next search
            self.filter_ids.clear()
            for p in items:
                self.passages[p.id] = p

    def delete(self, ids: Iterable[str]) -> int:
        """Remove passages by id (unknown ids ignored); returns how many were removed."""
        with self.lock.write():
            gone = [i for i in dict.fromkeys(ids) if i in self.passages]
            if not gone:
                return 0
            self.dense.delete(gone)
            self.bm25.delete(gone)
            self.bm25.build()
            self.filter_ids.clear()
            for i in gone:
                del self.passages[i]
            return len(gone)

    def allowed_ids(self, flt: Filter) -> frozenset[str]:
        """Ids of the passages that pass ``flt`` (call under the read lock)."""
        return self.filter_ids.ids(flt, self.passages.values())

    def contents(self) -> persist.IndexContents:
        """What :mod:`simcse_rag.index.persist` saves (``torch`` before any vector was made)."""
        return persist.IndexContents(
            self.passages, self.dense, self.bm25, self.cache, self.backend or "torch"
        )

    def restore(self, contents: persist.IndexContents) -> None:
        """Take a saved index's contents (before the retriever is shared with anyone)."""
        self.passages, self.dense = contents.passages, contents.dense
        self.bm25, self.cache = contents.bm25, contents.cache
        self.backend = contents.passage_backend

    def switch_backend(self, config: HybridConfig) -> bool:
        """Re-encode every passage when ``config.passage_backend`` resolves to another backend
        than the vectors held; returns whether it did.

        Raises:
            ValueError: An unknown or unusable backend, or a dense index other than FAISS
                (:func:`simcse_rag.index.passage_vectors.reencode`).
        """
        switched = passage_vectors.reencode(
            self.encoder, self.contents(), current=self.passage_backend(config), config=config
        )
        if switched is not None:
            with self.lock.write():
                self.dense, self.backend = switched
                self.filter_ids.clear()
        return switched is not None
