"""Leave-one-dataset-out check of BM25 and query-encoder changes to the hybrid default (#21).

Candidates (none has a per-corpus constant; each is the current default, ``dist_peak`` at equal
weights over 100 candidates per leg with each query's dense weight x its vocabulary coverage,
changed in one named way):

* ``default``: the library before this check (BM25 counts each distinct query term once; int8
  ONNX queries; Lucene BM25 k1=1.5, b=0.75).
* ``query_tf``: BM25 counts a query term once per occurrence, as Lucene (every occurrence is a
  clause), bm25s and rank-bm25 do (so both peers' BM25 do).
* ``fp32``: fp32 ONNX queries (vectors identical to PyTorch) instead of int8.
* ``query_tf+fp32``: both.
* ``query_tf+k1=0.9,b=0.4``: Anserini's BEIR setting, a published default not tuned here.
* ``query_tf+k1=1.2,b=0.75``: Lucene/Elasticsearch's default k1.

Rule, fixed and committed before the run (same as ``benchmarks/defaults.py``'s transfer rule,
with the current default as the baseline):

1. Per held-out set, the candidate with the best mean nDCG@10 on the other two sets (ties: the
   better worst case, then the order above, ``default`` first) is scored on the held-out set.
2. The fold passes if the 95% paired-bootstrap interval (2,000 resamples, seed 0) of its
   per-query nDCG@10 difference to ``default`` reaches 0 or above, and its hybrid is >= its own
   best single leg (BM25 or dense) there.
3. A candidate becomes the default only if every fold chose it (the same candidate, not
   ``default``) and every fold passes. Folds that choose different candidates adopt nothing.
4. A candidate with fp32 queries is adopted only if a locked timing afterwards still shows our
   hybrid p50 <= 1/3 of the faster peer hybrid on TAT-QA (``benchmarks/retrieval.py``).

Passage vectors: the PyTorch ones in ``--cache-dir`` (as for the ``dist_peak`` decision); the
int8 passage default changes no ranking beyond noise (docs/benchmarks.md, "Passage encoding").

Usage::

    python benchmarks/bm25_defaults.py --json /tmp/bm25_defaults.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from defaults import DATASETS, DEFAULT_CACHE, DEFAULT_DATA, query_factors  # noqa: E402
from retrieval import corpus_embeddings  # noqa: E402 - a sibling script, not a package
from transfer import paired_bootstrap, per_query_ndcg  # noqa: E402

DEPTH = 100
log = logging.getLogger("benchmarks.bm25_defaults")


@dataclass(frozen=True)
class Candidate:
    """One candidate default: the BM25 leg's settings and the query backend."""

    name: str
    query_tf: bool = False
    k1: float = 1.5
    b: float = 0.75
    query_backend: str = "onnx-int8"

    @property
    def bm25_key(self) -> tuple[bool, float, float]:
        return (self.query_tf, self.k1, self.b)


CANDIDATES = (
    Candidate("default"),
    Candidate("query_tf", query_tf=True),
    Candidate("fp32", query_backend="onnx"),
    Candidate("query_tf+fp32", query_tf=True, query_backend="onnx"),
    Candidate("query_tf+k1=0.9,b=0.4", query_tf=True, k1=0.9, b=0.4),
    Candidate("query_tf+k1=1.2,b=0.75", query_tf=True, k1=1.2, b=0.75),
)
BASELINE = CANDIDATES[0]

Ranking = dict[str, list[tuple[str, float]]]


def legs(data: Any, encoder: Any, cache: Any) -> dict[Any, Ranking]:
    """Top-:data:`DEPTH` lists per query: ``("bm25", query_tf, k1, b)`` and ``("dense",
    backend)`` for every setting a candidate uses."""
    from simcse_rag.index.bm25 import BM25Index
    from simcse_rag.index.hybrid import HybridConfig, HybridRetriever

    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]
    out: dict[Any, Ranking] = {}
    for backend in dict.fromkeys(c.query_backend for c in CANDIDATES):
        retriever = HybridRetriever(
            encoder, HybridConfig(query_backend=backend, passage_backend="torch")
        )
        retriever.cache.merge(cache)
        retriever.add(data.corpus)
        hits = [retriever.search(t, k=DEPTH, mode="dense") for t in texts]  # one per call
        out[("dense", backend)] = {
            q: [(h.id, h.score) for h in hs] for q, hs in zip(qids, hits, strict=True)
        }
    ids, corpus = [p.id for p in data.corpus], [p.text for p in data.corpus]
    for query_tf, k1, b in dict.fromkeys(c.bm25_key for c in CANDIDATES):
        index = BM25Index("auto", k1=k1, b=b, query_tf=query_tf)
        index.add(ids, corpus)
        found, scores = index.search(texts, k=DEPTH)
        out[("bm25", query_tf, k1, b)] = {
            q: list(zip(found[i].tolist(), scores[i].tolist(), strict=True))
            for i, q in enumerate(qids)
        }
    return out


