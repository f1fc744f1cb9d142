"""04 - Adapt the retriever to a medical corpus without labels (pseudo-queries + hard negatives).

Shows: :func:`simcse_rag.adapt.adapt` on MedQuAD answers (titles are consumer-health questions,
so the passage titles serve as pseudo-queries), mining hard negatives with the current model and
BM25, fine-tuning, and nDCG@10 / Recall@10 / MRR@10 before and after on the TREC LiveQA-Med
consumer questions, which are never used for training. The adapted model folder loads in
every simcse-rag command, ``SentenceTransformer(path)``, LangChain and LlamaIndex.

Data: ``--data`` (default ``../shared/data``) holding ``liveqa_medquad`` in BEIR layout; a slice
of ``--corpus-size`` passages (every judged one plus random others) keeps it to CPU minutes.
With ``--tiny`` and no data, the bundled children's-health FAQ is used instead.

Time: about 10 min on 2 CPU cores with all-MiniLM-L6-v2 (3,000 passages, 60 steps of 32);
about 30 s with ``--tiny``, which only checks that the recipe runs: its model has random weights
and trains 2 steps, so its numbers mean nothing.

Run::

    python cookbook/04_adapt_medical.py --out runs/medical-adapted
    python cookbook/04_adapt_medical.py --tiny
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _shared import DEFAULT_DATA, beir_slice, dataset_folder, load_encoder

from simcse_rag.adapt import AdaptConfig, adapt
from simcse_rag.adapt_report import markdown_table
from simcse_rag.datasets import QuerySet
from simcse_rag.demo import load_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="adapted model folder")
    parser.add_argument("--model", default=None, help="base model (default: bundled)")
    parser.add_argument("--corpus-size", type=int, default=3000)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="tiny random model, few steps (CI; the numbers mean nothing)",
    )
    args = parser.parse_args()

    folder = dataset_folder(args.data, "liveqa_medquad")
    if folder is not None:
        size = 300 if args.tiny else args.corpus_size
        data = beir_slice(folder, "test", corpus_size=size, max_queries=8 if args.tiny else 0)
        corpus, queries, qrels = data.corpus, data.queries, data.qrels
        source = "LiveQA-Med consumer questions (never trained on)"
    elif args.tiny:
        print(f"{args.data / 'liveqa_medquad'} not found: using the bundled FAQ")
        sample = load_sample()
        corpus, queries, qrels = sample.corpus, sample.queries, sample.qrels
        source = "bundled FAQ queries (never trained on)"
    else:
        raise SystemExit(f"no liveqa_medquad under {args.data}; pass --data DIR (or --tiny)")
    print(f"corpus: {len(corpus)} passages; evaluation: {len(qrels)} judged queries")

    config = AdaptConfig(
        strategy="title",  # MedQuAD titles are questions: natural pseudo-queries
        max_steps=2 if args.tiny else args.max_steps,
        batch_size=8 if args.tiny else args.batch_size,
        encode_max_length=128,  # faster corpus encoding on CPU for mining and evaluation
        ks=(10,),
    )
    # Without --out the adapted model (about the size of the base model) goes to a temporary
    # folder that is removed at the end, so repeated runs do not fill the temp directory.
    with tempfile.TemporaryDirectory(prefix="medical-") as scratch:
        out = args.out or Path(scratch) / "adapted"
        result = adapt(
            corpus,
            load_encoder(args.tiny, args.model),
            out,
            config=config,
            eval_set=QuerySet(queries, qrels, source),
            overwrite=args.out is not None,
            show_progress=True,
            on_stage=lambda message: print(f"[adapt] {message}", flush=True),
        )
    report = result.report
    print(f"\ntrained on {report['training']['pairs']} pairs from {report['training']['source']}")
    print(f"evaluated on {report['held_out']['queries']} {source}\n")
    if args.tiny:
        print("[--tiny: random weights, the numbers mean nothing]")
    print(markdown_table(report["before"], report["after"]))
    if args.out is not None:
        print(f"\nadapted model: {args.out} (report.md inside)")
    else:
        print("\nthe adapted model was written to a temporary folder, now removed; pass --out DIR")


if __name__ == "__main__":
    main()
