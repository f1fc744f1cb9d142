"""The CPU-budget route of the adaptation benchmark (``benchmarks/adapt.py --timing-only``):
adapt 20k passages with the library defaults and report the wall time of each step."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapt_data import adapt_config, load_dataset  # noqa: E402

from simcse_rag.adapt import AdaptConfig, adapt  # noqa: E402
from simcse_rag.corpus import read_corpus  # noqa: E402
from simcse_rag.encoder import SimCSEEncoder  # noqa: E402


def timing_only(args: argparse.Namespace) -> None:
    """Adapt with the library defaults on ``--timing-passages`` passages and report the time.

    LiveQA has 17,315 passages; to time the issue's 20k budget, passages of TAT-QA and
    zh_med_qa are appended (ids prefixed) until the count is reached. ``--timing-route
    queries`` gives ``--timing-queries`` bare questions of the training halves (LiveQA's, then
    TAT-QA's) instead of pseudo-queries. Held-out evaluation uses LiveQA's held-out queries, as
    in the quality runs. No embedding cache: both encodings are timed.
    """
    ds = load_dataset(args.data, "liveqa_medquad", 0, args.seed)
    corpus = list(ds["corpus"])
    for extra in ("tatqa_fin_dev", "zh_med_qa"):
        if len(corpus) >= args.timing_passages:
            break
        for p in read_corpus(args.data / extra / "corpus.jsonl"):
            if len(corpus) >= args.timing_passages:
                break
            corpus.append(type(p)(f"{extra}:{p.id}", p.text, p.metadata))
    corpus = corpus[: args.timing_passages]
    sources: dict = {}
    if args.timing_route == "queries":
        tat = load_dataset(args.data, "tatqa_fin_dev", 0, args.seed)
        questions = list(ds["train_queries"].values()) + list(tat["train_queries"].values())
        sources["queries"] = questions[: args.timing_queries]
    # The library's token limit for corpus encoding (adapt_config keeps the model's when
    # --encode-max-length is not given, as the quality runs always have).
    config = adapt_config(args)
    if args.encode_max_length is None:
        config = dataclasses.replace(config, encode_max_length=AdaptConfig.encode_max_length)
    print(f"# corpus encoded at {config.encode_max_length} tokens", flush=True)
    encoder = SimCSEEncoder.from_pretrained(args.model, device="cpu")
    t0 = time.perf_counter()
    result = adapt(
        corpus,
        encoder,
        args.out / f"timing-{args.timing_route}",
        config=config,
        **sources,
        eval_set=ds["eval_set"],
        overwrite=True,
        show_progress=args.progress,
    )
    seconds = time.perf_counter() - t0
    training = result.report["training"]
    print(json.dumps(result.report["timings"], indent=1))
    for r in result.report["rounds"]:
        print(
            f"round: mine {r['mining_s']} s, train {r['train']['steps']} steps "
            f"{r['train']['seconds']} s, re-encode {r['encode_s']} s"
        )
    print(f"pairs {training['pairs']}; filters {training.get('question_filters')}")
    given = f" from {len(sources['queries'])} questions" if sources else ""
    print(f"{args.timing_route} adapt of {len(corpus)} passages{given}: {seconds / 60:.1f} min")
    print(f"load avg after: {os.getloadavg()}")
