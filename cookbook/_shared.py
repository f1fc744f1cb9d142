"""Helpers shared by the cookbook recipes: model loading, data paths and BEIR slices.

Not a recipe. Kept small so each recipe still reads top to bottom.
"""

from __future__ import annotations

import atexit
import random
import shutil
import tempfile
from pathlib import Path

from simcse_rag import testing
from simcse_rag.datasets import BeirData, load_beir
from simcse_rag.encoder import SimCSEEncoder

REPO = Path(__file__).resolve().parents[1]
#: Real data beside the repository (read-only), as in CI.
DEFAULT_DATA = REPO.parent / "shared" / "data"


def load_encoder(tiny: bool, model: str | None = None) -> SimCSEEncoder:
    """The bundled all-MiniLM-L6-v2 (or ``model``); with ``tiny``, a tiny random BERT."""
    if not tiny:
        return testing.load_encoder(model)
    # Recipes have always let --tiny win over --model (testing.load_encoder refuses both).
    scratch = Path(tempfile.mkdtemp(prefix="cookbook-"))
    # The encoder holds the weights in memory: the files go when the recipe ends.
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return testing.load_encoder(tiny=True, tiny_dir=scratch / "tiny-bert")


def dataset_folder(data: Path, name: str) -> Path | None:
    """``data/name`` when it holds a BEIR set, else ``None``."""
    folder = Path(data) / name
    return folder if (folder / "corpus.jsonl").is_file() else None


def beir_slice(
    folder: Path, split: str, *, corpus_size: int = 0, max_queries: int = 0, seed: int = 0
) -> BeirData:
    """Load a BEIR set, optionally smaller: a seeded sample of ``max_queries`` judged queries,
    every passage judged for them, and other passages up to ``corpus_size`` (0 = no limit).

    Keeping the judged passages of the kept queries makes a small slice a fair, if easier,
    version of the full set (the distractors are a random sample).
    """
    data = load_beir(folder, split)
    rng = random.Random(seed)
    qids = sorted(q for q, docs in data.qrels.items() if any(g >= 1 for g in docs.values()))
    if max_queries and len(qids) > max_queries:
        qids = sorted(rng.sample(qids, max_queries))
    qrels = {q: data.qrels[q] for q in qids}
    corpus = data.corpus
    if corpus_size and len(corpus) > corpus_size:
        judged = {d for docs in qrels.values() for d in docs}
        others = [p.id for p in corpus if p.id not in judged]
        rng.shuffle(others)
        keep = judged | set(others[: max(0, corpus_size - len(judged))])
        corpus = [p for p in corpus if p.id in keep]
    return BeirData(corpus=corpus, queries={q: data.queries[q] for q in qids}, qrels=qrels)
