"""Encoding throughput: SimCSEEncoder vs sentence-transformers, same model, same texts, one run.

Samples 5,000 mixed-length texts from ../shared/data (short STS sentences, Chinese questions,
financial table rows, long medical answers), encodes them with both libraries on the same device
and thread count, alternating the two several times, and prints a Markdown table with throughput,
the ratio (ours / theirs) and the max abs difference of the embeddings.

Run (about 5 minutes on 2 CPU cores)::

    python benchmarks/encode.py                # default model (all-MiniLM-L6-v2), CPU
    python benchmarks/encode.py --n 1000 --repeats 1   # quick look

Goal (issue #2): ratio >= 1.0 with each library's default settings on CPU, difference <= 1e-4.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sample_texts(data: Path, n: int, seed: int = 0) -> list[str]:
    """Mixed-length texts from the shared data: a quarter from each of four sources."""
    rng = random.Random(seed)
    pools: list[list[str]] = []
    with open(data / "stsb_en" / "dev.tsv", encoding="utf-8") as fh:
        next(fh)
        pools.append([line.split("\t")[0] for line in fh if line.strip()])
    for name in ("zh_med_qa", "tatqa_fin_dev", "liveqa_medquad"):
        pool = []
        path = data / name / ("queries.jsonl" if name == "zh_med_qa" else "corpus.jsonl")
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                obj = json.loads(line)
                pool.append(obj["text"])
        pools.append(pool)
    per = n // len(pools)
    texts: list[str] = []
    for i, pool in enumerate(pools):
        take = per if i < len(pools) - 1 else n - per * (len(pools) - 1)
        texts += rng.sample(pool, min(take, len(pool)))
    rng.shuffle(texts)
    return texts


def time_call(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", default=None, help="model folder (default: bundled MiniLM)")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from simcse_rag.encoder import SimCSEEncoder, resolve_model_path

    texts = sample_texts(args.data, args.n)
    lengths = [len(t) for t in texts]
    path = resolve_model_path(args.model)
    ours = SimCSEEncoder.from_pretrained(path, device=args.device)
    theirs = SentenceTransformer(path, device=args.device)
    print(
        f"{len(texts)} texts, chars min/median/max = {min(lengths)}/"
        f"{int(statistics.median(lengths))}/{max(lengths)}; model {path}; device {args.device}; "
        f"torch threads {torch.get_num_threads()}; max_length ours {ours.max_length} / "
        f"theirs {theirs.max_seq_length}"
    )
    configs = {
        "defaults (ours bs=64, theirs bs=32)": (64, 32),
        "same batch size 32": (32, 32),
    }
    warm = texts[:200]
    ours.encode(warm)
    theirs.encode(warm)
    rows = []
    for label, (bs_ours, bs_theirs) in configs.items():
        t_ours, t_theirs = [], []
        emb_ours = emb_theirs = None
        for _ in range(args.repeats):
            dt, emb_ours = time_call(lambda bs=bs_ours: ours.encode(texts, batch_size=bs))
            t_ours.append(dt)
            dt, emb_theirs = time_call(
                lambda bs=bs_theirs: theirs.encode(
                    texts, batch_size=bs, convert_to_numpy=True, normalize_embeddings=True
                )
            )
            t_theirs.append(dt)
        best_ours, best_theirs = min(t_ours), min(t_theirs)
        diff = float(np.abs(emb_ours - emb_theirs).max())
        rows.append(
            (label, len(texts) / best_ours, len(texts) / best_theirs, best_theirs / best_ours, diff)
        )
    print()
    print("| setting | ours texts/s | sentence-transformers texts/s | ratio | max abs diff |")
    print("|---|---:|---:|---:|---:|")
    for label, a, b, ratio, diff in rows:
        print(f"| {label} | {a:.1f} | {b:.1f} | {ratio:.2f}x | {diff:.2e} |")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
