"""What the question generator's own machinery costs, and how it sees real corpora (no LLM).

No LLM runs offline, so this measures everything around one: on the passages of BEIR-layout
sets (``--data``, default ``/work/shared/data``) it reports

* ``zh``: the share of passages that get the Chinese instruction (language detection);
* ``prompt_chars``: median prompt length;
* ``parse_ms``: CPU milliseconds to parse one reply (three questions, copy checks against the
  prompt), median over passages;
* ``run_s`` / ``resume_s``: wall seconds of :func:`generate_pairs` over every passage against a
  local OpenAI-format server that answers at once (``--concurrency`` requests in flight), then
  of the same call again answered wholly from the JSONL cache; ``per_request_ms`` is the first
  divided by the number of passages: the overhead that adds to each LLM call.

Run from the repository root::

    python benchmarks/generation.py --datasets tatqa_fin_dev zh_med_qa
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simcse_rag.corpus import read_corpus  # noqa: E402
from simcse_rag.generation import OpenAIChatClient, generate_pairs  # noqa: E402
from simcse_rag.generation.prompts import build_prompt, parse_questions, passage_language  # noqa: E402
from tests.unit.generation.fake_openai import FakeOpenAIServer, questions_for  # noqa: E402


def measure(corpus_file: Path, concurrency: int, limit: int) -> dict[str, float]:
    passages = read_corpus(corpus_file)[: limit or None]
    prompts = [build_prompt(p.text, 3) for p in passages]
    zh = sum(passage_language(p.text) == "zh" for p in passages) / len(passages)
    parse_ms = []
    for prompt in prompts:
        reply = questions_for(prompt)
        t0 = time.process_time()
        parse_questions(reply, prompt=prompt, n=3)
        parse_ms.append(1000 * (time.process_time() - t0))
    with FakeOpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
        client = OpenAIChatClient(server.url, "bench", max_connections=concurrency)
        cache = Path(tmp) / "q.jsonl"
        t0 = time.perf_counter()
        first = generate_pairs(passages, client, concurrency=concurrency, cache_path=cache)
        run_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = generate_pairs(passages, client, concurrency=concurrency, cache_path=cache)
        resume_s = time.perf_counter() - t0
    assert again.counts["requests"] == 0 and len(again.pairs) == len(first.pairs)
    return {
        "passages": len(passages),
        "zh": round(zh, 4),
        "prompt_chars": statistics.median(len(p) for p in prompts),
        "parse_ms": round(statistics.median(parse_ms), 3),
        "questions_kept": len(first.pairs),
        "run_s": round(run_s, 2),
        "per_request_ms": round(1000 * run_s / len(passages), 2),
        "resume_s": round(resume_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--datasets", nargs="+", default=["tatqa_fin_dev", "zh_med_qa"])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--limit", type=int, default=0, help="first N passages (0 = all)")
    args = parser.parse_args()
    for name in args.datasets:
        result = measure(args.data / name / "corpus.jsonl", args.concurrency, args.limit)
        print(json.dumps({"dataset": name, **result}), flush=True)


if __name__ == "__main__":
    main()
