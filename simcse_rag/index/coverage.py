"""Vocabulary coverage: how much of a text an embedding model can read.

A WordPiece model maps what its vocabulary lacks to ``[UNK]``: all-MiniLM-L6-v2 (English) reads
most Chinese characters as ``[UNK]``, so its vector of a Chinese query is close to noise and a
hybrid search should lean on BM25 there. The Chinese characters its vocabulary does hold are no
better read: the model was trained on English only, so tokens in a script none of the languages
on its model card uses count as unread too (:mod:`simcse_rag.index.model_languages`).
:func:`readable_share` measures the read share per text from the model's own tokenization;
:func:`dense_weight_factor` turns it into a multiplier of the dense weight that is 0 when the
model reads nothing and 1 on text it reads fully (English).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from simcse_rag.index.deferred import DeferredEncoder
from simcse_rag.index.model_languages import declared_languages, token_scripts, unread_scripts

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
    unread: int | Iterable[int],
    ignore_ids: Iterable[int] = (),
) -> np.ndarray:
    """Share of each text's tokens that the model reads (not ``[UNK]`` or another unread id).

    Args:
        input_ids: ``(n, tokens)`` token ids (padded).
        attention_mask: ``(n, tokens)``, 1 on real tokens.
        unread: The tokenizer's ``unk_token_id``, or the ids of every token the model does not
            read (``[UNK]`` and the tokens of scripts it was not trained on).
        ignore_ids: Ids left out of the count: special tokens (``[CLS]``, ``[SEP]``) and
            punctuation (see :func:`is_punctuation`).

    Returns:
        ``(n,)`` float32 in [0, 1]; a text with no counted token gets 1.0 (nothing unread).
    """
    ids = np.asarray(input_ids)
    counted = np.asarray(attention_mask).astype(bool) & ~np.isin(ids, _id_array(ignore_ids))
    return _share(counted.sum(axis=1), (counted & np.isin(ids, _id_array(unread))).sum(axis=1))


def token_readable_share(
    token_ids: Sequence[Sequence[int]], unread: int | Iterable[int], ignore_ids: Iterable[int] = ()
) -> np.ndarray:
    """:func:`readable_share` of unpadded token id lists (one list per text), counted on one
    flat array: the same numbers as tokenizing the texts again with padding."""
    lengths = np.fromiter(map(len, token_ids), dtype=np.int64, count=len(token_ids))
    flat = np.fromiter(
        itertools.chain.from_iterable(token_ids), dtype=np.int64, count=int(lengths.sum())
    )
    counted = ~np.isin(flat, _id_array(ignore_ids))
    row = np.repeat(np.arange(len(token_ids)), lengths)
    total = np.bincount(row[counted], minlength=len(token_ids))
    unknown = np.bincount(row[counted & np.isin(flat, _id_array(unread))], minlength=len(token_ids))
    return _share(total, unknown)


def _id_array(ids: int | Iterable[int]) -> np.ndarray:
    """Token ids as the int64 array ``np.isin`` looks them up in (an array passes through, so a
    meter converts its id sets once, not for every query)."""
    if isinstance(ids, np.ndarray):
        return ids
    if isinstance(ids, (int, np.integer)):
        return np.asarray([ids], dtype=np.int64)
    return np.fromiter(ids, dtype=np.int64)


def _share(total: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    share = np.ones(total.shape[0], dtype=np.float32)
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


def unread_token_ids(vocab: Mapping[str, int], name_or_path: str | None) -> set[int]:
    """Ids of the vocabulary tokens written in a script the model's card rules out.

    Args:
        vocab: Token -> id.
        name_or_path: The model (its card is read from disk only; ``""``: the bundled default;
            ``None``: unknown). No card, or no language on it: nothing is ruled out (empty set).
    """
    if name_or_path is None:
        return set()
    scripts = unread_scripts(declared_languages(name_or_path))
    if not scripts:
        return set()
    return {i for t, i in vocab.items() if token_scripts(t) & scripts}


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
        unread_ids: Further ids counted as unread, like ``[UNK]``: the vocabulary's tokens in
            scripts the model was not trained on (see :func:`unread_token_ids`).
        encoder_tokens: ``tokenize`` is the encoder's own tokenization, so the token ids the
            encoder made while encoding give the same shares (:class:`CoverageTally`).
    """

    def __init__(
        self,
        tokenize: Any,
        unk_id: int,
        ignore_ids: set[int],
        unread_ids: Iterable[int] = (),
        *,
        encoder_tokens: bool = False,
    ) -> None:
        self._tokenize = tokenize
        self.unk_id = unk_id
        # Kept as lookup arrays, built once: share() runs for every non-ASCII query.
        self.ignore_ids = _id_array(ignore_ids)
        self.unread_ids = _id_array({unk_id, *unread_ids})
        self.encoder_tokens = encoder_tokens

    @classmethod
    def from_encoder(cls, encoder: Any) -> CoverageMeter:
        """Meter over a SimCSEEncoder's Hugging Face tokenizer (its model card, if on disk,
        says which scripts it reads)."""
        tok = encoder.tokenizer
        vocab = tok.get_vocab()
        punct = {i for t, i in vocab.items() if is_punctuation(t)}
        special = set(tok.all_special_ids) - {tok.unk_token_id}
        # An encoder built directly (not by from_pretrained) has name_or_path "": no card known.
        unread = unread_token_ids(vocab, getattr(encoder, "name_or_path", None) or None)
        return cls(encoder.tokenize, tok.unk_token_id, special | punct, unread, encoder_tokens=True)

    @classmethod
    def from_query_model(
        cls, query_model: Any, name_or_path: str | None = None
    ) -> CoverageMeter | None:
        """Meter over a cached query model's ``tokenizer.json`` (``None`` if it has no
        WordPiece / BPE vocabulary with an unknown token); ``name_or_path`` names the model
        whose card says which scripts it reads (``""``: the bundled default; ``None``: unknown,
        so only ``[UNK]`` counts as unread)."""
        spec = json.loads(query_model.files["tokenizer.json"])
        model = spec.get("model") or {}
        vocab, unk = model.get("vocab"), model.get("unk_token")
        if not isinstance(vocab, dict) or unk not in vocab:
            return None
        special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
        punct = {i for t, i in vocab.items() if is_punctuation(t)}
        unread = unread_token_ids(vocab, name_or_path)
        return cls(
            query_model.tokenizer().tokenize, vocab[unk], (special - {vocab[unk]}) | punct, unread
        )

    @classmethod
    def for_model(cls, model: Any) -> CoverageMeter | None:
        """Meter for a retriever's model: the cached query model's tokenizer while a saved index
        is searched without PyTorch, else the encoder's (``None`` if it has no tokenizer)."""
        if isinstance(model, DeferredEncoder):
            if not model.loaded:
                return cls.from_query_model(model.query_model, model.name_or_path)
            model = model.load()
        return cls.from_encoder(model) if hasattr(model, "tokenizer") else None

    def share(self, texts: Sequence[str], known: Mapping[str, float] | None = None) -> np.ndarray:
        """:func:`readable_share` per text; ASCII texts are read fully by any WordPiece/BPE
        vocabulary built on Latin text, so they skip the tokenizer (English latency unchanged),
        and so do the texts whose share ``known`` already holds (:class:`CoverageTally`)."""
        out = np.ones(len(texts), dtype=np.float32)
        todo = []
        for i, text in enumerate(texts):
            if _is_ascii(text):
                continue
            value = None if known is None else known.get(text)
            if value is None:
                todo.append(i)
            else:
                out[i] = value
        # A slice at a time: the tokenizer pads its batch, so a corpus at once would hold a
        # (texts x longest) matrix of ids several times over.
        for start in range(0, len(todo), _TOKENIZE_ROWS):
            rows = todo[start : start + _TOKENIZE_ROWS]
            batch = self._tokenize([texts[i] for i in rows])
            out[rows] = readable_share(
                np.asarray(batch["input_ids"]),
                np.asarray(batch["attention_mask"]),
                self.unread_ids,
                self.ignore_ids,
            )
        return out


