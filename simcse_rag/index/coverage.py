"""Vocabulary coverage: how much of a text an embedding model can read.

A WordPiece model maps what its vocabulary lacks to ``[UNK]``: all-MiniLM-L6-v2 (English) reads
most Chinese characters as ``[UNK]``, so its vector of a Chinese query is close to noise and a
hybrid search should lean on BM25 there. :func:`readable_share` measures it per text from the
model's own tokenization; :func:`dense_weight_factor` turns it into a multiplier of the dense
weight that is 0 when the model reads nothing and 1 on text it reads fully (English).
"""

from __future__ import annotations

import json
import logging
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from simcse_rag.index.deferred import DeferredEncoder

logger = logging.getLogger(__name__)
#: Texts tokenized at a time when measuring a corpus's readable share.
_TOKENIZE_ROWS = 512


def is_punctuation(token: str) -> bool:
    """Whether a vocabulary token is punctuation only (``"?"``, ``"，"``, ``"##."``): such
    tokens are readable but carry no meaning, so they must not make a text look readable."""
    body = token[2:] if token.startswith("##") else token
    # Most tokens start with a letter or digit: the C-level check skips the per-character
    # lookup for them (the whole vocabulary is scanned when a saved index is loaded).
    if not body or body[0].isalnum():
        return False
    return all(unicodedata.category(c).startswith("P") for c in body)


def readable_share(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    unk_id: int,
    ignore_ids: Iterable[int] = (),
) -> np.ndarray:
    """Share of each text's tokens that are not ``[UNK]``.

    Args:
        input_ids: ``(n, tokens)`` token ids (padded).
        attention_mask: ``(n, tokens)``, 1 on real tokens.
        unk_id: The tokenizer's ``unk_token_id``.
        ignore_ids: Ids left out of the count: special tokens (``[CLS]``, ``[SEP]``) and
            punctuation (see :func:`is_punctuation`).

    Returns:
        ``(n,)`` float32 in [0, 1]; a text with no counted token gets 1.0 (nothing unread).
    """
    ids = np.asarray(input_ids)
    counted = np.asarray(attention_mask).astype(bool) & ~np.isin(ids, list(ignore_ids))
    total = counted.sum(axis=1)
    unknown = (counted & (ids == unk_id)).sum(axis=1)
    share = np.ones(ids.shape[0], dtype=np.float32)
    has = total > 0
    share[has] = 1.0 - unknown[has] / total[has]
    return share


def dense_weight_factor(share: np.ndarray) -> np.ndarray:
    """Multiplier of a query's dense weight: its readable share (linear: a query the model
    reads half of gets half the dense weight; none -> 0; fully readable -> unchanged)."""
    return np.clip(np.asarray(share, dtype=np.float32), 0.0, 1.0)


def encoder_readable_share(encoder: Any, texts: Sequence[str]) -> np.ndarray:
    """:func:`readable_share` of ``texts`` under a :class:`~simcse_rag.encoder.SimCSEEncoder`'s
    tokenizer."""
    return CoverageMeter.from_encoder(encoder).share(texts)


def _is_ascii(text: str) -> bool:
    return text.isascii()


