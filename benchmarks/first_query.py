"""First query after ``HybridRetriever.load`` in a fresh process: import, load, first, second.

Builds one index (as ``benchmarks/async_search.py`` does: a real retrieval set, the bundled
all-MiniLM-L6-v2, passage vectors from ``--cache-dir``) with the code of this checkout, then
runs ``--trials`` fresh ``python -c`` processes. Each imports ``simcse_rag.index.hybrid``,
loads the index and runs two different queries, timing each step with ``perf_counter``; the
script prints every trial and the medians, and peak RSS.

Run (time it alone, or under the shared timing lock)::

    python benchmarks/first_query.py --cache-dir /root/simcse-cache/retrieval
    python benchmarks/first_query.py --index PATH      # an index already saved
    python benchmarks/first_query.py --tiny --trials 2 # smoke run, tiny random model

Goal (issue #18): first query <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "integrations")]

from async_search import build_index  # noqa: E402

#: What each fresh process runs (argv[1]: the index folder).
TRIAL = """
import json, resource, sys, time
t0 = time.perf_counter()
from simcse_rag.index.hybrid import HybridRetriever
t1 = time.perf_counter()
index = HybridRetriever.load(sys.argv[1])
t2 = time.perf_counter()
index.search("what are the symptoms of high blood pressure in children", k=10)
t3 = time.perf_counter()
index.search("how is type 2 diabetes treated", k=10)
t4 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ms = [round(1000 * (b - a), 1) for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4))]
print(json.dumps(dict(zip(["import", "load", "first", "second"], ms)) | {"rss_mb": rss}))
"""


def trial(folder: Path) -> dict[str, float]:
    """One fresh process: its step times (ms) and peak RSS (MB)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", TRIAL, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=None, help="an index already saved")
    parser.add_argument("--dataset", default="liveqa_medquad")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=None, help="EmbeddingCache folders")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="smoke run with a tiny random model")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="first-query-") as tmp:
        folder = args.index
        if folder is None:
            folder = Path(tmp) / "index"
            build_index(
                folder,
                dataset=args.dataset,
                data=args.data,
                cache_dir=args.cache_dir,
                tiny=args.tiny,
            )
        rows = [trial(folder) for _ in range(args.trials)]
    for row in rows:
        print("  ".join(f"{key} {value:7.1f}" for key, value in row.items()))
    medians = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    print("median " + "  ".join(f"{key} {value:.1f}" for key, value in medians.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
