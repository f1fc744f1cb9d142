"""Domain adaptation before/after: simcse-rag adapt vs sentence-transformers, one run.

Datasets (../shared/data): ``liveqa_medquad`` (medical, qrels ``test``) and ``tatqa_fin_dev``
(finance, qrels ``dev``). Neither has a train split, so the *queries* with a relevant document are
split 50/50 by a seeded hash of the query id (:func:`simcse_rag.pairs.split_queries`): training
uses only the train half, every system is evaluated on the same held-out half, before and after.

Systems (base model all-MiniLM-L6-v2 for all):

* ``base``: the model as shipped.
* ``ours-corpus``: ``adapt`` with pseudo-queries from the corpus only (no labels), strategy
  ``--strategy`` (default ``title``; the library's ``auto`` refuses
  corpus-only runs); ``ours-corpus:keywords`` etc. name a strategy per system, so one run can
  compare them (``--systems ours-corpus:keywords,ours-corpus:title,ours-corpus:ict``). The
  library merges corpus-only models with the base at weight 0.3 (``--merge-weight`` overrides).
* ``ours-pairs``: ``adapt`` with the labelled pairs of the training queries.
* ``ours-queries``: ``adapt(queries=...)`` with the training queries' texts alone (qrels hidden):
  the base retriever labels them under the library's rule; the label precision of the kept
  questions is then measured against the hidden qrels.
* ``ours-generated-standin``: ``adapt(generated=...)`` with the training queries' labelled pairs
  as stand-in generated pairs, through the round-trip filter (the upper bound of the generator
  route: real questions instead of generated ones); ``ours-generated-standin:K`` sets the
  filter's k, ``--round-trip-model base`` checks with the base model instead of one trained on
  the candidates, and ``--standin-noise F`` adds, for a share F of the training questions, a
  pair with a random passage (a question its passage does not answer) and counts how many of
  those the adapted model was trained on.
* ``st-pairs``: sentence-transformers ``util.mine_hard_negatives`` (dense, ``relative_margin``
  0.05, same ``num_negatives`` and ``range_max``) + ``MultipleNegativesRankingLoss(scale=20)``
  with ``SentenceTransformerTrainer`` (no-duplicates batches), same pairs, steps, batch size,
  learning rate (``--lr``, default the library's for labelled pairs), warm-up and training max
  length. Evaluated with the same code as ours
  (:func:`simcse_rag.adapt.evaluate_retriever` over the saved model).

Every number is nDCG@10 on the held-out queries in dense, bm25 and hybrid (RRF) mode.
``--corpus-size N`` keeps every judged passage plus a seeded sample of the others up to N
(CPU time); 0 keeps the full corpus. ``--timing-only`` adapts 20k passages (all of LiveQA's
17,315, topped up from TAT-QA and zh_med_qa) with the library defaults and reports the wall time
(CPU budget): corpus-only (``--timing-route corpus``, strategy ``--strategy``) or from
``--timing-queries`` bare training-half questions (``--timing-route queries``: LiveQA's, then
TAT-QA's, whose passages are all in the 20k).

Data loading and settings live in ``adapt_data.py``, the sentence-transformers peer in
``adapt_peer.py``, the ``--timing-only`` route in ``adapt_timing.py``.

Run::

    python benchmarks/adapt.py --out /tmp/adapt-bench               # both datasets, all systems
    python benchmarks/adapt.py --datasets tatqa_fin_dev --max-steps 20  # quick look
    python benchmarks/adapt.py --timing-only --out /tmp/adapt-timing   # 20k-passage CPU budget
    python benchmarks/adapt.py --timing-only --timing-route queries --out /tmp/adapt-timing-q
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from adapt_data import adapt_config, base_retriever, load_dataset, noise_pairs  # noqa: E402
from adapt_peer import run_st  # noqa: E402
from adapt_timing import timing_only  # noqa: E402

from simcse_rag.adapt import AdaptConfig, adapt, evaluate_retriever  # noqa: E402
from simcse_rag.adapt_questions import LabelRule, label_queries  # noqa: E402
from simcse_rag.encoder import SimCSEEncoder  # noqa: E402
from simcse_rag.pairs import TrainingPair, pairs_from_beir  # noqa: E402

SYSTEMS = ("ours-pairs", "ours-queries", "ours-generated-standin", "st-pairs", "ours-corpus")
#: Also accepted, not run by default: ``ours-queries-top3:K`` (see :func:`top3_candidates`).
EXPERIMENTS = ("ours-queries-top3",)


def run_ours(ds: dict, args: argparse.Namespace, system: str, out: Path) -> dict:
    encoder = SimCSEEncoder.from_pretrained(args.model, device="cpu")
    sources: dict = {}
    kind, _, option = system.partition(":")
    labelled = None
    if kind in ("ours-pairs", "ours-generated-standin"):
        corpus_map = {p.id: p for p in ds["corpus"]}
        labelled = pairs_from_beir(ds["folder"], ds["split"], corpus_map, query_ids=ds["train_ids"])
    if kind == "ours-pairs":
        sources["pairs"] = labelled
        sources["pairs_source"] = f"{ds['folder'].name} qrels/{ds['split']} (train half)"
    elif kind == "ours-queries":
        sources["queries"] = ds["train_queries"]
    elif kind == "ours-generated-standin":
        noise = noise_pairs(ds, labelled, args.standin_noise, args.seed)
        sources["generated"] = labelled + noise
    strategy = option if kind == "ours-corpus" and option else None
    k = int(option) if kind in ("ours-generated-standin", "ours-queries-top3") and option else None
    if kind == "ours-queries-top3":
        sources["generated"] = top3_candidates(ds, args, adapt_config(args))
    config = adapt_config(args, strategy, k)
    t0 = time.perf_counter()
    result = adapt(
        ds["corpus"],
        encoder,
        out,
        config=config,
        **sources,
        eval_set=ds["eval_set"],
        overwrite=True,
        cache_dir=args.out / "cache",
        show_progress=args.progress,
    )
    rep = result.report
    extra = {}
    if kind == "ours-generated-standin" and args.standin_noise:
        extra["noise"] = {"given": len(noise), "trained": trained_noise(out, noise)}
    return {
        **extra,
        "before": rep["before"],
        "after": rep["after"],
        "seconds": time.perf_counter() - t0,
        "pairs": rep["training"]["pairs"],
        "mining": rep["rounds"][-1]["mining"],
        "train_s": sum(r["train"]["seconds"] for r in rep["rounds"]),
        "strategy": rep["training"].get("strategy"),
        "merge_weight": rep["training"].get("merge_weight"),
        "question_filters": rep["training"].get("question_filters"),
        "label_precision": (
            hidden_label_precision(ds, args, config)
            if kind == "ours-queries"
            else trained_right(out, ds)
            if kind == "ours-queries-top3"
            else None
        ),
    }


def trained_pairs(out: Path) -> list[tuple[str, str]]:
    """(question, passage id) of each pair the adapted model was trained on (adapt's
    mined.jsonl)."""
    with (out / "mined.jsonl").open(encoding="utf-8") as rows:
        return [(r["query"], r["positive_id"]) for r in map(json.loads, rows)]


def trained_noise(out: Path, noise: list) -> int:
    """How many noise pairs the adapted model was trained on."""
    wanted = {(p.query, p.positive_id) for p in noise}
    return sum(pair in wanted for pair in trained_pairs(out))


def run_base_retriever(ds: dict, args: argparse.Namespace, config: AdaptConfig) -> Any:
    """:func:`adapt_data.base_retriever` at adapt's token limit, vectors from the run's
    embedding cache."""
    return base_retriever(ds["corpus"], args.model, config.encode_max_length, args.out / "cache")


def count_right(ds: dict, pairs: list[tuple[str, str]]) -> int:
    """How many (question text, passage id) pairs the hidden qrels of a training question with
    that text call relevant (TAT-QA repeats a question text across reports)."""
    by_text: dict[str, list[str]] = {}
    for q, t in ds["train_queries"].items():
        by_text.setdefault(" ".join(t.split()), []).append(q)
    return sum(
        any(ds["train_qrels"][q].get(pid, 0) >= 1 for q in by_text[" ".join(text.split())])
        for text, pid in pairs
    )


def top3_candidates(ds: dict, args: argparse.Namespace, config: AdaptConfig) -> list:
    """Experiment: each bare training question with each of its top-3 base hybrid passages, as
    "generated" pairs (the trained round trip with k=1 then keeps one passage per question)."""
    items = list(ds["train_queries"].items())
    with run_base_retriever(ds, args, config) as retriever:
        hits = retriever.search_batch([t for _, t in items], k=3, mode="hybrid")
    return [
        TrainingPair(f"top{j}:{q}", text, retriever.get(h.id).text, h.id)
        for (q, text), hs in zip(items, hits, strict=True)
        for j, h in enumerate(hs)
    ]


def trained_right(out: Path, ds: dict) -> dict:
    """Pairs trained on whose passage the hidden qrels call relevant."""
    pairs = trained_pairs(out)
    right = count_right(ds, pairs)
    return {"trained": len(pairs), "right": right, "precision": right / max(1, len(pairs))}


def hidden_label_precision(ds: dict, args: argparse.Namespace, config: AdaptConfig) -> dict:
    """Label precision of the training questions against their hidden qrels: every question's
    hybrid top-1 and the kept ones (the base retriever rebuilt from adapt's embedding cache)."""
    out = {}
    everything = LabelRule(max_leg_rank=None)
    with run_base_retriever(ds, args, config) as retriever:
        for name, rule in (("all", everything), ("kept", config.label_rule)):
            pairs, _ = label_queries(retriever, list(ds["train_queries"].values()), rule)
            right = count_right(ds, [(p.query, p.positive_id) for p in pairs])
            out[name] = {"questions": len(pairs), "right": right, "precision": right / len(pairs)}
    return out


def table(results: dict) -> str:
    lines = [
        "| dataset | system | pairs | dense nDCG@10 | bm25 | hybrid | Δ dense | Δ hybrid | "
        "train s | total s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in results.items():
        base = res.get("base")
        if base is None:
            continue
        b = {m: 100 * base[m]["ndcg@10"] for m in base}
        lines.append(
            f"| {name} | base | - | {b['dense']:.2f} | {b['bm25']:.2f} | {b['hybrid']:.2f} | "
            "- | - | - | - |"
        )
        known = SYSTEMS + EXPERIMENTS
        done = [s for s in res if s.split(":")[0] in known and isinstance(res[s], dict)]
        for system in done:  # (a failed system leaves a "<system>-error" string)
            r = res[system]
            a = {m: 100 * r["after"][m]["ndcg@10"] for m in r["after"]}
            merged = r.get("merge_weight")
            label = system + (f" (merge {merged:g})" if merged not in (None, 1.0) else "")
            lines.append(
                f"| {name} | {label} | {r['pairs']} | {a['dense']:.2f} | {a['bm25']:.2f} | "
                f"{a['hybrid']:.2f} | {a['dense'] - b['dense']:+.2f} | "
                f"{a['hybrid'] - b['hybrid']:+.2f} | {r['train_s']:.0f} | {r['seconds']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("/tmp/simcse-adapt-bench"))
    parser.add_argument("--datasets", default="tatqa_fin_dev,liveqa_medquad")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--model", default=None)
    parser.add_argument("--max-steps", type=int, default=AdaptConfig.max_steps)
    parser.add_argument("--batch-size", type=int, default=AdaptConfig.batch_size)
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default: the library's, 1e-4 with pairs, 5e-5 corpus-only)",
    )
    parser.add_argument("--train-max-length", type=int, default=AdaptConfig.train_max_length)
    parser.add_argument(
        "--encode-max-length",
        type=int,
        default=None,
        help="corpus token limit of our systems (default: the model's own, 256 for "
        "all-MiniLM-L6-v2, where adapt itself uses 128)",
    )
    parser.add_argument("--max-pairs", type=int, default=AdaptConfig.max_pairs)
    parser.add_argument(
        "--strategy", default="title", help="pseudo-query strategy of ours-corpus and --timing-only"
    )
    parser.add_argument("--num-negatives", type=int, default=1)
    parser.add_argument(
        "--range-min", type=int, default=0, help="our mining skips the best-ranked N candidates"
    )
    parser.add_argument("--range-max", type=int, default=50)
    parser.add_argument(
        "--mining-mode", default="hybrid", choices=("hybrid", "dense", "bm25"), help="our mining"
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--merge-weight",
        type=float,
        default=None,
        help="share of fine-tuned weights kept (default: the library's, 0.3 corpus-only, 1 pairs)",
    )
    parser.add_argument(
        "--label-leg-rank",
        type=int,
        default=None,
        help="ours-queries: the top passage must be in both legs' top N (0: no check; default: "
        "the library's rule)",
    )
    parser.add_argument(
        "--label-dense-rank", type=int, default=None, help="ours-queries: limit for dense alone"
    )
    parser.add_argument(
        "--label-bm25-rank", type=int, default=None, help="ours-queries: limit for BM25 alone"
    )
    parser.add_argument("--label-margin", type=float, default=0.0, help="with --label-leg-rank")
    parser.add_argument(
        "--round-trip-model",
        default=AdaptConfig.round_trip_model,
        choices=("adapted", "base"),
        help="ours-generated-standin: the model of the round trip",
    )
    parser.add_argument(
        "--standin-noise",
        type=float,
        default=0.0,
        help="ours-generated-standin: share of training questions given one extra pair with a "
        "random passage (a generated question its passage does not answer)",
    )
    parser.add_argument("--corpus-size", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--timing-passages", type=int, default=20000)
    parser.add_argument(
        "--timing-route",
        default="corpus",
        choices=("corpus", "queries"),
        help="--timing-only: corpus-only pseudo-queries or bare questions (--queries)",
    )
    parser.add_argument(
        "--timing-queries", type=int, default=400, help="--timing-route queries: questions given"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS") or str(__import__("torch").get_num_threads())
    print(f"# adapt benchmark; torch threads {threads}; load avg {os.getloadavg()}", flush=True)
    if args.timing_only:
        return timing_only(args)
    results: dict = {}
    systems = [s for s in args.systems.split(",") if s]
    for name in args.datasets.split(","):
        ds = load_dataset(args.data, name, args.corpus_size, args.seed)
        res: dict = {
            "corpus": len(ds["corpus"]),
            "train_queries": len(ds["train_ids"]),
            "eval_queries": sorted(ds["eval_set"].qrels),
        }
        results[name] = res
        print(
            f"## {name}: {len(ds['corpus'])} passages, {len(ds['train_ids'])} train queries, "
            f"{len(ds['eval_set'].qrels)} held-out queries",
            flush=True,
        )
        for system in systems:
            out = args.out / f"{name}-{system.replace(':', '-')}"
            try:
                if system == "st-pairs":
                    res[system] = run_st(ds, args, out)
                else:
                    res[system] = run_ours(ds, args, system, out)
                    res["base"] = res[system]["before"]
            except Exception as exc:  # noqa: BLE001 - a failed system must not lose the others
                print(f"{name} {system} FAILED: {type(exc).__name__}: {exc}", flush=True)
                res[f"{system}-error"] = repr(exc)
                continue
            if "base" not in res:
                cache = args.out / "cache"
                with base_retriever(ds["corpus"], args.model, args.encode_max_length, cache) as r:
                    res["base"] = evaluate_retriever(r, ds["eval_set"])
            print(f"{name} {system}: {res[system]['seconds']:.0f}s", flush=True)
            for key in ("question_filters", "label_precision", "noise"):
                if res[system].get(key):
                    print(f"{name} {system} {key}: {res[system][key]}", flush=True)
            print(table(results), flush=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n## Final\n")
    print(table(results))


if __name__ == "__main__":
    main()
