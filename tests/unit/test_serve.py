"""HTTP API: search / batch / health / info, read-only by default, updates saved, JSON errors."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
from starlette.testclient import TestClient  # noqa: E402

from simcse_rag.index.hybrid import HybridRetriever  # noqa: E402
from simcse_rag.schema import Passage  # noqa: E402
from simcse_rag.serve import create_app  # noqa: E402

TEXTS = {
    "d1": "My child has a fever and a cough.",
    "d2": "Dividend income and the tax rate.",
    "d3": "儿童发烧怎么办",
}


@pytest.fixture
def index(tiny_encoder: Any, tmp_path: Path) -> Path:
    passages = [Passage(i, t, {"n": n}) for n, (i, t) in enumerate(TEXTS.items())]
    HybridRetriever.from_passages(passages, tiny_encoder).save(tmp_path / "idx")
    return tmp_path / "idx"


@pytest.fixture
def client(index: Path) -> TestClient:
    app = create_app(HybridRetriever.load(index), writable=True, path=index)
    return TestClient(app, raise_server_exceptions=False)


def test_search_returns_the_cli_s_hit_form(client: TestClient, index: Path) -> None:
    reply = client.post("/search", json={"query": "fever cough", "k": 2})
    assert reply.status_code == 200
    expected = HybridRetriever.load(index).search("fever cough", k=2)
    assert reply.json() == {"hits": [h.to_dict() for h in expected]}
    bm25 = client.post("/search", json={"query": "发烧", "mode": "bm25", "candidates": 5})
    assert [h["id"] for h in bm25.json()["hits"]] == ["d3"]
    batch = client.post("/search/batch", json={"queries": ["tax", "", "发烧"], "mode": "bm25"})
    assert [[h["id"] for h in hits] for hits in batch.json()["results"]] == [["d2"], [], ["d3"]]


def test_health_and_info(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "passages": 3}
    info = client.get("/info").json()
    assert info["counts"]["passages"] == 3 and info["config"]["query_backend"] == "auto"
    assert set(info["model"]) == {"name_or_path", "fingerprint", "dim", "passage_backend"}


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "message"),
    [
        ("POST", "/search", b"{oops", 400, "not valid JSON"),
        ("POST", "/search", b"[1, 2]", 400, "must be a JSON object, got list"),
        ("POST", "/search", {"k": 3}, 422, "needs a 'query' field"),
        ("POST", "/search", {"query": 5}, 422, "'query' must be a string, got int"),
        ("POST", "/search", {"query": "x", "k": 0}, 422, "'k' must be a positive integer"),
        ("POST", "/search", {"query": "x", "k": True}, 422, "'k' must be a positive integer"),
        ("POST", "/search", {"query": "x", "candidates": "9"}, 422, "'candidates' must be"),
        ("POST", "/search", {"query": "x", "mode": "sparse"}, 422, "Unknown mode 'sparse'"),
        ("POST", "/search", {"query": "x", "filters": {}}, 422, "unknown field(s) 'filters'"),
        ("POST", "/search/batch", {"queries": "x"}, 422, "'queries' must be a list of strings"),
        ("POST", "/search/batch", {"queries": [1]}, 422, "'queries' must be a list of strings"),
        ("POST", "/passages", {"passages": [{"id": "", "text": "t"}]}, 422, "passages[0]:"),
        ("POST", "/passages", {"passages": [{"id": "a", "txt": "t"}]}, 422, "'txt'"),
        ("POST", "/passages", {"passages": [{"id": "a", "text": 1}]}, 422, "text must be a str"),
        ("POST", "/passages", {"passages": {"id": "a"}}, 422, "must be a list of objects"),
        ("DELETE", "/passages", {"ids": "d1"}, 422, "'ids' must be a list of strings"),
        ("GET", "/nowhere", None, 404, "Not Found"),
        ("GET", "/search", None, 405, "Method Not Allowed"),
    ],
)
def test_mistakes_are_one_line_json_errors(
    client: TestClient, method: str, url: str, body: Any, status: int, message: str
) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    reply = client.request(method, url, **({} if body is None else kwargs))
    assert reply.status_code == status
    error = reply.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error


def test_read_only_by_default(index: Path) -> None:
    client = TestClient(create_app(HybridRetriever.load(index)))
    for method in ("POST", "DELETE"):
        reply = client.request(method, "/passages", json={"ids": ["d1"]})
        assert reply.status_code == 403 and "--writable" in reply.json()["error"]
    assert len(HybridRetriever.load(index)) == 3
    with pytest.raises(ValueError, match="pass path="):
        create_app(HybridRetriever.load(index), writable=True)


def test_updates_are_saved(client: TestClient, index: Path) -> None:
    new = [
        {"id": "d4", "text": "insulin dose", "metadata": {"src": "x"}},
        {"id": "d1", "text": "a"},
    ]
    reply = client.post("/passages", json={"passages": new})
    assert reply.json() == {"added": 1, "replaced": 1, "passages": 4}
    saved = HybridRetriever.load(index)
    assert saved.get("d4").metadata == {"src": "x"} and saved.get("d1").text == "a"
    hits = client.post("/search", json={"query": "insulin", "mode": "bm25"}).json()["hits"]
    assert hits[0]["id"] == "d4"
    reply = client.request("DELETE", "/passages", json={"ids": ["d2", "nope"]})
    assert reply.json() == {"deleted": 1, "passages": 3}
    assert "d2" not in HybridRetriever.load(index)


def test_an_unexpected_failure_is_a_json_500(index: Path) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    retriever = HybridRetriever.load(index)
    retriever.search = broken  # type: ignore[method-assign]
    retriever.search_batch = broken  # type: ignore[method-assign]  # what /search batches into
    reply = TestClient(create_app(retriever), raise_server_exceptions=False).post(
        "/search", json={"query": "x"}
    )
    assert reply.status_code == 500
    assert reply.json() == {"error": "internal server error (see the server log)."}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(url: str, body: Any = None, method: str = "GET") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def live_server(index: Path) -> Iterator[str]:
    port = _free_port()
    app = create_app(HybridRetriever.load(index))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.enable_socket
def test_real_server_answers_concurrent_searches(live_server: str) -> None:
    assert _call(f"{live_server}/health") == (200, {"status": "ok", "passages": 3})
    results: list[tuple[int, Any]] = []

    def ask() -> None:
        results.append(_call(f"{live_server}/search", {"query": "tax rate", "k": 1}, "POST"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [(status, body["hits"][0]["id"]) for status, body in results] == [(200, "d2")] * 8
    status, body = _call(f"{live_server}/search", {"query": 1}, "POST")
    assert status == 422 and "'query' must be a string" in body["error"]


async def test_concurrent_search_requests_are_batched_and_each_gets_its_own(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import httpx

    from tests.integrations.event_loop import record_batches

    retriever = HybridRetriever.load(index)
    bodies = [
        {"query": "fever cough", "k": 2},
        {"query": "tax", "filter": {"n": 1}},
        {"query": "fever", "filter": {"n": {"$ne": 1}}, "mode": "bm25"},
        {"query": "child", "k": 1},
    ] * 4
    expected = [
        [
            h.to_dict()
            for h in retriever.search(b["query"], **{k: v for k, v in b.items() if k != "query"})
        ]
        for b in bodies
    ]
    sizes = record_batches(monkeypatch, retriever)
    transport = httpx.ASGITransport(app=create_app(retriever))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        replies = await asyncio.gather(*(http.post("/search", json=b) for b in bodies))
    assert [r.json()["hits"] for r in replies] == expected
    assert max(sizes) > 1 and sum(sizes) == len(bodies)
