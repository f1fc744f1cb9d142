"""Search latency over HTTP (`simcse-rag serve`'s app) vs the in-process call, same run.

Builds a hybrid index over the bundled children's-health FAQ (``simcse_rag.demo.load_sample``),
serves it with uvicorn on a free 127.0.0.1 port in a background thread, then times each sample
query ``--repeats`` times both ways, alternating: ``retriever.search`` in-process and
``POST /search`` over one keep-alive HTTP connection. Prints p50 / p95 per request (ms) and the
HTTP overhead.

Run (the lead times things alone)::

    python benchmarks/serve.py                       # all-MiniLM-L6-v2, onnx-int8 queries
    python benchmarks/serve.py --tiny --repeats 1    # smoke run with a tiny random model
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def build(tiny: bool, folder: Path):  # noqa: ANN201
    """The sample index, saved to ``folder`` and loaded back as `simcse-rag serve` does."""
    from simcse_rag.demo import load_sample
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.index.hybrid import HybridRetriever

    if tiny:
        from simcse_rag.testing import build_tiny_bert

        model = build_tiny_bert(folder / "tiny-model")
        encoder = SimCSEEncoder.from_pretrained(model, device="cpu")
    else:
        encoder = SimCSEEncoder.from_pretrained(device="cpu")
    sample = load_sample()
    HybridRetriever.from_passages(sample.corpus, encoder).save(folder / "index")
    return HybridRetriever.load(folder / "index"), list(sample.queries.values())


def serve(retriever) -> tuple[int, object]:  # noqa: ANN001
    """Start the app on a free port; returns the port and the uvicorn server."""
    import uvicorn

    from simcse_rag.serve import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(retriever), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return port, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model (smoke run)")
    parser.add_argument("--repeats", type=int, default=5, help="passes over the queries")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="simcse-rag-serve-bench-") as tmp:
        retriever, queries = build(args.tiny, Path(tmp))
        port, server = serve(retriever)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}
        local: list[float] = []
        remote: list[float] = []
        for query in queries[:2]:  # warm up both paths
            retriever.search(query, k=args.k, mode=args.mode)
        for _ in range(args.repeats):
            for query in queries:
                start = time.perf_counter()
                retriever.search(query, k=args.k, mode=args.mode)
                local.append(time.perf_counter() - start)
                body = json.dumps({"query": query, "k": args.k, "mode": args.mode})
                start = time.perf_counter()
                connection.request("POST", "/search", body=body, headers=headers)
                reply = connection.getresponse()
                payload = reply.read()
                remote.append(time.perf_counter() - start)
                if reply.status != 200:
                    raise SystemExit(f"HTTP {reply.status}: {payload[:200]!r}")
        connection.close()
        server.should_exit = True
    print(f"{len(queries)} queries x {args.repeats}, k={args.k}, mode={args.mode}")
    print("| path | p50 ms | p95 ms | mean ms |")
    print("|---|---|---|---|")
    for name, values in (("in-process retriever.search", local), ("HTTP POST /search", remote)):
        ms = [v * 1000 for v in values]
        print(
            f"| {name} | {percentile(ms, 0.5):.2f} | {percentile(ms, 0.95):.2f} | "
            f"{statistics.fmean(ms):.2f} |"
        )
    overhead = (percentile(remote, 0.5) - percentile(local, 0.5)) * 1000
    print(f"HTTP overhead at p50: {overhead:.2f} ms")


if __name__ == "__main__":
    main()
