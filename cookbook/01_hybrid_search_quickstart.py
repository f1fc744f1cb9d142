"""01 - Hybrid search quickstart: index passages, search in dense / BM25 / hybrid mode, save, load.

Shows: building a :class:`~simcse_rag.index.hybrid.HybridRetriever` over the bundled bilingual
children's-health FAQ (156 passages, English and Chinese), what each mode returns for an exact
medical term, a paraphrase and a Chinese query, the per-source ranks every hybrid hit carries,
and an atomic save / load round trip (plain JSON + .npy + FAISS files, no pickle).

Time: about 20 s on 2 CPU cores with the bundled all-MiniLM-L6-v2; about 5 s with ``--tiny``.

Run::

    python cookbook/01_hybrid_search_quickstart.py            # bundled model, offline
    python cookbook/01_hybrid_search_quickstart.py --tiny     # tiny random model (CI)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _shared import load_encoder

from simcse_rag.demo import load_sample
from simcse_rag.index.hybrid import HybridRetriever

QUERIES = [
    "scarlet fever strawberry tongue",  # exact medical terms: BM25's strength
    "my baby's chest pulls in under the ribs when she breathes",  # paraphrase: dense's strength
    "宝宝发烧39度怎么办",  # Chinese: BM25 tokenises it with jieba
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model (seconds)")
    parser.add_argument("--model", default=None, help="model folder or HF id (default: bundled)")
    args = parser.parse_args()

    passages = load_sample().corpus  # list[Passage(id, text, metadata)]
    encoder = load_encoder(args.tiny, args.model)
    retriever = HybridRetriever.from_passages(passages, encoder, show_progress=True)
    print(f"indexed {len(retriever)} passages with {Path(str(encoder.name_or_path)).name}\n")

    for query in QUERIES:
        print(f"query: {query}")
        for mode in ("dense", "bm25", "hybrid"):
            hits = retriever.search(query, k=3, mode=mode)
            print(f"  {mode:<6} " + " | ".join(f"{h.id} ({h.score:.3f})" for h in hits))
        print()

    # Every hybrid hit says where it came from: its rank and score in each source.
    top = retriever.search(QUERIES[1], k=1)[0]
    print(f"top hybrid hit {top.id}: fused score {top.score:.4f}")
    for source, sh in top.sources.items():
        print(f"  {source:<6} rank {sh.rank}, score {sh.score:.3f}")
    print(f"  text: {top.text.splitlines()[0]}")

    # Save and load: written to a temp folder and renamed into place (never half-written).
    with tempfile.TemporaryDirectory() as tmp:
        folder = retriever.save(Path(tmp) / "faq-index")
        loaded = HybridRetriever.load(folder, encoder)  # encoder=None loads the saved model name
        same = [h.id for h in loaded.search(QUERIES[0], k=3)] == [
            h.id for h in retriever.search(QUERIES[0], k=3)
        ]
        print(f"\nsaved to {folder.name}/ and loaded back: same hits = {same}")


if __name__ == "__main__":
    main()
