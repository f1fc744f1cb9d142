"""SimCSEEncoder: a Hugging Face transformer plus pooling that turns texts into unit vectors."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simcse_rag import _io, _validate, passage_encoder, st_format, threads
from simcse_rag.devices import resolve_device, resolve_dtype
from simcse_rag.model_source import (  # noqa: F401 - re-exported: callers import them from here
    DEFAULT_MODEL_NAME,
    default_model_path,
    looks_like_path,
    quiet_transformers,
    resolve_model_path,
)
from simcse_rag.pooling import NEEDS_HIDDEN_STATES, pool, validate_pooling

logger = logging.getLogger(__name__)
threads.configure_torch(torch)

#: Our own config file, written next to the Hugging Face files.
CONFIG_NAME = "simcse_rag.json"
FORMAT_VERSION = 1


def _folder_settings(folder: Path) -> dict[str, Any]:
    """Pooling / max_length saved with a model: sentence-transformers' files, then ours (which
    win); ``{}`` for a hub id."""
    settings: dict[str, Any] = {}
    if folder.is_dir():
        settings.update(st_format.read_settings(folder))
        own = _io.read_json_if_present(folder / CONFIG_NAME, what="model config")
        if isinstance(own, dict):
            settings.update({k: own[k] for k in ("pooling", "max_length") if k in own})
            settings.pop("unsupported_pooling", None)
    return settings


def _default_max_length(position_limit: int, tokenizer: Any) -> int:
    """Truncation length when no sentence-transformers config names one.

    sentence-transformers >= 6 no longer writes ``max_seq_length`` to
    ``sentence_bert_config.json``; it keeps it as the tokenizer's ``model_max_length`` (256 for
    a saved all-MiniLM-L6-v2). Reading it keeps our encoding identical to theirs. Capped at 512
    (and the position limit) so long-context models stay affordable on CPU; transformers uses a
    huge sentinel for tokenizers without a limit.
    """
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if not isinstance(tokenizer_limit, int) or tokenizer_limit <= 0:
        tokenizer_limit = 512
    return min(position_limit, tokenizer_limit, 512)


class SimCSEEncoder:
    """Sentence encoder: transformer, pooling and L2 normalisation.

    Build it with :meth:`from_pretrained`. ``encode`` returns ``(n, dim)`` float32 arrays in input
    order; the underlying ``model`` and ``tokenizer`` are plain Hugging Face objects, so the trainer
    can fine-tune them in place.

    Attributes:
        model: The Hugging Face transformer (``AutoModel``).
        tokenizer: Its tokenizer (a fast tokenizer when available).
        pooling: Pooling mode (see :mod:`simcse_rag.pooling`).
        max_length: Truncation length in tokens.
        device: Device the model runs on.
        name_or_path: Where the model was loaded from.
    """

    #: ``encode`` takes ``on_tokens`` (read from the class, so a wrapper that delegates
    #: attributes to an encoder is never handed a keyword its own ``encode`` may not take).
    TOKEN_HOOK = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pooling: str = "cls",
        max_length: int = 512,
        device: str | torch.device | None = None,
        name_or_path: str = "",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = validate_pooling(pooling)
        self.max_length = _validate.positive_int(max_length, "max_length")
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.model.eval()
        self.name_or_path = name_or_path
        #: The ONNX passage runner, rebuilt when the weights change.
        self.onnx_slot = passage_encoder.OnnxSlot()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        pooling: str | None = None,
        max_length: int | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        trust_remote_code: bool = False,
    ) -> SimCSEEncoder:
        """Load an encoder from a local folder or a Hugging Face Hub id.

        Args:
            name_or_path: Folder or hub id. ``None`` loads the bundled all-MiniLM-L6-v2 offline.
            pooling: Pooling mode; default from the folder's own config (ours, then
                sentence-transformers'), else ``cls`` as in SimCSE checkpoints.
            max_length: Truncation length; default from the folder's config, else the model's
                position limit (at most 512).
            device: ``"cpu"``, ``"cuda"``...; default CUDA when available, else CPU.
            dtype: ``float32`` (default), ``float16`` (CUDA only) or ``bfloat16``.
            trust_remote_code: Passed to transformers; off unless you trust the model's code.

        Returns:
            The encoder, in eval mode.

        Raises:
            ValueError: Unknown pooling, device or dtype, or a model that cannot be found (a
                missing or empty folder, or a hub id while offline fails at once, before
                transformers retries the Hub; see :func:`resolve_model_path`).
            ImportError: ``name_or_path`` is ``None`` and the ``model`` extra is missing.
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if pooling is not None:
            validate_pooling(pooling)
        resolved = resolve_model_path(name_or_path)
        settings = _folder_settings(Path(resolved))
        if pooling is None and "unsupported_pooling" in settings:
            raise ValueError(
                f"Model {resolved!r} uses sentence-transformers pooling "
                f"({settings['unsupported_pooling']}) that SimCSEEncoder does not implement; "
                "pass pooling='mean' or 'cls_before_pooler' explicitly."
            )
        pooling = pooling or settings.get("pooling", "cls")
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        try:
            with quiet_transformers():
                config = AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
                tokenizer = AutoTokenizer.from_pretrained(
                    resolved, trust_remote_code=trust_remote_code
                )
                model = AutoModel.from_pretrained(
                    resolved, config=config, dtype=torch_dtype, trust_remote_code=trust_remote_code
                )
        except OSError as exc:
            raise ValueError(
                f"Cannot load model {resolved!r}: not a local model folder, and not reachable on "
                f"the Hugging Face Hub (offline?). Details: {str(exc).splitlines()[0]}"
            ) from exc
        limit = int(getattr(config, "max_position_embeddings", 512) or 512)
        max_length = (
            max_length or settings.get("max_length") or _default_max_length(limit, tokenizer)
        )
        if max_length > limit:
            raise ValueError(
                f"max_length {max_length} exceeds the model's position limit {limit}; "
                f"use max_length <= {limit}."
            )
        return cls(
            model,
            tokenizer,
            pooling=pooling,
            max_length=int(max_length),
            device=torch_device,
            name_or_path=str(name_or_path) if name_or_path is not None else DEFAULT_MODEL_NAME,
        )

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.config.hidden_size)

    def fingerprint(self) -> str:
        """Return a short hash of the weights, pooling and max length.

        Two encoders with the same fingerprint give the same vectors, so indexes and embedding
        caches use it to detect a model change.
        """
        digest = hashlib.sha256()
        digest.update(f"{self.pooling}|{self.max_length}".encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    # ------------------------------------------------------------------ forward
    def tokenize(self, texts: Sequence[str], *, padding: bool | str = True) -> dict[str, Any]:
        """Tokenize texts with truncation at ``max_length``.

        Args:
            texts: The texts.
            padding: Passed to the tokenizer (``True`` pads to the longest, ``False`` not at all).

        Returns:
            The tokenizer's output; tensors (``pt``) when padded, lists otherwise.
        """
        return self.tokenizer(
            list(texts),
            padding=padding,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt" if padding else None,
        )

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embed a tokenized batch, keeping gradients (used by the trainer).

        Args:
            features: Tokenizer output (``input_ids``, ``attention_mask``, ...) on ``self.device``.

        Returns:
            ``(batch, dim)`` un-normalised embeddings.
        """
        inputs = {k: v for k, v in features.items() if k != "length"}
        outputs = self.model(
            **inputs,
            output_hidden_states=self.pooling in NEEDS_HIDDEN_STATES,
            return_dict=True,
        )
        return pool(self.pooling, outputs, inputs["attention_mask"])

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        normalize: bool = True,
        show_progress: bool = False,
        backend: str = "torch",
        on_tokens: passage_encoder.TokenHook | None = None,
    ) -> np.ndarray:
        """Encode texts into vectors.

        Texts are tokenized a chunk at a time (:data:`~simcse_rag.passage_encoder.CHUNK_SIZE`),
        sorted by token length so each batch carries little padding, embedded without gradients
        and returned in input order.

        Args:
            texts: A sequence of strings (a bare string is rejected: wrap it in a list).
            batch_size: Texts per forward pass (the int8 ONNX model runs one text per call).
            normalize: L2-normalise the vectors (cosine similarity = dot product); the ONNX
                backends always do.
            show_progress: Show a tqdm progress bar.
            backend: ``torch``, ``onnx`` (ONNX Runtime fp32, same vectors), ``onnx-int8`` or
                ``auto``; see :mod:`simcse_rag.passage_encoder`. A model ONNX cannot export is
                encoded by PyTorch (one warning).
            on_tokens: Called as ``on_tokens(chunk_texts, input_ids)`` with each chunk's
                unpadded token ids before the chunk is encoded.

        Returns:
            ``(len(texts), dim)`` float32 array.

        Raises:
            TypeError: ``texts`` is a string or holds a non-string (its index is named).
            ValueError: ``batch_size`` is not a positive integer, an unknown backend, or an
                ONNX backend with ``normalize=False``.
        """
        texts = self._check_texts(texts, batch_size)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        start = 0
        # passage_encoder directly: iter_encode would check the texts a second time.
        for chunk in passage_encoder.iter_encode(
            self,
            texts,
            batch_size=batch_size,
            normalize=normalize,
            show_progress=show_progress,
            backend=backend,
            chunk_size=0,
            on_tokens=on_tokens,
        ):
            out[start : start + len(chunk)] = chunk
            start += len(chunk)
        return out

    def iter_encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        normalize: bool = True,
        show_progress: bool = False,
        backend: str = "torch",
        chunk_size: int = 0,
        on_tokens: passage_encoder.TokenHook | None = None,
    ) -> Iterator[np.ndarray]:
        """Encode texts a chunk at a time: yields ``(m, dim)`` float32 arrays, in input order.

        Memory holds one chunk's tokens and vectors, not the corpus's, so a caller that stores
        each chunk (e.g. into an index) keeps its peak memory independent of the corpus size.
        Arguments as :meth:`encode`; ``chunk_size`` texts per chunk (0: the default,
        :data:`~simcse_rag.passage_encoder.CHUNK_SIZE`).
        """
        return passage_encoder.iter_encode(
            self,
            self._check_texts(texts, batch_size),
            batch_size=batch_size,
            normalize=normalize,
            show_progress=show_progress,
            backend=backend,
            chunk_size=chunk_size,
            on_tokens=on_tokens,
        )

    def _check_texts(self, texts: Sequence[str], batch_size: int) -> list[str]:
        texts = _validate.str_list(
            texts, "texts", single="pass a list of texts (for one text use embed_query(text))"
        )
        _validate.positive_int(batch_size, "batch_size")
        return texts

    def embed_query(self, text: str, *, normalize: bool = True) -> np.ndarray:
        """Encode one text.

        Returns:
            ``(dim,)`` float32 vector.
        """
        if not isinstance(text, str):
            raise TypeError(f"embed_query() takes a str, got {type(text).__name__}.")
        return self.encode([text], normalize=normalize)[0]

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """Save in Hugging Face layout plus sentence-transformers' module files.

        ``SimCSEEncoder.from_pretrained(path)`` and ``SentenceTransformer(path)`` both load the
        result and give the same vectors for ``cls``, ``cls_before_pooler`` and ``mean`` pooling
        (``cls`` is written as Pooling(cls) + Dense(pooler weights, tanh)). sentence-transformers
        has no layer-averaging pooling, so for ``first_last_avg`` / ``last2avg`` only our loader
        reproduces the vectors (a warning says so).

        The folder is written to a temporary sibling and renamed into place, so a crash never
        leaves a half-written model.

        Args:
            path: Target folder (created; an existing model there is replaced).

        Returns:
            The folder path.
        """
        target = Path(path)

        def write(tmp: Path) -> None:
            with quiet_transformers():
                self.model.save_pretrained(tmp, safe_serialization=True)
                self.tokenizer.save_pretrained(tmp)
            _io.write_json(
                tmp / CONFIG_NAME,
                {
                    "format_version": FORMAT_VERSION,
                    "pooling": self.pooling,
                    "max_length": self.max_length,
                    "normalize": True,
                },
            )
            st_format.write_files(self, tmp)

        _io.atomic_write_dir(target, write)
        return target

    def __repr__(self) -> str:
        return (
            f"SimCSEEncoder(name_or_path={self.name_or_path!r}, pooling={self.pooling!r}, "
            f"max_length={self.max_length}, dim={self.dim}, device={str(self.device)!r})"
        )
