"""Build a tiny random BERT locally, for tests, ``--tiny`` recipes and users' own tests.

Nothing is downloaded: the vocabulary is generated (special tokens, ASCII characters and their
``##`` continuations, common English words, and the CJK Unified Ideographs block so Chinese text
tokenizes character by character), and the model weights are random with a fixed seed.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    from simcse_rag.encoder import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(folder, safe_serialization=True)
    return folder
