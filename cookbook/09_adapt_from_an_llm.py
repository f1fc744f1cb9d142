"""09 - Adapt the retriever with questions an LLM writes about your corpus (no labels needed).

Shows: ``adapt(corpus, encoder, out, generator=llm)``. The LLM is asked for N questions about
each passage of a seeded sample (in the passage's language, with an optional ``--domain``
hint); replies are cached in a JSONL file, so an interrupted run resumes without asking again;
a question is kept only if its own passage comes back within the top k for a model first
trained on all the generated questions (the round-trip filter); the kept pairs are mined,
trained on (from the base model again) and reported like labelled ones.
Here the result is measured on held-out *real* TAT-QA questions.

The generator is any of: an OpenAI-compatible server (``--generator-url``/``--generator-model``,
e.g. Ollama; the key comes from ``OPENAI_API_KEY``), a LangChain chat model or LLM, a LlamaIndex
LLM, or a plain function ``prompt -> str``. Offline (the default) a stand-in function plays the
LLM: it answers each prompt with the real training questions of that passage, or nothing for a
passage without one. That is an upper bound on what a generator can give, not an LLM: the
quality of LLM-written questions was not measured offline.

Data: ``--data`` (default ``../shared/data``) holding ``tatqa_fin_dev`` in BEIR layout. With
``--tiny`` and no data, the bundled FAQ stands in.

Time: with the stand-in two trainings of 60 steps of 32, the round trip's and the final one
(one took about 14 CPU-minutes, 35 min wall on a heavily shared 2-core machine; the pair was not
timed); with a real LLM add one request per sampled passage (``--passages``); about 30 s with
``--tiny``.

Run::

    python cookbook/09_adapt_from_an_llm.py --tiny
    OPENAI_API_KEY=ollama python cookbook/09_adapt_from_an_llm.py \\
        --generator-url http://localhost:11434/v1 --generator-model qwen2.5:7b \\
        --passages 300 --cache runs/tatqa-questions.jsonl
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _shared import DEFAULT_DATA, beir_slice, dataset_folder, load_encoder

from simcse_rag.adapt import AdaptConfig, GenerationConfig, adapt
from simcse_rag.adapt_report import markdown_table, question_lines
from simcse_rag.datasets import BeirData, QuerySet
from simcse_rag.demo import load_sample
from simcse_rag.generation import OpenAIChatClient
from simcse_rag.pairs import split_queries


def load(args: argparse.Namespace) -> tuple[BeirData, str]:
    folder = dataset_folder(args.data, "tatqa_fin_dev")
    if folder is not None:
        if args.tiny:
            return beir_slice(folder, "dev", corpus_size=200, max_queries=60), "TAT-QA (slice)"
        return beir_slice(folder, "dev"), "TAT-QA dev"
    if not args.tiny:
        raise SystemExit(f"no tatqa_fin_dev under {args.data}; pass --data DIR (or --tiny)")
    print(f"{args.data / 'tatqa_fin_dev'} not found: using the bundled FAQ")
    sample = load_sample()
    return BeirData(sample.corpus, sample.queries, sample.qrels), "bundled FAQ"


def stand_in(data: BeirData, train_ids: list[str]):  # noqa: ANN201 - returns a function
    """A stand-in LLM: each passage's real training questions, one per line ("" if none)."""
    questions: dict[str, list[str]] = {}
    texts = {p.id: " ".join(p.text.split()) for p in data.corpus}
    for q in train_ids:
        for doc, grade in data.qrels[q].items():
            if grade >= 1 and doc in texts:
                questions.setdefault(texts[doc], []).append(data.queries[q])

    def complete(prompt: str) -> str:
        # The prompt ends with the passage, whitespace collapsed, on its own line.
        return "\n".join(questions.get(prompt.rsplit("\n", 1)[-1], []))

    return complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="adapted model folder")
    parser.add_argument("--model", default=None, help="base model (default: bundled)")
    parser.add_argument("--generator-url", default=None, help="OpenAI-compatible API root")
    parser.add_argument("--generator-model", default=None, help="model name on that server")
    parser.add_argument("--passages", type=int, default=0, help="passages to ask (0 = all)")
    parser.add_argument("--domain", default="corporate finance reports")
    parser.add_argument(
        "--cache", type=Path, default=None, help="JSONL of the LLM's replies (resume from it)"
    )
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--tiny", action="store_true", help="tiny model, few steps (CI)")
    args = parser.parse_args()

    data, name = load(args)
    train_ids, eval_ids = split_queries(data.qrels, eval_fraction=0.5, seed=0)
    held = QuerySet(
        {q: data.queries[q] for q in eval_ids},
        {q: data.qrels[q] for q in eval_ids},
        f"{name}: {len(eval_ids)} held-out real questions",
    )
    if args.generator_url:
        generator = OpenAIChatClient(args.generator_url, args.generator_model or "")
        print(f"generator: {generator!r}")
    else:
        generator = stand_in(data, train_ids)
        print("generator: stand-in returning the real training questions (not an LLM)")
    per_passage = 3
    passages = args.passages or len(data.corpus)
    with tempfile.TemporaryDirectory(prefix="llm-adapt-") as scratch:
        result = adapt(
            data.corpus,
            load_encoder(args.tiny, args.model),
            args.out or Path(scratch) / "adapted",
            config=AdaptConfig(
                max_pairs=per_passage * passages,
                max_steps=2 if args.tiny else args.max_steps,
                batch_size=8 if args.tiny else 32,
                ks=(10,),
            ),
            generator=generator,
            generation=GenerationConfig(
                per_passage=per_passage,
                domain=args.domain,
                cache_path=args.cache or Path(scratch) / "questions.jsonl",
            ),
            eval_set=held,
            overwrite=args.out is not None,
            show_progress=True,
            on_stage=lambda message: print(f"[adapt] {message}", flush=True),
        )
    report = result.report
    print(f"\ntrained on {report['training']['pairs']} pairs: {report['training']['source']}")
    print("\n".join(question_lines(report["training"])))
    print(f"evaluated on {report['held_out']['source']}\n")
    print(markdown_table(report["before"], report["after"]))
    if args.tiny:
        print("[--tiny: random weights, the numbers mean nothing]")


if __name__ == "__main__":
    main()
