"""Benchmark SimCSE training: our trainer vs sentence-transformers, and STS before/after.

Parts (``--part``, default ``all``):

* ``speed``: our :func:`simcse_rag.trainer.train` vs sentence-transformers' trainer with
  ``MultipleNegativesRankingLoss(scale=20)`` (= temperature 0.05), same model, data (unsupervised
  SimCSE: each sentence is its own positive), batch size, sequence length, learning rate and
  dropout, no-duplicate batches on both sides. Each system runs in its own fresh subprocess;
  steps/s is measured after ``--warmup`` steps; memory is peak RSS (``ru_maxrss``) of the
  process and its growth during training (peak minus RSS just before training).
* ``sts``: STS-B dev Spearman of all-MiniLM-L6-v2 before and after (a) unsupervised SimCSE on
  ``unsup_en.txt`` and (b) supervised SimCSE on ``nli_en/snli_pairs.tsv``; each Spearman is
  computed by us and by sentence-transformers' ``EmbeddingSimilarityEvaluator`` (parity check).
* ``ablation``: on the tiny random BERT, unsupervised SimCSE with dropout 0 vs 0.1: alignment and
  uniformity (Wang & Isola 2020) on STS-B dev, as in SimCSE section 5.

Run from the repository root::

    python benchmarks/train.py --data ../shared/data --part all

Prints Markdown tables; ``--json FILE`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    """Current resident set size (MB) from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _sentences(data: Path) -> list[str]:
    lines = (data / "unsup_en.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


# --------------------------------------------------------------------------- speed workers
def worker_ours(args: argparse.Namespace) -> dict:
    import torch

    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.trainer import TrainingConfig, train

    torch.set_num_threads(args.threads)
    sents = _sentences(args.data)
    encoder = SimCSEEncoder.from_pretrained(args.model, device="cpu")
    config = TrainingConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=3e-5,
        max_length=args.max_length,
        dropout=0.1,
        checkpoint_steps=10**9,
        eval_steps=10**9,
        seed=args.seed,
    )
    times: list[float] = []
    rss_before = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            encoder,
            sents,
            config,
            output_dir=Path(tmp) / "out",
            on_step=lambda step, loss: times.append(time.perf_counter()),
        )
    timed = args.steps - args.warmup
    return {
        "system": "simcse-rag",
        "steps_per_s": timed / (times[-1] - times[args.warmup - 1]),
        "peak_rss_mb": _peak_mb(),
        "train_rss_growth_mb": _peak_mb() - rss_before,
        "first_loss": result.losses[0],
        "last_loss": result.losses[-1],
    }


def worker_st(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    from simcse_rag.encoder import resolve_model_path

    torch.set_num_threads(args.threads)
    sents = _sentences(args.data)
    model = SentenceTransformer(resolve_model_path(args.model), device="cpu")
    model.max_seq_length = args.max_length
    dataset = Dataset.from_dict({"anchor": sents, "positive": sents})
    loss = MultipleNegativesRankingLoss(model, scale=20.0)
    times: list[float] = []
    losses: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, *a, **k):  # noqa: ANN002, ANN003
            times.append(time.perf_counter())

        def on_log(self, _args, _state, _control, logs=None, **k):  # noqa: ANN001, ANN003
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory() as tmp:
        targs = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=3e-5,
            warmup_ratio=0.0,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            report_to="none",
            logging_steps=1,
            disable_tqdm=True,
            seed=args.seed,
            use_cpu=True,
            dataloader_num_workers=0,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=dataset, loss=loss, callbacks=[Timer()]
        )
        rss_before = _rss_mb()
        trainer.train()
    timed = args.steps - args.warmup
    return {
        "system": "sentence-transformers",
        "steps_per_s": timed / (times[-1] - times[args.warmup - 1]),
        "peak_rss_mb": _peak_mb(),
        "train_rss_growth_mb": _peak_mb() - rss_before,
        "first_loss": losses[0] if losses else float("nan"),
        "last_loss": losses[-1] if losses else float("nan"),
    }