class CoverageMeter:
    """Readable share of texts under one model's tokenizer.

    Built from a loaded :class:`~simcse_rag.encoder.SimCSEEncoder` (:meth:`from_encoder`) or,
    for a saved index searched without PyTorch, from its cached query model's
    ``tokenizer.json`` (:meth:`from_query_model`), so measuring never loads the model.

    Args:
        tokenize: ``texts -> {"input_ids", "attention_mask"}`` (padded arrays).
        unk_id: The ``[UNK]`` id.
        ignore_ids: Special and punctuation ids left out of the count.
    """

    def __init__(self, tokenize: Any, unk_id: int, ignore_ids: set[int]) -> None:
        self._tokenize = tokenize
        self.unk_id = unk_id
        self.ignore_ids = ignore_ids

    @classmethod
    def from_encoder(cls, encoder: Any) -> CoverageMeter:
        """Meter over a SimCSEEncoder's Hugging Face tokenizer."""
        tok = encoder.tokenizer
        punct = {i for t, i in tok.get_vocab().items() if is_punctuation(t)}
        special = set(tok.all_special_ids) - {tok.unk_token_id}
        return cls(encoder.tokenize, tok.unk_token_id, special | punct)

    @classmethod
    def from_query_model(cls, query_model: Any) -> CoverageMeter | None:
        """Meter over a cached query model's ``tokenizer.json`` (``None`` if it has no
        WordPiece / BPE vocabulary with an unknown token)."""
        spec = json.loads(query_model.files["tokenizer.json"])
        model = spec.get("model") or {}
        vocab, unk = model.get("vocab"), model.get("unk_token")
        if not isinstance(vocab, dict) or unk not in vocab:
            return None
        special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
        punct = {i for t, i in vocab.items() if is_punctuation(t)}
        return cls(query_model.tokenizer().tokenize, vocab[unk], (special - {vocab[unk]}) | punct)

    @classmethod
    def for_model(cls, model: Any) -> CoverageMeter | None:
        """Meter for a retriever's model: the cached query model's tokenizer while a saved index
        is searched without PyTorch, else the encoder's (``None`` if it has no tokenizer)."""
        if isinstance(model, DeferredEncoder):
            if not model.loaded:
                return cls.from_query_model(model.query_model)
            model = model.load()
        return cls.from_encoder(model) if hasattr(model, "tokenizer") else None

    def share(self, texts: Sequence[str]) -> np.ndarray:
        """:func:`readable_share` per text; ASCII texts are read fully by any WordPiece/BPE
        vocabulary built on Latin text, so they skip the tokenizer (English latency unchanged)."""
        out = np.ones(len(texts), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if not _is_ascii(t)]
        # A slice at a time: the tokenizer pads its batch, so a corpus at once would hold a
        # (texts x longest) matrix of ids several times over.
        for start in range(0, len(todo), _TOKENIZE_ROWS):
            rows = todo[start : start + _TOKENIZE_ROWS]
            batch = self._tokenize([texts[i] for i in rows])
            out[rows] = readable_share(
                np.asarray(batch["input_ids"]),
                np.asarray(batch["attention_mask"]),
                self.unk_id,
                self.ignore_ids,
            )
        return out


class DenseCoverage:
    """Per-query dense weights from vocabulary coverage, and the once-per-index warning.

    Args:
        make_meter: Builds the :class:`CoverageMeter` on first use (``None``: the model's
            tokenizer is not reachable; weights then stay as configured).
        model_name: Named in the warning.
    """

    def __init__(self, make_meter: Callable[[], CoverageMeter | None], model_name: str) -> None:
        self._make_meter = make_meter
        self._meter: CoverageMeter | None = None
        self._built = False
        self._warned = False
        self._lock = threading.Lock()
        self.model_name = model_name

    def _get(self) -> CoverageMeter | None:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._meter = self._make_meter()
                    self._built = True
        return self._meter

    def dense_weights(self, texts: Sequence[str], weight: float) -> list[float]:
        """Each query's dense weight: ``weight`` times the share of the query the model can read
        (not ``[UNK]``), so a query the model cannot read at all is left to BM25."""
        meter = self._get()
        if meter is None:
            return [float(weight)] * len(texts)
        share = meter.share(texts)
        self._warn_once(share, "queries")
        return (float(weight) * dense_weight_factor(share)).tolist()

    def check(self, texts: Sequence[str], what: str) -> None:
        """Warn (once) when the model cannot read most of ``texts`` (passages at index time)."""
        if self._warned:
            return
        meter = self._get()
        if meter is not None:
            self._warn_once(meter.share(texts), what)

    def _warn_once(self, share: np.ndarray, what: str) -> None:
        if self._warned or not share.size or float(share.mean()) >= 0.5:
            return
        self._warned = True
        logger.warning(
            "model %r reads only %.0f%% of the tokens of these %s (the rest are [UNK]); their "
            "dense ranking is weighted down accordingly and BM25 carries the search. For this "
            "language use a model that covers it, e.g. --model shibing624/text2vec-base-chinese "
            "(downloaded once, needs a network).",
            self.model_name,
            100 * float(share.mean()),
            what,
        )
