"""``simcse-rag search DIR "query"``: query a saved hybrid index."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from simcse_rag.cli._common import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``search`` command."""
    parser = subparsers.add_parser(
        "search",
        help="search an index built with `simcse-rag index build`",
        description="Search a saved index. Hybrid mode fuses dense and BM25 rankings with RRF; "
        "each hit shows its rank and score in each source.",
    )
    parser.add_argument("index", type=Path, help="index folder")
    parser.add_argument("query", help="query text")
    parser.add_argument("-k", type=positive_int, default=10, help="hits to return (default 10)")
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    parser.add_argument(
        "--candidates", type=positive_int, default=100, help="hits per source before fusion"
    )
    parser.add_argument(
        "--filter",
        default=None,
        metavar="JSON",
        help='metadata filter, e.g. \'{"lang": "en", "year": {"$gte": 2020}}\' '
        "(operators $eq $ne $in $nin $gt $gte $lt $lte $exists $and $or; "
        "a missing key never matches)",
    )
    parser.add_argument("--json", action="store_true", help="print hits as a JSON list")
    parser.add_argument(
        "--model", default=None, help="model folder (default: the one in the manifest)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the index, run the query, print the hits."""
    from simcse_rag.cli._common import load_encoder
    from simcse_rag.index.filters import parse_filter
    from simcse_rag.index.hybrid import HybridRetriever

    # Checked before the index and model load: a typo in the filter fails in milliseconds.
    flt = None if args.filter is None else parse_filter(args.filter)
    HybridRetriever.read_manifest(args.index)
    encoder = load_encoder(args) if args.model or args.device else None
    retriever = HybridRetriever.load(args.index, encoder)
    hits = retriever.search(
        args.query, k=args.k, mode=args.mode, candidates=args.candidates, filter=flt
    )
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no hits")
    for hit in hits:
        where = " ".join(f"{name}#{s.rank}({s.score:.3f})" for name, s in hit.sources.items())
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 100 else snippet[:97] + "..."
        print(f"{hit.rank:>3}  {hit.score:.4f}  {hit.id}  [{where}]  {snippet}")
    return 0