def run_worker(args: argparse.Namespace, name: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(args.data)]
    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    cmd += ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    cmd += ["--threads", str(args.threads), "--seed", str(args.seed)]
    if args.model:
        cmd += ["--model", args.model]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_speed(args: argparse.Namespace) -> dict:
    rows = [run_worker(args, "st"), run_worker(args, "ours")]
    ours, st = rows[1], rows[0]
    print(
        f"\n### Training speed and memory (CPU, {args.threads} threads; all-MiniLM-L6-v2, "
        f"unsup_en.txt, batch {args.batch_size}, max_length {args.max_length}, "
        f"{args.steps} steps, {args.warmup} warm-up)\n"
    )
    print("| system | steps/s | peak RSS MB | RSS growth in training MB | loss first -> last |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['system']} | {r['steps_per_s']:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{r['train_rss_growth_mb']:.0f} | {r['first_loss']:.2e} -> {r['last_loss']:.2e} |"
        )
    speedup = ours["steps_per_s"] / st["steps_per_s"]
    mem = ours["peak_rss_mb"] / st["peak_rss_mb"]
    print(
        f"\nspeed ratio (ours / sentence-transformers): {speedup:.2f}x; peak memory ratio {mem:.2f}"
    )
    return {"rows": rows, "speed_ratio": speedup, "memory_ratio": mem}