class CoverageTally:
    """Readable shares taken from the token ids the encoder made while encoding (its
    ``on_tokens`` hook), so the passage check does not tokenize those texts a second time.

    Args:
        meter: A meter whose tokenization is the encoder's (``encoder_tokens``).

    Attributes:
        shares: Readable share by text, for the non-ASCII texts seen.
    """

    def __init__(self, meter: CoverageMeter) -> None:
        self._meter = meter
        self.shares: dict[str, float] = {}

    def observe(self, texts: Sequence[str], token_ids: Sequence[Sequence[int]]) -> None:
        """Record the shares of ``texts`` from their unpadded ``token_ids``."""
        rows = [i for i, text in enumerate(texts) if not _is_ascii(text)]
        if rows:
            share = token_readable_share(
                [token_ids[i] for i in rows], self._meter.unread_ids, self._meter.ignore_ids
            )
            self.shares.update(zip((texts[i] for i in rows), share.tolist(), strict=True))


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

    def tally(self, texts: Sequence[str]) -> CoverageTally | None:
        """A collector for the encoder's token ids that :meth:`check` of ``texts`` then reads,
        or ``None`` when there is nothing to collect (warned already, ASCII texts only, no
        meter, or a meter that tokenizes otherwise than the encoder)."""
        if self._warned or all(map(_is_ascii, texts)):
            return None
        meter = self._get()
        return CoverageTally(meter) if meter is not None and meter.encoder_tokens else None

    def check(self, texts: Sequence[str], what: str, tally: CoverageTally | None = None) -> None:
        """Warn (once) when the model cannot read most of ``texts`` (passages at index time);
        the shares ``tally`` collected are used instead of tokenizing those texts again."""
        if self._warned:
            return
        meter = self._get()
        if meter is not None:
            self._warn_once(meter.share(texts, None if tally is None else tally.shares), what)

    def _warn_once(self, share: np.ndarray, what: str) -> None:
        if self._warned or not share.size or float(share.mean()) >= 0.5:
            return
        self._warned = True
        logger.warning(
            "model %r reads only %.0f%% of the tokens of these %s (the rest are [UNK] or in a "
            "script its model card's languages do not use); their "
            "dense ranking is weighted down accordingly and BM25 carries the search. For this "
            "language use a model that covers it, e.g. --model shibing624/text2vec-base-chinese "
            "(downloaded once, needs a network).",
            self.model_name,
            100 * float(share.mean()),
            what,
        )
