"""Index build wall time and peak memory: ours vs LangChain FAISS and LlamaIndex, one run.

Every system indexes the same ``--n`` texts with the same model (the bundled all-MiniLM-L6-v2
unless ``--model``), each in its own child process so its peak RSS is its own (``os.wait4``'s
``ru_maxrss``, the kernel's high-water mark of the child's resident memory):

* ``ours``: ``HybridRetriever.from_passages(passages, SimCSEEncoder.from_pretrained(path))``
  with library defaults (passage backend ``auto``: int8 ONNX on CPU), then ``save`` (dense +
  BM25 + embedding cache + manifest; timed apart). Ours builds BM25 as well; the peers only a
  dense index.
* ``langchain``: ``FAISS.from_documents(docs, HuggingFaceEmbeddings(model_name=path))``
  (langchain-huggingface and langchain-community, their defaults: sentence-transformers batch
  32).
* ``llamaindex``: ``VectorStoreIndex(nodes, embed_model=HuggingFaceEmbedding(model_name=path))``
  (llama-index-embeddings-huggingface, its defaults: ``embed_batch_size`` 10; one ``TextNode``
  per text, so no node parser splits them and every system indexes the same units).

Texts (``corpus``): every distinct text of the shared data (the retrieval corpora's passages,
STS / NLI / question-matching sentences in English and Chinese, WikiText and OCNLI sentences:
about 222,000), shuffled with a fixed seed; the first ``--n`` are indexed, so 20,000 and
100,000 have the same mix. All distinct, so no system can skip one as a repeat. ``--texts
passages`` takes the retrieval corpora's passages only (LiveQA answers, TAT-QA tables and
paragraphs, zh_med_qa answers: longer texts).

Times per system: ``load`` (model load, after the module imports), ``build`` (texts in
memory -> searchable index: the number the ratios compare), ``save`` (ours only), and the
child's whole wall time.

Run (timings: alone, or under the shared machine's timing lock)::

    pip install -e ".[bench]"    # the peers' embedding packages (not in dev)
    python benchmarks/index_build.py --n 20000
    python benchmarks/index_build.py --n 100000 --systems ours
    python benchmarks/index_build.py --n 2000 --texts passages --systems ours langchain
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = ("ours", "langchain", "llamaindex")
#: Sentence-pair / triplet files of the shared data: (folder/file, text columns).
PAIR_FILES = (
    ("stsb_en/train.tsv", (0, 1)),
    ("stsb_en/dev.tsv", (0, 1)),
    ("stsb_zh/train.tsv", (0, 1)),
    ("stsb_zh/dev.tsv", (0, 1)),
    ("atec/train.tsv", (0, 1)),
    ("atec/dev.tsv", (0, 1)),
    ("bq/dev.tsv", (0, 1)),
    ("lcqmc/dev.tsv", (0, 1)),
    ("pawsx/dev.tsv", (0, 1)),
    ("nli_en/snli_pairs.tsv", (0, 1)),
    ("nli_zh/ocnli_triplets.tsv", (0, 1, 2)),
)


def _tsv_texts(path: Path, columns: tuple[int, ...]) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        next(fh)
        rows = [line.rstrip("\n").split("\t") for line in fh]
    return [row[c] for row in rows for c in columns if c < len(row)]


def corpus(data: Path, n: int, seed: int = 0, kind: str = "mixed") -> list[str]:
    """The first ``n`` of the shared data's distinct texts, shuffled with ``seed``: every kind
    of text (``mixed``) or the retrieval corpora's passages only (``passages``, longer)."""
    texts: list[str] = []
    for name in ("liveqa_medquad", "tatqa_fin_dev", "zh_med_qa"):
        with open(data / name / "corpus.jsonl", encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    if kind == "mixed":
        for name in ("unsup_en.txt", "unsup_zh.txt"):
            texts += (data / name).read_text(encoding="utf-8").splitlines()
        for name, columns in PAIR_FILES:
            texts += _tsv_texts(data / name, columns)
    pool = [t for t in dict.fromkeys(texts) if t.strip()]
    random.Random(seed).shuffle(pool)
    if n > len(pool):
        raise SystemExit(f"--n {n} exceeds the {len(pool)} distinct texts of {data}.")
    return pool[:n]


# ---------------------------------------------------------------------- one system (child)
def build_ours(texts: list[str], path: str, times: dict[str, float]) -> None:
    from simcse_rag import Passage, SimCSEEncoder
    from simcse_rag.index.hybrid import HybridRetriever

    start = time.perf_counter()
    encoder = SimCSEEncoder.from_pretrained(path)
    passages = [Passage(id=str(i), text=t) for i, t in enumerate(texts)]
    times["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    retriever = HybridRetriever.from_passages(passages, encoder)
    times["build_s"] = time.perf_counter() - start
    times["passage_backend"] = retriever.passage_backend  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        retriever.save(Path(tmp) / "index")
        times["save_s"] = time.perf_counter() - start
    times["indexed"] = len(retriever)


def build_langchain(texts: list[str], path: str, times: dict[str, float]) -> None:
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings

    start = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=path)
    docs = [Document(page_content=t, id=str(i)) for i, t in enumerate(texts)]
    times["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    store = FAISS.from_documents(docs, embeddings)
    times["build_s"] = time.perf_counter() - start
    times["indexed"] = store.index.ntotal


def build_llamaindex(texts: list[str], path: str, times: dict[str, float]) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    start = time.perf_counter()
    embed_model = HuggingFaceEmbedding(model_name=path)
    nodes = [TextNode(id_=str(i), text=t) for i, t in enumerate(texts)]
    times["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    times["build_s"] = time.perf_counter() - start
    times["indexed"] = len(index.index_struct.nodes_dict)


def child(args: argparse.Namespace) -> None:
    texts = corpus(args.data, args.n, args.seed, args.texts)
    times: dict[str, float] = {}
    builders = {"ours": build_ours, "langchain": build_langchain, "llamaindex": build_llamaindex}
    builders[args.child](texts, args.model_path, times)
    args.result.write_text(json.dumps(times))


# ---------------------------------------------------------------------- the run (parent)
def run_child(system: str, args: argparse.Namespace, path: str, tmp: Path) -> dict:
    """Run one system in a child process; its times, wall time and peak RSS (MB)."""
    result = tmp / f"{system}.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        system,
        "--n",
        str(args.n),
        "--seed",
        str(args.seed),
        "--texts",
        args.texts,
        "--data",
        str(args.data),
        "--model-path",
        path,
        "--result",
        str(result),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{system} failed with exit code {proc.returncode}")
    row = json.loads(result.read_text())
    row.update(system=system, wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024)
    return row


def text_stats(texts: list[str], path: str) -> dict[str, float]:
    """Token counts of ``texts`` under the model's tokenizer (mean, share truncated at 256)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    lengths = [
        len(ids)
        for start in range(0, len(texts), 4096)
        for ids in tokenizer(texts[start : start + 4096], truncation=False)["input_ids"]
    ]
    return {
        "texts": len(texts),
        "tokens_mean": sum(lengths) / len(lengths),
        "truncated_share": sum(n > 256 for n in lengths) / len(lengths),
    }


def table(rows: list[dict]) -> str:
    """Markdown: one row per system, build-time ratios against each peer of the same run."""
    by = {r["system"]: r for r in rows}
    peers = [s for s in ("langchain", "llamaindex") if s in by]
    head = "| system | load s | build s | save s | wall s | peak RSS MB |"
    head += "".join(f" ours vs {p} (build) |" for p in peers)
    lines = [head, "|---" + "|---:" * (5 + len(peers)) + "|"]
    for r in rows:
        line = (
            f"| {r['system']} | {r['load_s']:.1f} | {r['build_s']:.1f} | "
            f"{r.get('save_s', 0.0):.1f} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
        if r["system"] == "ours":
            line += "".join(f" {by[p]['build_s'] / r['build_s']:.2f}x |" for p in peers)
        else:
            line += " - |" * len(peers)
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", default=None, help="model folder (default: bundled MiniLM)")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--texts",
        choices=("mixed", "passages"),
        default="mixed",
        help="every kind of shared text, or the retrieval passages only (longer)",
    )
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    sys.path.insert(0, str(REPO))
    from simcse_rag.model_source import resolve_model_path

    path = resolve_model_path(args.model)
    texts = corpus(args.data, args.n, args.seed, args.texts)
    print(json.dumps(text_stats(texts, path)), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for system in args.systems:
            rows.append(run_child(system, args, path, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
