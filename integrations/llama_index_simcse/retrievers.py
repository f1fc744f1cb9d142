"""HybridRRFRetriever: weighted, 1-based Reciprocal Rank Fusion for LlamaIndex.

Two ways to build it:

(a) ``HybridRRFRetriever.from_nodes(nodes, embed_model=SimCSEEmbedding(...))`` indexes the nodes in
    simcse-rag's hybrid index (FAISS dense + BM25 with Chinese tokenization) and fuses the two
    rankings by the index's ``HybridConfig.fusion`` (default ``dist_peak``); ``persist`` /
    ``from_persist_dir`` save and load it.
(b) ``HybridRRFRetriever(retrievers=[...], weights=[...])`` fuses any LlamaIndex retrievers. Unlike
    ``QueryFusionRetriever`` it honours the weights, uses 1-based ranks as in the RRF paper, keeps
    each retriever's own order, merges by node id, makes no LLM calls and never mutates the nodes
    the wrapped retrievers return.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import (
    BaseNode,
    MetadataMode,
    NodeWithScore,
    QueryBundle,
    TextNode,
)
from llama_index.core.vector_stores.types import MetadataFilters
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from llama_index_simcse.embeddings import SimCSEEmbedding
from llama_index_simcse.filters import to_filter
from simcse_rag import validate
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.index.fusion import FUSION_METHODS, fuse
from simcse_rag.index.hybrid import HybridConfig, HybridRetriever
from simcse_rag.index.micro_batch import shared_batcher
from simcse_rag.index.saved import load_retriever, save_retriever
from simcse_rag.schema import SEARCH_MODES, Hit, Passage

#: Search modes (alias of :data:`simcse_rag.schema.SEARCH_MODES`).
MODES = SEARCH_MODES


def _check_rrf_k(rrf_k: object) -> float:
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, (int, float)) or not rrf_k >= 0:
        raise ValueError(f"rrf_k must be a number >= 0 (60 in the RRF paper), got {rrf_k!r}.")
    return rrf_k


def _check_fusion(fusion: object, index: HybridRetriever | None) -> str:
    validate.one_of(fusion, "fusion", FUSION_METHODS)
    if index is not None and fusion != "rrf":
        raise ValueError(
            f"fusion={fusion!r} applies to retrievers=[...]; for a hybrid index set it in "
            f"HybridConfig(fusion={fusion!r})."
        )
    return str(fusion)


def _check_retrievers(
    retrievers: Sequence[BaseRetriever] | None, weights: Sequence[float] | None
) -> tuple[list[BaseRetriever], list[float]]:
    """The retrievers to fuse and one weight each; both empty when a core index is wrapped."""
    if retrievers is None:
        if weights is not None:
            raise ValueError(
                "weights apply to retrievers=[...]; for a hybrid index set them in "
                "HybridConfig(weights={'dense': ..., 'bm25': ...})."
            )
        return [], []
    checked = list(retrievers)
    if not checked:
        raise ValueError("retrievers is empty; pass at least one LlamaIndex retriever.")
    for i, r in enumerate(checked):
        if not isinstance(r, BaseRetriever):
            raise TypeError(
                f"retrievers[{i}] is {type(r).__name__}, expected a LlamaIndex BaseRetriever."
            )
    return checked, validate.weight_list(weights, len(checked), "retriever")


def _resolve_encoder(
    embed_model: SimCSEEmbedding | None, encoder: SimCSEEncoder | None
) -> SimCSEEncoder | None:
    if embed_model is not None and encoder is not None:
        raise ValueError("Pass either embed_model= or encoder=, not both.")
    if embed_model is None:
        return encoder
    if not isinstance(embed_model, SimCSEEmbedding):
        raise TypeError(
            f"embed_model must be a SimCSEEmbedding, got {type(embed_model).__name__}; to fuse "
            "another embedding model with BM25, build its retriever yourself and pass "
            "HybridRRFRetriever(retrievers=[...])."
        )
    return embed_model.encoder


def _node_to_passage(node: BaseNode) -> Passage:
    # Index what LlamaIndex itself embeds (text plus non-excluded metadata), and keep the whole
    # node as JSON (LlamaIndex's own vector-store encoding) so hits come back as the same nodes.
    return Passage(
        id=node.node_id,
        text=node.get_content(metadata_mode=MetadataMode.EMBED),
        metadata=node_to_metadata_dict(node),
    )


def _hit_to_node(hit: Hit) -> NodeWithScore:
    if "_node_content" in hit.metadata:
        node = metadata_dict_to_node(hit.metadata)
    else:  # an index built outside LlamaIndex (CLI, LangChain adapter, core API)
        node = TextNode(id_=hit.id, text=hit.text, metadata=dict(hit.metadata))
    return NodeWithScore(node=node, score=hit.score)


class HybridRRFRetriever(BaseRetriever):
    """Hybrid BM25 + dense retrieval, or weighted RRF over any retrievers, for LlamaIndex.

    Returns ``NodeWithScore`` with the fused score (the source's own score in ``dense`` /
    ``bm25`` mode), best first; asking for more than the corpus holds returns what exists, and an
    empty query returns ``[]``.

    Example:
        .. code-block:: python

            from llama_index_simcse import HybridRRFRetriever, SimCSEEmbedding

            retriever = HybridRRFRetriever.from_nodes(nodes, embed_model=SimCSEEmbedding())
            retriever.retrieve("儿童发烧怎么办")
            retriever.persist("my-index")

            fused = HybridRRFRetriever(retrievers=[vector_retriever, bm25], weights=[0.7, 0.3])
    """

    def __init__(
        self,
        retrievers: Sequence[BaseRetriever] | None = None,
        weights: Sequence[float] | None = None,
        similarity_top_k: int = 10,
        *,
        index: HybridRetriever | None = None,
        mode: str = "hybrid",
        rrf_k: float = 60,
        fusion: str = "rrf",
        candidates: int = 100,
        filters: MetadataFilters | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        """Wrap a core hybrid index (``index=``) or fuse other retrievers (``retrievers=``).

        Args:
            retrievers: LlamaIndex retrievers to fuse (mode (b)).
            weights: One RRF weight per retriever (default 1.0 each; not normalised).
            similarity_top_k: Number of nodes to return.
            index: A core :class:`~simcse_rag.index.hybrid.HybridRetriever` (mode (a)); its
                config holds the RRF k and weights.
            mode: With ``index``: ``hybrid``, ``dense`` or ``bm25``.
            rrf_k: With ``retrievers``: the RRF constant (60 as in the paper).
            fusion: With ``retrievers``: ``rrf`` (default: it needs no scores, and other
                retrievers' scores may be distances), ``relative_score`` (min-max scaled scores,
                weighted sum) or ``dist_based`` (scores scaled over mean ± 3σ; both need
                higher-is-better scores); with ``index`` the method is ``HybridConfig(fusion=...)``.
            candidates: With ``index``: hits each source contributes to the fusion.
            filters: With ``index``: LlamaIndex ``MetadataFilters`` applied inside both legs'
                search (see :mod:`llama_index_simcse.filters` for the operators that map).
            callback_manager: LlamaIndex callback manager.
            verbose: LlamaIndex verbosity flag.

        Raises:
            ValueError: Neither or both of ``retrievers`` / ``index``, a weight count that does not
                match, a bad ``similarity_top_k`` / ``mode``, or ``filters`` with an operator
                that does not map (named).
        """
        if (retrievers is None) == (index is None):
            raise ValueError(
                "Pass exactly one of retrievers=[...] (fuse LlamaIndex retrievers) or index= (a "
                "simcse_rag HybridRetriever, e.g. via HybridRRFRetriever.from_nodes)."
            )
        self.similarity_top_k = validate.positive_int(similarity_top_k, "similarity_top_k")
        self.mode = validate.check_mode(mode)
        self.candidates = (
            validate.positive_int(candidates, "candidates") if index is not None else candidates
        )
        self.rrf_k = _check_rrf_k(rrf_k)
        self.fusion = _check_fusion(fusion, index)
        self._index = index
        if filters is not None and index is None:
            raise ValueError(
                "filters apply to index=; give each of retrievers=[...] its own filters."
            )
        self.filters = filters
        self._retrievers, self._weights = _check_retrievers(retrievers, weights)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex."""
        return "HybridRRFRetriever"

    # ------------------------------------------------------------------ mode (a)
    @classmethod
    def from_nodes(
        cls,
        nodes: Sequence[BaseNode],
        embed_model: SimCSEEmbedding | None = None,
        similarity_top_k: int = 10,
        mode: str = "hybrid",
        *,
        encoder: SimCSEEncoder | None = None,
        config: HybridConfig | None = None,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> HybridRRFRetriever:
        """Index nodes in simcse-rag's hybrid (dense + BM25) index.

        Args:
            nodes: The nodes (``Document`` s or chunks); node ids are kept.
            embed_model: The embedding model; ``None`` (and no ``encoder``) loads the bundled
                all-MiniLM-L6-v2.
            similarity_top_k: Number of nodes to return.
            mode: ``hybrid``, ``dense`` or ``bm25``.
            encoder: An already-loaded encoder, instead of ``embed_model``.
            config: Index settings (dense index kind, tokenizer, fusion method, RRF k, weights...).
            show_progress: Show a progress bar while encoding.
            **kwargs: Other constructor arguments (``candidates``, ``callback_manager``...).

        Returns:
            The retriever.
        """
        resolved = _resolve_encoder(embed_model, encoder) or SimCSEEncoder.from_pretrained()
        passages = [_node_to_passage(node) for node in nodes]
        index = HybridRetriever.from_passages(
            passages, resolved, config=config, show_progress=show_progress
        )
        return cls(index=index, similarity_top_k=similarity_top_k, mode=mode, **kwargs)

    def add_nodes(self, nodes: Sequence[BaseNode], *, show_progress: bool = False) -> list[str]:
        """Add nodes to the index, replacing those with the same node id (mode (a) only).

        Returns:
            The node ids added.
        """
        passages = [_node_to_passage(node) for node in nodes]
        self.index.add(passages, show_progress=show_progress)
        return [p.id for p in passages]

    def delete(self, node_ids: Sequence[str]) -> int:
        """Remove nodes by id (mode (a) only).

        Returns:
            The number removed.
        """
        return self.index.delete(node_ids)

    @property
    def index(self) -> HybridRetriever:
        """The core hybrid index (mode (a) only)."""
        if self._index is None:
            raise ValueError(
                "This HybridRRFRetriever fuses other retrievers and has no index of its own."
            )
        return self._index

    def persist(self, persist_dir: str | Path) -> Path:
        """Save the index and settings (JSON, ``.npy``, FAISS files; no pickle).

        Raises:
            ValueError: The retriever fuses other retrievers (mode (b)); persist those instead.
        """
        if self._index is None:
            raise ValueError(
                "persist() is only meaningful for a retriever built by from_nodes(); this one "
                "fuses other retrievers: persist each of them and rebuild "
                "HybridRRFRetriever(retrievers=[...]) after loading them."
            )
        return save_retriever(
            self._index,
            persist_dir,
            k=self.similarity_top_k,
            mode=self.mode,
            candidates=self.candidates,
        )

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str | Path,
        embed_model: SimCSEEmbedding | None = None,
        *,
        encoder: SimCSEEncoder | None = None,
        **kwargs: Any,
    ) -> HybridRRFRetriever:
        """Load a retriever written by :meth:`persist` (or a bare ``HybridRetriever.save`` folder).

        Args:
            persist_dir: The folder.
            embed_model: Embedding model to use; ``None`` loads the model named in the index. Its
                fingerprint must match the one the index was built with.
            encoder: An already-loaded encoder, instead of ``embed_model``.
            **kwargs: Overrides (``similarity_top_k``, ``mode``, ``candidates``...).

        Returns:
            The retriever.
        """
        index, saved = load_retriever(persist_dir, _resolve_encoder(embed_model, encoder))
        settings = {("similarity_top_k" if key == "k" else key): v for key, v in saved.items()}
        return cls(index=index, **{**settings, **kwargs})

    @property
    def filters(self) -> MetadataFilters | None:
        """The ``MetadataFilters`` every search applies (mode (a)); settable."""
        return self._filters

    @filters.setter
    def filters(self, value: MetadataFilters | None) -> None:
        self._filter = to_filter(value)  # checked (and translated) here, not per query
        self._filters = value

    # ------------------------------------------------------------------ retrieval
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if not query_bundle.query_str.strip():
            return []
        if self._index is not None:
            hits = self._index.search(query_bundle.query_str, **self._search_options())
            return [_hit_to_node(hit) for hit in hits]
        return self._fuse([r.retrieve(query_bundle) for r in self._retrievers])

    def _search_options(self) -> dict[str, Any]:
        """Keyword arguments of one index search (sync and async paths alike)."""
        return {
            "k": self.similarity_top_k,
            "mode": self.mode,
            "candidates": max(self.candidates, self.similarity_top_k),
            "filter": self._filter,
        }

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if not query_bundle.query_str.strip():
            return []
        if self._index is not None:
            # Off the event loop, in its thread pool; concurrent calls are searched together
            # in one search_batch call (simcse_rag.index.micro_batch).
            hits = await shared_batcher(self._index).search(
                query_bundle.query_str, **self._search_options()
            )
            return [_hit_to_node(hit) for hit in hits]
        results = await asyncio.gather(*(r.aretrieve(query_bundle) for r in self._retrievers))
        return self._fuse(list(results))

    def _fuse(self, results: list[list[NodeWithScore]]) -> list[NodeWithScore]:
        names = [f"retriever_{i}" for i in range(len(results))]
        nodes: dict[str, BaseNode] = {}
        rankings: dict[str, list[tuple[str, float]]] = {}
        for name, result in zip(names, results, strict=True):
            ranking = []
            for nws in result:  # each retriever's own order, as returned
                nodes.setdefault(nws.node.node_id, nws.node)
                if nws.score is None and self.fusion != "rrf":
                    raise ValueError(
                        f"{name} returned node {nws.node.node_id!r} without a score; "
                        f"fusion={self.fusion!r} needs scores, use fusion='rrf'."
                    )
                score = float("nan") if nws.score is None else float(nws.score)
                ranking.append((nws.node.node_id, score))
            rankings[name] = ranking
        hits = fuse(
            rankings,
            self.fusion,
            k=self.rrf_k,
            weights=dict(zip(names, self._weights, strict=True)),
            limit=self.similarity_top_k,
        )
        return [NodeWithScore(node=nodes[hit.id], score=hit.score) for hit in hits]
