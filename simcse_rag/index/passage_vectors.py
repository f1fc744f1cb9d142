"""Making an index's passage vectors: one passage backend per index, each text encoded once.

A :class:`~simcse_rag.index.hybrid.HybridRetriever` encodes passages with one backend
(``torch``, ``onnx`` or ``onnx-int8``, :mod:`simcse_rag.passage_encoder`) for its whole life, and
its manifest records which, because vectors of two backends in one index would be compared as
if they were alike. The embedding cache is keyed by backend too
(:mod:`simcse_rag.index.cache`).

Memory: vectors flow encoder -> embedding cache -> dense index a chunk
(:data:`~simcse_rag.passage_encoder.CHUNK_SIZE` texts) at a time (:func:`encode_missing`, then
:func:`insert`), so building an index holds the index, its cache and one chunk, never a matrix
of the whole corpus (measured in docs/benchmarks.md, "Passage encoding").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from simcse_rag.index.cache import EmbeddingCache
from simcse_rag.passage_encoder import CHUNK_SIZE, TokenHook, resolve_passage_backend

if TYPE_CHECKING:
    from simcse_rag.index.persist import IndexContents

logger = logging.getLogger(__name__)


def encode_missing(
    encoder: Any,
    cache: EmbeddingCache,
    texts: Sequence[str],
    *,
    backend: str,
    batch_size: int,
    show_progress: bool = False,
    on_tokens: TokenHook | None = None,
) -> None:
    """Put into ``cache`` a ``backend`` vector for every text of ``texts`` it lacks.

    Each distinct missing text is encoded once, :data:`CHUNK_SIZE` at a time, and each chunk's
    vectors go straight into the cache, so neither the corpus's token lists nor a matrix of its
    vectors are held. ``backend`` is passed only when it is not ``torch``, so any object with
    ``encode(texts, batch_size=, show_progress=)`` still works as an encoder. ``on_tokens``
    sees each chunk's token ids, for encoders whose class says their ``encode`` takes it
    (``TOKEN_HOOK``, e.g. :class:`~simcse_rag.encoder.SimCSEEncoder`; not a wrapper that
    delegates to one, whose own ``encode`` is always called).
    """
    missing = cache.missing(texts, backend)
    if not missing:
        return
    todo = list(dict.fromkeys(texts[i] for i in missing))
    logger.info("encoding %d new texts (%d cached)", len(todo), len(texts) - len(missing))
    options: dict[str, Any] = {} if backend == "torch" else {"backend": backend}
    if on_tokens is not None and getattr(type(encoder), "TOKEN_HOOK", False):
        options["on_tokens"] = on_tokens
    with tqdm(total=len(todo), disable=not show_progress, desc="Encoding", unit="text") as bar:
        for start in range(0, len(todo), CHUNK_SIZE):
            chunk = todo[start : start + CHUNK_SIZE]
            cache.put(chunk, encoder.encode(chunk, batch_size=batch_size, **options), backend)
            bar.update(len(chunk))


def insert(
    dense: Any, cache: EmbeddingCache, ids: Sequence[str], texts: Sequence[str], backend: str
) -> None:
    """Add the cached ``backend`` vectors of ``texts`` to ``dense`` under ``ids``, one
    ``dense.add`` per :data:`CHUNK_SIZE` passages, so memory holds one chunk's matrix beside
    the index, never the corpus's.

    An IVF index that is still untrained (``dense.trains_on_first_add``) gets every vector in
    one call instead: it learns its lists from its first ``add``, and FAISS's k-means needs
    the whole training matrix anyway.

    Raises:
        KeyError: A text has no ``backend`` vector in ``cache`` (call :func:`encode_missing`
            first).
    """
    step = len(ids) if getattr(dense, "trains_on_first_add", False) else CHUNK_SIZE
    for start in range(0, len(ids), max(step, 1)):
        chunk = texts[start : start + step]
        vectors, missing = cache.lookup(chunk, backend)
        if missing:
            raise KeyError(
                f"no {backend} vector cached for text {chunk[missing[0]]!r}; "
                "call encode_missing first."
            )
        dense.add(ids[start : start + step], vectors)


def usable_backend(encoder: Any, backend: str, indexed: int) -> str:
    """``backend`` once the model is known to export; when it does not (the encoder has
    warned), ``torch`` for an empty index and an error for one holding ``indexed`` vectors.

    Raises:
        ValueError: The index holds ONNX vectors but the model cannot be exported here.
    """
    if backend == "torch" or encoder.onnx_slot.get(encoder, backend) is not None:
        return backend
    if indexed == 0:
        return "torch"
    raise ValueError(
        f"this index holds {backend} passage vectors but the model cannot be exported to ONNX "
        "here; rebuild the index with passage_backend='torch'."
    )


def reencode(
    encoder: Any, contents: IndexContents, *, current: str, config: Any
) -> tuple[Any, str] | None:
    """A FAISS index of every passage of ``contents`` re-encoded with ``config.passage_backend``
    and the backend actually used, or ``None`` when that resolves to ``current`` (the backend of
    the vectors held), which needs no re-encoding.

    Raises:
        ValueError: An unknown or unusable backend, or ``dense`` is not a FAISS
            :class:`~simcse_rag.index.dense.DenseIndex`.
    """
    from simcse_rag.index.dense import DenseIndex

    new = resolve_passage_backend(config.passage_backend, encoder)
    if new == current:
        return None
    passages, dense = contents.passages, contents.dense
    if not isinstance(dense, DenseIndex):
        raise ValueError(
            f"the index holds {current} passage vectors in a {type(dense).__name__}, which cannot "
            f"be re-encoded in place; rebuild it with passage backend {new!r}, or keep {current!r}."
        )
    new = usable_backend(encoder, new, 0)
    logger.warning(
        "index vectors were made by %s, %s was asked: re-encoding %d passages",
        current,
        new,
        len(passages),
    )
    ids = list(passages)
    texts = [passages[i].text for i in ids]
    encode_missing(encoder, contents.cache, texts, backend=new, batch_size=config.batch_size)
    rebuilt = DenseIndex(encoder.dim, config.dense_index)
    insert(rebuilt, contents.cache, ids, texts, new)
    return rebuilt, new
