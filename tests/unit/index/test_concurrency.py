"""HybridRetriever under threads: concurrent searches, and searches racing an add.

* 8 threads x 200 queries give exactly the sequential results (ids, ranks, scores, sources).
* While another thread adds / upserts (or deletes) passages, every search sees either the whole
  old state or the whole new state (its hits equal one of the two sequential answers), never a
  mix.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from simcse_rag.index.hybrid import HybridRetriever
from simcse_rag.schema import Passage

WORDS = [
    "fever",
    "child",
    "cough",
    "rash",
    "vaccine",
    "insulin",
    "tax",
    "bank",
    "loan",
    "dividend",
    "revenue",
    "asthma",
    "doctor",
    "儿童",
    "发烧",
    "咳嗽",
    "银行",
    "贷款",
    "税",
    "sleep",
    "baby",
    "water",
    "blood",
    "heart",
]


def corpus(n: int, seed: int, prefix: str = "p") -> list[Passage]:
    rng = random.Random(seed)
    return [
        Passage(f"{prefix}{i}", " ".join(rng.choices(WORDS, k=rng.randint(3, 12))), {"i": i})
        for i in range(n)
    ]


def queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 4))) for _ in range(n)]


def key(hits) -> list[tuple]:
    return [
        (h.id, h.rank, round(h.score, 6), tuple(sorted((n, s.rank) for n, s in h.sources.items())))
        for h in hits
    ]


@pytest.fixture(scope="module")
def retriever(tiny_encoder) -> HybridRetriever:
    return HybridRetriever.from_passages(corpus(300, 0), tiny_encoder)


@pytest.mark.parametrize(
    "mode",
    [
        "hybrid",
        pytest.param("dense", marks=pytest.mark.slow),
        pytest.param("bm25", marks=pytest.mark.slow),
    ],
)
def test_eight_threads_match_sequential(retriever, mode):
    qs = queries(200, 1)
    expected = [key(retriever.search(q, k=10, mode=mode)) for q in qs]
    barrier = threading.Barrier(8)

    def worker(t: int) -> list[list[tuple]]:
        barrier.wait()
        order = list(range(len(qs)))
        random.Random(t).shuffle(order)  # threads hit different queries at the same moment
        out = [None] * len(qs)
        for i in order:
            out[i] = key(retriever.search(qs[i], k=10, mode=mode))
        return out

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    for got in results:
        assert got == expected


def slow(method, seconds: float = 0.3):
    """Wrap an index method so the update takes a while: it widens the window in which a
    search could observe one index updated and the other not (fault injection, not a mock:
    the real method still runs)."""

    def wrapper(*args, **kwargs):
        time.sleep(seconds)
        return method(*args, **kwargs)

    return wrapper


def test_searches_during_add_see_old_or_new_state(tiny_encoder, monkeypatch):
    base = corpus(200, 2)
    update = corpus(60, 3, prefix="new") + [
        Passage(p.id, p.text + " fever fever", p.metadata)
        for p in base[:40]  # upserts
    ]
    qs = queries(40, 4)

    old = HybridRetriever.from_passages(base, tiny_encoder)
    new = HybridRetriever.from_passages(base, tiny_encoder)
    new.add(update)
    want_old = [key(old.search(q, k=10)) for q in qs]
    want_new = [key(new.search(q, k=10)) for q in qs]
    assert want_old != want_new  # the update really changes answers

    live = HybridRetriever.from_passages(base, tiny_encoder)
    monkeypatch.setattr(live.bm25_index, "add", slow(live.bm25_index.add))
    stop = threading.Event()
    seen = {"old": 0, "new": 0}
    errors: list[str] = []

    def searcher(t: int) -> None:
        rng = random.Random(t)
        while not stop.is_set():
            i = rng.randrange(len(qs))
            got = key(live.search(qs[i], k=10))
            if got == want_old[i] and got != want_new[i]:
                seen["old"] += 1
            elif got == want_new[i] and got != want_old[i]:
                seen["new"] += 1
            elif got != want_old[i]:
                errors.append(f"query {qs[i]!r}: a mixed state {got[:3]}")

    def guarded(t: int) -> None:
        try:
            searcher(t)
        except Exception as exc:  # noqa: BLE001 - a crashing search is a failure to report
            errors.append(f"search raised {exc!r}")

    threads = [threading.Thread(target=guarded, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    try:
        live.add(update)
        time.sleep(0.2)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert errors == []
    assert [key(live.search(q, k=10)) for q in qs] == want_new
    assert seen["old"] + seen["new"] > 0


def test_delete_is_atomic_for_readers(tiny_encoder, monkeypatch):
    base = corpus(150, 5)
    gone = [p.id for p in base[::3]]
    qs = queries(30, 7)
    old = HybridRetriever.from_passages(base, tiny_encoder)
    new = HybridRetriever.from_passages(base, tiny_encoder)
    new.delete(gone)
    want = [(key(old.search(q, k=5)), key(new.search(q, k=5))) for q in qs]
    live = HybridRetriever.from_passages(base, tiny_encoder)
    monkeypatch.setattr(live.bm25_index, "delete", slow(live.bm25_index.delete))
    stop = threading.Event()
    bad: list[str] = []

    def searcher() -> None:
        try:
            while not stop.is_set():
                for i, q in enumerate(qs):
                    if key(live.search(q, k=5)) not in want[i]:
                        bad.append(q)
        except Exception as exc:  # noqa: BLE001 - a crashing search is a failure to report
            bad.append(repr(exc))

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.05)
    live.delete(gone)
    time.sleep(0.05)
    stop.set()
    for th in threads:
        th.join()
    assert bad == []
