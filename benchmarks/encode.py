"""Encoding throughput: our passage backends vs sentence-transformers, same model, same texts.

Samples mixed texts from ../shared/data and encodes them with each system on the same device
and thread count:

* ``torch``, ``onnx``, ``onnx-int8``: ``SimCSEEncoder.encode(texts, backend=...)``;
* ``st``: sentence-transformers' default (PyTorch) backend, its default batch size 32.

Text sets (``--set``): ``passages`` (default; retrieval passages, SciFact-like lengths: a
third each of LiveQA medical answers, TAT-QA tables and paragraphs, Chinese doctor answers) or
``mixed`` (the older set: STS sentences, Chinese questions, TAT-QA rows, medical answers).

Each system is warmed up on 200 texts first (for ONNX: export or store lookup and session
build, timed apart as ``setup_s``), then timed on the whole set ``--repeats`` times (best
kept). Systems can run in separate processes (``--systems onnx-int8``) so each timed command
stays short; ``--out DIR`` keeps each system's vectors and numbers, and ``--report DIR``
prints the table: texts/s, ratio to ``st``, and the mean / min cosine of each system's vectors
to ``torch`` (fp32).

Run::

    python benchmarks/encode.py --out /tmp/enc --systems torch st   # then onnx, onnx-int8
    python benchmarks/encode.py --report /tmp/enc
    python benchmarks/encode.py --n 1000 --out /tmp/enc   # quick look, every system

Goals (issue #19): onnx-int8 >= 3.0x ``st``, onnx >= 1.5x; mean cosine to fp32 >= 0.99.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SYSTEMS = ("torch", "onnx", "onnx-int8", "st")


def _read_jsonl_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


def sample_texts(data: Path, n: int, seed: int = 0, kind: str = "mixed") -> list[str]:
    """``n`` texts from the shared data, an equal share from each source (see the docstring)."""
    rng = random.Random(seed)
    if kind == "passages":
        pools = [
            _read_jsonl_texts(data / name / "corpus.jsonl")
            for name in ("liveqa_medquad", "tatqa_fin_dev", "zh_med_qa")
        ]
    else:
        with open(data / "stsb_en" / "dev.tsv", encoding="utf-8") as fh:
            next(fh)
            pools = [[line.split("\t")[0] for line in fh if line.strip()]]
        pools.append(_read_jsonl_texts(data / "zh_med_qa" / "queries.jsonl"))
        for name in ("tatqa_fin_dev", "liveqa_medquad"):
            pools.append(_read_jsonl_texts(data / name / "corpus.jsonl"))
    per = n // len(pools)
    texts: list[str] = []
    for i, pool in enumerate(pools):
        take = per if i < len(pools) - 1 else n - per * (len(pools) - 1)
        texts += rng.sample(pool, min(take, len(pool)))
    rng.shuffle(texts)
    return texts


def make_system(name: str, path: str, device: str):  # noqa: ANN201
    """``(encode(texts) -> vectors, setup seconds)`` for one system, warmed up."""
    start = time.perf_counter()
    if name == "st":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(path, device=device)

        def encode(texts: list[str]) -> np.ndarray:
            return model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    else:
        from simcse_rag.encoder import SimCSEEncoder

        encoder = SimCSEEncoder.from_pretrained(path, device=device)

        def encode(texts: list[str]) -> np.ndarray:
            return encoder.encode(texts, batch_size=64, backend=name)

    encode(["warm up the model and build the ONNX session"])
    return encode, time.perf_counter() - start


def run(args: argparse.Namespace) -> None:
    import torch

    from simcse_rag.encoder import SimCSEEncoder, resolve_model_path

    texts = sample_texts(args.data, args.n, kind=args.set)
    path = resolve_model_path(args.model)
    tokens = [
        len(ids)
        for ids in SimCSEEncoder.from_pretrained(path).tokenize(texts, padding=False)["input_ids"]
    ]
    info = {
        "texts": len(texts),
        "set": args.set,
        "tokens_mean": float(np.mean(tokens)),
        "tokens_median": float(statistics.median(tokens)),
        "truncated_share": float(np.mean([t >= 256 for t in tokens])),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(info))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "texts.json").write_text(json.dumps(info))
    for name in args.systems:
        encode, setup_s = make_system(name, path, args.device)
        encode(texts[:200])
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            vectors = encode(texts)
            times.append(time.perf_counter() - start)
        row = {"system": name, "texts_per_s": len(texts) / min(times), "setup_s": setup_s}
        print(json.dumps(row), flush=True)
        if args.out:
            np.save(args.out / f"{name}.npy", vectors.astype(np.float32))
            (args.out / f"{name}.json").write_text(json.dumps(row))


def report(folder: Path) -> None:
    """The Markdown table of the systems measured into ``folder``."""
    rows = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json") if p.stem in SYSTEMS}
    ref = np.load(folder / "torch.npy") if (folder / "torch.npy").is_file() else None
    base = rows.get("st", {}).get("texts_per_s")
    print("| system | texts/s | vs sentence-transformers | cosine to fp32 mean / min |")
    print("|---|---:|---:|---:|")
    for name in SYSTEMS:
        if name not in rows:
            continue
        speed = rows[name]["texts_per_s"]
        ratio = f"{speed / base:.2f}x" if base else "-"
        cos = "-"
        if ref is not None:
            sims = (np.load(folder / f"{name}.npy") * ref).sum(axis=1)
            cos = f"{sims.mean():.4f} / {sims.min():.4f}"
        print(f"| {name} | {speed:.1f} | {ratio} | {cos} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", default=None, help="model folder (default: bundled MiniLM)")
    parser.add_argument("--set", choices=("passages", "mixed"), default="passages")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--out", type=Path, default=None, help="keep vectors and rows here")
    parser.add_argument("--report", type=Path, default=None, help="print the table of a --out")
    args = parser.parse_args()
    if args.report:
        report(args.report)
    else:
        run(args)
        if args.out:
            report(args.out)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
