"""Leave-one-dataset-out choice of the hybrid defaults (issue #21).

For every setting in a grid (fusion method x rrf_k / normalisation x dense weight x candidate
depth x query backend) this computes our hybrid nDCG@10 on each shared retrieval set, from the
cached passage vectors (never re-encoding a corpus) and the library's own search and fusion:
each query's dense and BM25 candidate lists come from ``HybridRetriever.search_batch`` in
``dense`` / ``bm25`` mode and are fused by :func:`simcse_rag.index.fusion.fuse`, with each
query's dense weight scaled by its vocabulary coverage, exactly as a hybrid search does.

Two rules, each fixed before its held-out column was seen (docs/benchmarks.md):

* Grid (first session): per held-out set, the setting with the best mean nDCG@10 on the *other*
  sets (ties: the better worst case) is scored on the held-out set next to the current default
  and the best setting there (the oracle, for reference only); it may become the default only
  if, chosen on the others, it beats the current default on every held-out set.
* Transfer (second session, :data:`CANDIDATES`: settings with no per-corpus constant, equal
  weights, the library's depth and query backend): per held-out set, the candidate with the best
  mean on the other sets is scored on the held-out one; the fold passes if it is not worse than
  the default before #21 (RRF k=60, equal weights) beyond noise (the 95% paired-bootstrap
  interval of the per-query nDCG@10 difference reaches 0 or above) and is >= our best single leg
  there. If every fold passes, the candidate with the best mean over all sets (and >= our best
  leg on each) becomes the default (``benchmarks/transfer.py``).

Usage::

    python benchmarks/defaults.py                                # all cached sets
    python benchmarks/defaults.py --datasets tatqa_fin_dev zh_med_qa --json defaults.json
    python benchmarks/defaults.py --backends onnx-int8          # the transfer rule only needs int8
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from retrieval import corpus_embeddings  # noqa: E402 - a sibling script, not a package
from transfer import (  # noqa: E402
    held_out_fold,
    per_query_ndcg,
    setting_row,
    transfer_folds,
    transfer_markdown,
)

DEFAULT_DATA = Path("/work/shared/data") if Path("/work/shared/data").is_dir() else REPO / "data"
DEFAULT_CACHE = Path("/root/simcse-cache/retrieval")
DATASETS = {"liveqa_medquad": "test", "tatqa_fin_dev": "dev", "zh_med_qa": "dev"}
DEPTH = 100  # deepest candidate list in the grid; shallower ones are its prefixes

log = logging.getLogger("benchmarks.defaults")


@dataclass(frozen=True)
class Setting:
    """One point of the grid."""

    fusion: str
    rrf_k: float
    dense_weight: float
    candidates: int
    query_backend: str

    def label(self) -> str:
        """Short human-readable name."""
        method = f"rrf k={self.rrf_k:g}" if self.fusion == "rrf" else self.fusion
        return (
            f"{method}, dense w={self.dense_weight:g}, cand={self.candidates}, {self.query_backend}"
        )


def library_default() -> Setting:
    """The library's current default (``HybridConfig()``, ``search(candidates=100)``; ``auto``
    runs int8 ONNX on CPU)."""
    from simcse_rag.index.config import HybridConfig

    config = HybridConfig()
    backend = "onnx-int8" if config.query_backend == "auto" else config.query_backend
    return Setting(config.fusion, config.rrf_k, config.weights["dense"], 100, backend)


CURRENT = library_default()
#: The default before issue #21, shown for reference.
OLD_DEFAULT = Setting("rrf", 60, 1.0, 100, "onnx-int8")


#: The transfer rule's candidates: no per-corpus constant (equal weights, RRF's k=60 from the
#: paper, the library's depth and query backend), one per fusion method.
CANDIDATES = tuple(
    Setting(method, 60, 1.0, 100, "onnx-int8")
    for method in ("rrf", "relative_score", "dist_based", "dist_peak", "rrf_peak")
)


def grid(backends: list[str]) -> Iterator[Setting]:
    """Every setting compared."""
    methods = [("rrf", k) for k in (10, 30, 60, 100)] + [
        (m, 60) for m in ("relative_score", "dist_based", "dist_peak", "rrf_peak")
    ]
    for (fusion, k), w, c, b in itertools.product(
        methods, (0.5, 0.75, 1.0, 1.25, 1.5, 2.0), (30, 100), backends
    ):
        yield Setting(fusion, k, w, c, b)


Legs = dict[str, list[tuple[str, float]]]


def legs_for(data: Any, encoder: Any, cache: Any, backends: list[str]) -> dict[str, Legs]:
    """Candidate lists per query: ``bm25`` and ``dense:<backend>`` (top :data:`DEPTH`)."""
    from simcse_rag.index.hybrid import HybridConfig, HybridRetriever

    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]
    out: dict[str, Legs] = {}
    for backend in backends:
        retriever = HybridRetriever(encoder, HybridConfig(query_backend=backend))
        retriever.cache.merge(cache)
        retriever.add(data.corpus)
        if "bm25" not in out:
            hits = retriever.search_batch(texts, k=DEPTH, mode="bm25")
            out["bm25"] = {
                q: [(h.id, h.score) for h in hs] for q, hs in zip(qids, hits, strict=True)
            }
        hits = [retriever.search(t, k=DEPTH, mode="dense") for t in texts]  # one query per call
        out[f"dense:{backend}"] = {
            q: [(h.id, h.score) for h in hs] for q, hs in zip(qids, hits, strict=True)
        }
    return out


def hybrid_run(
    setting: Setting, legs: dict[str, Legs], factors: dict[str, float] | None = None
) -> dict[str, list[str]]:
    """Top-10 ids per query of ``setting`` over the precomputed candidate lists (``factors``: a
    multiplier of each query's dense weight, e.g. its vocabulary coverage)."""
    from simcse_rag.index.fusion import fuse

    dense, bm25, c = legs[f"dense:{setting.query_backend}"], legs["bm25"], setting.candidates
    factors = factors or {}
    return {
        q: [
            h.id
            for h in fuse(
                {"dense": dense[q][:c], "bm25": bm25[q][:c]},
                setting.fusion,
                k=setting.rrf_k,
                weights={"dense": setting.dense_weight * factors.get(q, 1.0), "bm25": 1.0},
                limit=10,
            )
        ]
        for q in dense
    }


def score(
    setting: Setting, legs: dict[str, Legs], qrels: Any, factors: dict[str, float] | None = None
) -> float:
    """Hybrid nDCG@10 of ``setting`` (see :func:`hybrid_run`)."""
    from simcse_rag.evaluation.retrieval import evaluate_run

    run = hybrid_run(setting, legs, factors)
    return evaluate_run(run, qrels, ks=(10,), metrics=("ndcg",))["ndcg@10"]


def leg_scores(legs: dict[str, Legs], qrels: Any) -> dict[str, float]:
    """nDCG@10 of each leg alone."""
    from simcse_rag.evaluation.retrieval import evaluate_run

    return {
        name: evaluate_run(
            {q: [d for d, _ in ranking[:10]] for q, ranking in leg.items()},
            qrels,
            ks=(10,),
            metrics=("ndcg",),
        )["ndcg@10"]
        for name, leg in legs.items()
    }


def leave_one_out(table: dict[Setting, dict[str, float]], datasets: list[str]) -> list[dict]:
    """Per held-out set: the setting chosen on the others, its held-out score, the default's."""
    folds = []
    for out in datasets:
        oracle = max(table, key=lambda s: table[s][out])
        fold = held_out_fold(table, table, datasets, out, CURRENT)
        folds.append({**fold, "oracle": oracle, "oracle_score": table[oracle][out]})
    return folds


def markdown(
    table: dict[Setting, dict[str, float]],
    folds: list[dict],
    legs: dict[str, dict[str, float]],
    datasets: list[str],
) -> str:
    lines = ["### Our legs alone", "", "| leg | " + " | ".join(datasets) + " |"]
    lines.append("|---|" + "---:|" * len(datasets))
    for name in legs[datasets[0]]:
        lines.append(f"| {name} | " + " | ".join(f"{legs[d][name]:.4f}" for d in datasets) + " |")
    lines += ["", "### Leave one dataset out", ""]
    lines.append(
        "| held out | chosen on the others | held-out nDCG@10 | current default | Δ | oracle |"
    )
    lines.append("|---|---|---:|---:|---:|---:|")
    for f in folds:
        delta = f["chosen_score"] - f["current_score"]
        lines.append(
            f"| {f['held_out']} | {f['chosen'].label()} | {f['chosen_score']:.4f} | "
            f"{f['current_score']:.4f} | {delta:+.4f} | {f['oracle_score']:.4f} |"
        )
    wins = all(f["chosen_score"] > f["current_score"] for f in folds)
    same = len({f["chosen"] for f in folds}) == 1
    lines += [
        "",
        f"- chosen setting beats the current default on every held-out set: {wins}",
        f"- every fold chose the same setting: {same}",
        "",
        "### Best 15 settings by worst case over all sets",
        "",
        "| setting | " + " | ".join(datasets) + " | mean | worst |",
        "|---|" + "---:|" * (len(datasets) + 2),
    ]
    ranked = sorted(table, key=lambda s: -min(table[s].values()))
    for s in dict.fromkeys([*ranked[:15], CURRENT, OLD_DEFAULT]):
        mark = " (current default)" if s == CURRENT else ""
        mark += " (default before #21)" if s == OLD_DEFAULT else ""
        lines.append(setting_row(s.label() + mark, [table[s][d] for d in datasets], worst=True))
    return "\n".join(lines)


def query_factors(encoder: Any, data: Any) -> tuple[dict[str, float], dict[str, float]]:
    """Each query's dense-weight factor (its readable share, as a hybrid search applies it) and
    the mean readable share of queries and of a sample of passages."""
    from simcse_rag.index.coverage import dense_weight_factor, encoder_readable_share

    qids = list(data.queries)
    q_share = np.concatenate(
        [
            encoder_readable_share(encoder, [data.queries[q] for q in qids[i : i + 256]])
            for i in range(0, len(qids), 256)
        ]
    )
    sample = [p.text for p in data.corpus[:: max(1, len(data.corpus) // 1000)]]
    p_share = np.concatenate(
        [encoder_readable_share(encoder, sample[i : i + 64]) for i in range(0, len(sample), 64)]
    )
    factors = dict(zip(qids, dense_weight_factor(q_share).tolist(), strict=True))
    return factors, {"queries": float(q_share.mean()), "passages": float(p_share.mean())}


def coverage_markdown(coverage: dict[str, dict[str, float]]) -> str:
    lines = [
        "",
        "### Vocabulary coverage (hybrid: dense weight x readable share of the query)",
        "",
        "| set | query share | passage share | default without / with coverage | our BM25 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, c in coverage.items():
        lines.append(
            f"| {name} | {c['queries']:.3f} | {c['passages']:.3f} | "
            f"{c['current_without']:.4f} / {c['current_with']:.4f} | {c['bm25']:.4f} |"
        )
    return "\n".join(lines)


def reuse_previous(
    previous: dict[str, Any],
    table: dict[Setting, dict[str, float]],
    leg_table: dict[str, dict[str, float]],
    coverage: dict[str, dict[str, float]],
) -> None:
    """Fill the tables with an earlier run's scores (same grid, same code)."""
    for row in previous["settings"]:
        scores = row.pop("ndcg@10")
        setting = Setting(**row)
        if setting in table:
            table[setting].update(scores)
    leg_table.update(previous["legs"])
    coverage.update(previous["coverage"])


def fully_cached(encoder: Any, texts: list[str], folder: Path) -> bool:
    """Whether ``folder`` holds every passage vector (this script never encodes a corpus)."""
    from simcse_rag.index.cache import EmbeddingCache

    if not (folder / "embeddings.json").is_file():
        return False
    cache = EmbeddingCache(encoder.fingerprint(), encoder.dim)
    cache.merge(EmbeddingCache.read(folder))
    return not cache.lookup(texts)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="passage vectors")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--backends", nargs="+", default=["onnx", "onnx-int8"])
    parser.add_argument("--json", type=Path, default=None, help="also write every score as JSON")
    parser.add_argument(
        "--previous",
        type=Path,
        default=None,
        help="a --json file of an earlier run with the same grid: its sets are not rescored",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")

    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.evaluation.retrieval import load_beir

    encoder = SimCSEEncoder.from_pretrained(device="cpu")
    settings = list(grid(args.backends))
    table: dict[Setting, dict[str, float]] = {s: {} for s in settings}
    leg_table: dict[str, dict[str, float]] = {}
    coverage: dict[str, dict[str, float]] = {}
    queries: dict[str, dict[Setting, dict[str, float]]] = {}
    if args.previous:
        reuse_previous(json.loads(args.previous.read_text()), table, leg_table, coverage)
    for name in args.datasets:
        if name in leg_table:
            continue
        data = load_beir(args.data / name, DATASETS[name])
        texts = [p.text for p in data.corpus]
        if not fully_cached(encoder, texts, args.cache_dir / name):
            log.warning("%s: passage vectors not (fully) in %s; skipped", name, args.cache_dir)
            continue
        cache, _ = corpus_embeddings(encoder, texts, args.cache_dir, name)
        legs = legs_for(data, encoder, cache, args.backends)
        leg_table[name] = leg_scores(legs, data.qrels)
        factors, shares = query_factors(encoder, data)
        for s in settings:
            table[s][name] = score(s, legs, data.qrels, factors)
        queries[name] = {
            s: per_query_ndcg(hybrid_run(s, legs, factors), data.qrels)
            for s in dict.fromkeys([*CANDIDATES, CURRENT, OLD_DEFAULT])
            if f"dense:{s.query_backend}" in legs
        }
        coverage[name] = {
            **shares,
            "current_without": score(CURRENT, legs, data.qrels),
            "current_with": table[CURRENT][name],
            "bm25": leg_table[name]["bm25"],
        }
        log.warning("%s done", name)
    done = list(leg_table)
    table = {s: scores for s, scores in table.items() if scores}
    folds = leave_one_out(table, done) if len(done) > 1 else []
    print(markdown(table, folds, leg_table, done))
    print(coverage_markdown(coverage))
    transfer: list[dict[str, Any]] = []
    if len(queries) > 1 and set(queries) == set(done):
        transfer = transfer_folds(table, queries, leg_table, done, CANDIDATES, OLD_DEFAULT)
        print(transfer_markdown(table, transfer, leg_table, done, CANDIDATES, CURRENT))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "legs": leg_table,
                    "coverage": coverage,
                    "settings": [{**asdict(s), "ndcg@10": table[s]} for s in table],
                    "transfer": [{**f, "chosen": asdict(f["chosen"])} for f in transfer],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