# --------------------------------------------------------------------------- STS before / after
def _sts_both(model_dir: str, dev: Path) -> tuple[float, float, dict]:
    """(our Spearman, sentence-transformers' Spearman, our metrics) on the same model folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.evaluation.sts import evaluate_sts, read_sts

    pairs = read_sts(dev)
    ours = evaluate_sts(SimCSEEncoder.from_pretrained(model_dir, device="cpu"), pairs)
    evaluator = EmbeddingSimilarityEvaluator(
        [p.sentence1 for p in pairs], [p.sentence2 for p in pairs], [p.score for p in pairs]
    )
    st = evaluator(SentenceTransformer(model_dir, device="cpu"))
    return ours["spearman"], float(st["spearman_cosine"]), ours


def part_sts(args: argparse.Namespace) -> dict:
    import torch

    from simcse_rag.encoder import SimCSEEncoder, resolve_model_path
    from simcse_rag.evaluation.sts import evaluate_sts, read_sts
    from simcse_rag.trainer import TrainingConfig, train

    torch.set_num_threads(args.threads)
    dev = args.data / "stsb_en" / "dev.tsv"
    base = resolve_model_path(args.model)
    dev_pairs = read_sts(dev)
    runs = {
        "(a) unsup SimCSE, unsup_en.txt": (args.data / "unsup_en.txt", 3e-5),
        "(b) sup SimCSE, nli_en/snli_pairs.tsv": (args.data / "nli_en" / "snli_pairs.tsv", 5e-5),
    }
    rows = [("all-MiniLM-L6-v2 (before)", "-", *_sts_both(base, dev))]
    work = Path(tempfile.mkdtemp(prefix="simcse-bench-"))
    for name, (data, lr) in runs.items():
        config = TrainingConfig(
            epochs=1,
            max_steps=args.sts_steps,
            batch_size=args.batch_size,
            learning_rate=lr,
            max_length=args.max_length,
            eval_steps=args.sts_eval_steps,
            checkpoint_steps=10**9,
            seed=args.seed,
        )
        encoder = SimCSEEncoder.from_pretrained(base, device="cpu")
        out = work / name.split()[0].strip("()")
        started = time.perf_counter()
        result = train(
            encoder,
            data,
            config,
            output_dir=out,
            eval_fn=lambda e: evaluate_sts(e, dev_pairs)["spearman"],
        )
        seconds = time.perf_counter() - started
        cfg = f"{result.global_step} steps, lr {lr}, {seconds:.0f}s"
        rows.append((f"{name} final", cfg, *_sts_both(str(out), dev)))
        rows.append(
            (f"{name} best (step {result.best_step})", cfg, *_sts_both(str(out / "best"), dev))
        )
    print(
        f"\n### STS-B dev (1,500 pairs) Spearman x100, all-MiniLM-L6-v2 (batch {args.batch_size}, "
        f"max_length {args.max_length}, temperature 0.05, dropout 0.1, eval every "
        f"{args.sts_eval_steps} steps)\n"
    )
    print("| model | training | ours | sentence-transformers | diff | alignment | uniformity |")
    print("|---|---|---:|---:|---:|---:|---:|")
    table = []
    for name, cfg, ours, st, metrics in rows:
        print(
            f"| {name} | {cfg} | {100 * ours:.2f} | {100 * st:.2f} | {100 * (ours - st):+.3f} | "
            f"{metrics['alignment']:.3f} | {metrics['uniformity']:.3f} |"
        )
        table.append(
            {
                "model": name,
                "training": cfg,
                "spearman": ours,
                "st_spearman": st,
                "alignment": metrics["alignment"],
                "uniformity": metrics["uniformity"],
            }
        )
    return {"rows": table}


# --------------------------------------------------------------------------- dropout ablation
def part_ablation(args: argparse.Namespace) -> dict:
    import torch

    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.evaluation.sts import evaluate_sts, read_sts
    from simcse_rag.testing import build_tiny_bert
    from simcse_rag.trainer import TrainingConfig, train

    torch.set_num_threads(args.threads)
    dev_pairs = read_sts(args.data / "stsb_en" / "dev.tsv")
    work = Path(tempfile.mkdtemp(prefix="simcse-ablation-"))
    tiny = build_tiny_bert(work / "tiny", hidden_size=64, num_layers=2, num_heads=2)
    before = evaluate_sts(SimCSEEncoder.from_pretrained(tiny, device="cpu"), dev_pairs)
    rows = [("tiny BERT (before)", before, None)]
    for p in (0.0, 0.1):
        trace: list[tuple[int, float, float]] = []

        def eval_fn(encoder: SimCSEEncoder, trace: list = trace) -> float:
            m = evaluate_sts(encoder, dev_pairs)
            trace.append((len(trace), m["alignment"], m["uniformity"]))
            return m["spearman"]

        encoder = SimCSEEncoder.from_pretrained(tiny, device="cpu")
        config = TrainingConfig(
            max_steps=args.ablation_steps,
            batch_size=64,
            learning_rate=1e-3,
            max_length=32,
            dropout=p,
            eval_steps=max(1, args.ablation_steps // 5),
            checkpoint_steps=10**9,
            seed=args.seed,
        )
        train(
            encoder, args.data / "unsup_en.txt", config, output_dir=work / f"p{p}", eval_fn=eval_fn
        )
        rows.append((f"unsup SimCSE, dropout {p}", evaluate_sts(encoder, dev_pairs), trace))
    print(
        f"\n### Dropout ablation, tiny random BERT (hidden 64, 2 layers), unsup_en.txt, "
        f"{args.ablation_steps} steps, batch 64, lr 1e-3; STS-B dev (lower = better for "
        "alignment and uniformity)\n"
    )
    print("| model | Spearman x100 | alignment | uniformity | alignment trace (every 1/5 run) |")
    print("|---|---:|---:|---:|---|")
    table = []
    for name, m, trace in rows:
        tr = " -> ".join(f"{a:.3f}" for _, a, _ in trace) if trace else "-"
        cells = f"{100 * m['spearman']:.2f} | {m['alignment']:.3f} | {m['uniformity']:.3f}"
        print(f"| {name} | {cells} | {tr} |")
        table.append(
            {
                "model": name,
                **{k: m[k] for k in ("spearman", "alignment", "uniformity")},
                "trace": trace,
            }
        )
    return {"rows": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--model", default=None, help="default: bundled all-MiniLM-L6-v2")
    parser.add_argument("--part", default="all", choices=("all", "speed", "sts", "ablation"))
    parser.add_argument("--steps", type=int, default=60, help="speed: steps per system")
    parser.add_argument("--warmup", type=int, default=10, help="speed: untimed first steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sts-steps", type=int, default=None, help="sts: steps (default 1 epoch)")
    parser.add_argument("--sts-eval-steps", type=int, default=50)
    parser.add_argument("--ablation-steps", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None, help="also write raw numbers here")
    parser.add_argument("--worker", choices=("ours", "st"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps((worker_ours if args.worker == "ours" else worker_st)(args)))
        return
    results = {}
    if args.part in ("all", "speed"):
        results["speed"] = part_speed(args)
    if args.part in ("all", "sts"):
        results["sts"] = part_sts(args)
    if args.part in ("all", "ablation"):
        results["ablation"] = part_ablation(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