def candidate_runs(
    c: Candidate, ranked: dict[Any, Ranking], factors: dict[str, float]
) -> dict[str, dict[str, list[str]]]:
    """Top-10 ids per query of ``c``'s hybrid and of each of its legs."""
    from simcse_rag.index.fusion import DEFAULT_FUSION, fuse

    dense, bm25 = ranked[("dense", c.query_backend)], ranked[("bm25", *c.bm25_key)]
    hybrid = {
        q: [
            h.id
            for h in fuse(
                {"dense": dense[q], "bm25": bm25[q]},
                DEFAULT_FUSION,
                weights={"dense": factors.get(q, 1.0), "bm25": 1.0},
                limit=10,
            )
        ]
        for q in dense
    }
    return {
        "hybrid": hybrid,
        "dense": {q: [d for d, _ in r[:10]] for q, r in dense.items()},
        "bm25": {q: [d for d, _ in r[:10]] for q, r in bm25.items()},
    }


def folds(per: dict[str, dict[str, dict[str, dict[str, float]]]]) -> list[dict[str, Any]]:
    """The rule of the module docstring, per held-out set (``per[set][candidate][run]`` holds
    per-query nDCG@10)."""
    sets = list(per)

    def mean(name: str, d: str, run: str = "hybrid") -> float:
        return float(np.mean(list(per[d][name][run].values())))

    out = []
    for held in sets:
        others = [d for d in sets if d != held]
        order = {c.name: i for i, c in enumerate(CANDIDATES)}
        chosen = max(
            CANDIDATES,
            key=lambda c: (
                np.mean([mean(c.name, d) for d in others]),
                min(mean(c.name, d) for d in others),
                -order[c.name],
            ),
        )
        diff, lo, hi = paired_bootstrap(
            per[held][chosen.name]["hybrid"], per[held][BASELINE.name]["hybrid"]
        )
        best_leg = max(mean(chosen.name, held, "bm25"), mean(chosen.name, held, "dense"))
        score = mean(chosen.name, held)
        out.append(
            {
                "held_out": held,
                "chosen": chosen.name,
                "score": score,
                "baseline": mean(BASELINE.name, held),
                "diff": diff,
                "ci": (lo, hi),
                "best_leg": best_leg,
                "passes": hi >= 0 and score >= best_leg,
            }
        )
    return out


def markdown(per: dict[str, Any], fold_rows: list[dict[str, Any]]) -> str:
    sets = list(per)
    lines = ["| candidate | " + " | ".join(sets) + " | mean |", "|---|" + "---:|" * (len(sets) + 1)]
    for c in CANDIDATES:
        cells = [
            f"{np.mean(list(per[d][c.name]['hybrid'].values())):.4f} "
            f"(BM25 {np.mean(list(per[d][c.name]['bm25'].values())):.4f}, "
            f"dense {np.mean(list(per[d][c.name]['dense'].values())):.4f})"
            for d in sets
        ]
        avg = np.mean([np.mean(list(per[d][c.name]["hybrid"].values())) for d in sets])
        lines.append(f"| {c.name} | " + " | ".join(cells) + f" | {avg:.4f} |")
    lines += [
        "",
        "| held out | chosen on the others | held-out | default | Δ [95% CI] | best leg | passes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for f in fold_rows:
        lo, hi = f["ci"]
        lines.append(
            f"| {f['held_out']} | {f['chosen']} | {f['score']:.4f} | {f['baseline']:.4f} | "
            f"{f['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {f['best_leg']:.4f} | {f['passes']} |"
        )
    chosen = {f["chosen"] for f in fold_rows}
    adopt = (
        chosen.pop()
        if len(chosen) == 1 and BASELINE.name not in chosen and all(f["passes"] for f in fold_rows)
        else None
    )
    lines.append(f"\n- decision: {'adopt ' + adopt if adopt else 'keep the current default'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="passage vectors")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--json", type=Path, default=None, help="also write per-query scores")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")

    from simcse_rag.datasets import load_beir
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(device="cpu")
    per: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for name in args.datasets:
        data = load_beir(args.data / name, DATASETS[name])
        cache, _ = corpus_embeddings(encoder, [p.text for p in data.corpus], args.cache_dir, name)
        ranked = legs(data, encoder, cache)
        factors, _ = query_factors(encoder, data)
        per[name] = {
            c.name: {
                run: per_query_ndcg(ids, data.qrels)
                for run, ids in candidate_runs(c, ranked, factors).items()
            }
            for c in CANDIDATES
        }
        log.warning("%s done", name)
    fold_rows = folds(per) if len(per) > 1 else []
    print(markdown(per, fold_rows))
    if args.json:
        args.json.write_text(json.dumps({"per_query": per, "folds": fold_rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
