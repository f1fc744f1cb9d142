"""A tiny random BERT built locally, for tests, ``--tiny`` runs and users' own tests.

:func:`build_tiny_bert` writes the model; :func:`load_encoder` gives either it or the real model,
the one switch behind every ``--tiny`` option.

Nothing is downloaded: the vocabulary is generated (special tokens, ASCII characters and their
``##`` continuations, common English words, and the CJK Unified Ideographs block so Chinese text
tokenizes character by character), and the model weights are random with a fixed seed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simcse_rag.encoder import SimCSEEncoder

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = (  # noqa: SIM905 - one word list reads better as text than as 130 literals
    "the of and to in is was for on that with as by at from it an be are this which or have "
    "not has but were their also its been more one two first new after who can other all "
    "they he she his her what when where how why do does did will would should could may "
    "fever child children cough cold vaccine doctor medicine pain head stomach sleep baby "
    "water blood heart skin eye ear nose throat rash allergy asthma diabetes insulin drug "
    "dose tablet hospital symptom symptoms treatment disease infection virus bacteria "
    "revenue income tax cash profit loss year total sales cost price market bank loan "
    "interest rate share stock fund asset liability debt equity dividend company quarter"
).split()


def tiny_vocab() -> list[str]:
    """Return the vocabulary of the tiny model (deterministic)."""
    chars = [chr(c) for c in range(33, 127)]
    vocab = list(_SPECIAL)
    vocab += chars
    vocab += ["##" + c for c in chars]
    vocab += [w for w in dict.fromkeys(_WORDS) if w not in vocab]
    vocab += [chr(c) for c in range(0x4E00, 0x9FA6)]
    vocab += ["，", "。", "？", "！", "、", "：", "；", "（", "）"]
    return vocab


def build_tiny_bert(
    path: str | os.PathLike[str],
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    max_position_embeddings: int = 128,
    seed: int = 0,
    initializer_range: float = 0.2,
) -> Path:
    """Write a tiny random BERT (config, weights, tokenizer) in Hugging Face layout.

    The folder loads with ``SimCSEEncoder.from_pretrained(path)`` (pooling defaults to ``cls``, as
    for SimCSE checkpoints) and with transformers' ``AutoModel`` / ``AutoTokenizer``.

    Args:
        path: Folder to create (parents too).
        hidden_size: Hidden and embedding size.
        num_layers: Transformer layers.
        num_heads: Attention heads.
        max_position_embeddings: Longest input in tokens.
        seed: Seed for the random weights.
        initializer_range: Standard deviation of the random weights.

    Returns:
        The folder path.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary as ``vocab`` (``vocab_file`` is ignored there and left
    # only special tokens); transformers 4 reads ``vocab_file``. Pass both.
    vocab = {token: i for i, token in enumerate(tiny_vocab())}
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), vocab=vocab, do_lower_case=True)
    tokenizer.model_max_length = max_position_embeddings
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=max_position_embeddings,
        # Wider than BERT's 0.02 so random sentence vectors differ enough for ranking tests.
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    from simcse_rag.model_source import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(folder, safe_serialization=True)
    return folder


def load_encoder(
    model: str | os.PathLike[str] | None = None,
    *,
    tiny: bool = False,
    tiny_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> SimCSEEncoder:
    """Load the real encoder, or with ``tiny`` a tiny random BERT built on the spot.

    Args:
        model: Model folder or Hugging Face id (default: the bundled all-MiniLM-L6-v2); must be
            ``None`` with ``tiny``.
        tiny: Build and load a tiny random BERT (seconds; its vectors mean nothing).
        tiny_dir: Folder the tiny model is written to (default: a new temporary folder, which
            the caller removes).
        device: Device of the real model (default: auto). The tiny model always runs on CPU.

    Returns:
        A :class:`~simcse_rag.encoder.SimCSEEncoder`.

    Raises:
        ValueError: ``tiny`` and ``model`` are both given.
    """
    from simcse_rag.encoder import SimCSEEncoder

    if not tiny:
        return SimCSEEncoder.from_pretrained(model, device=device)
    if model is not None:
        raise ValueError(f"tiny=True and model={str(model)!r} exclude each other; pass one.")
    if tiny_dir is None:
        tiny_dir = Path(tempfile.mkdtemp(prefix="simcse-rag-tiny-")) / "tiny-bert"
    # CPU whatever the device: the model is too small for an accelerator to pay off.
    return SimCSEEncoder.from_pretrained(build_tiny_bert(tiny_dir), device="cpu")
