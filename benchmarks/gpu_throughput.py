"""Training throughput on one GPU: mixed precision and GradCache vs full fp32, one run.

The model is a random BERT the size of all-MiniLM-L6-v2 (hidden 384, 6 layers, 12 heads,
intermediate 1536), built locally (nothing downloaded; its tokenizer is the tiny test model's),
so the numbers are speed and memory only. Data: supervised pairs of random word strings long
enough to fill ``--max-length`` tokens, no two alike (no-duplicate batches). Each mode trains
``--steps`` steps through :func:`simcse_rag.trainer.train` (no output folder); examples/s
counts pairs per second after ``--warmup`` untimed steps; peak memory is
``torch.cuda.max_memory_allocated`` of that mode. Ratios are against ``no`` (fp32) of this run.

Run from the repository root on a machine with CUDA::

    python benchmarks/gpu_throughput.py --steps 40

Prints a Markdown table; ``--json FILE`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.model_source import quiet_transformers
from simcse_rag.testing import build_tiny_bert, tiny_vocab
from simcse_rag.trainer import TrainingConfig, train

#: (name, mixed_precision, mini_batch_size)
MODES = [
    ("no", "no", None),
    ("bf16", "bf16", None),
    ("fp16", "fp16", None),
    ("bf16+gc16", "bf16", 16),
]


def build_minilm_sized(folder: Path) -> Path:
    """A random BERT with all-MiniLM-L6-v2's shape, saved in Hugging Face layout."""
    from transformers import BertConfig, BertModel

    build_tiny_bert(
        folder, hidden_size=384, num_layers=6, num_heads=12, max_position_embeddings=512
    )
    config = BertConfig.from_pretrained(folder)
    config.intermediate_size = 1536
    config.initializer_range = 0.02
    torch.manual_seed(0)
    with quiet_transformers():
        BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


def make_pairs(n: int, words_per_text: int, seed: int) -> list[tuple[str, str]]:
    """``n`` distinct (anchor, positive) pairs of random vocabulary words."""
    rng = random.Random(seed)
    words = [w for w in tiny_vocab() if w.isascii() and w.isalpha() and len(w) > 2]
    return [
        (
            " ".join(rng.choices(words, k=words_per_text)) + f" a{i}",
            " ".join(rng.choices(words, k=words_per_text)) + f" p{i}",
        )
        for i in range(n)
    ]


def run_mode(model_dir: Path, pairs, args, mixed_precision: str, mini: int | None) -> dict:
    """Train one mode; return examples/s after warm-up and peak GPU memory."""
    encoder = SimCSEEncoder.from_pretrained(
        model_dir, device="cuda", pooling="mean", max_length=args.max_length
    )
    config = TrainingConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=5e-5,
        mixed_precision=mixed_precision,
        mini_batch_size=mini,
        max_length=args.max_length,
        checkpoint_steps=10**6,
        eval_steps=10**6,
    )
    marks: dict[int, float] = {}

    def on_step(step: int, loss: float) -> None:  # the loss is read back: the step has finished
        marks[step] = time.perf_counter()

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    result = train(encoder, pairs, config, output_dir=None, on_step=on_step)
    timed = args.steps - args.warmup
    seconds = marks[args.steps] - marks[args.warmup]
    return {
        "examples_per_s": timed * args.batch_size / seconds,
        "steps_per_s": timed / seconds,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "first_loss": result.losses[0],
        "last_loss": result.losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("CUDA is not available; this benchmark needs a GPU.")
    if not 0 < args.warmup < args.steps:
        raise SystemExit(f"--warmup must be in [1, --steps); got {args.warmup}.")
    pairs = make_pairs(args.steps * args.batch_size, args.max_length, seed=0)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_minilm_sized(Path(tmp) / "minilm-sized")
        for name, mode, mini in MODES:
            results[name] = run_mode(model_dir, pairs, args, mode, mini)
    base = results["no"]["examples_per_s"]
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print(
        f"MiniLM-sized random BERT, batch {args.batch_size} pairs, {args.max_length} tokens, "
        f"{args.steps} steps ({args.warmup} untimed)\n"
    )
    print("| mode | examples/s | vs fp32 | steps/s | peak GiB | loss first -> last |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['examples_per_s']:.0f} | {r['examples_per_s'] / base:.2f}x | "
            f"{r['steps_per_s']:.2f} | {r['peak_gib']:.2f} | "
            f"{r['first_loss']:.3f} -> {r['last_loss']:.3f} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(vars(args) | {"results": results}, default=str, indent=2))


if __name__ == "__main__":
    main()
