"""HTTP API filters: ``"filter"`` on /search and /search/batch; a bad filter is a 422 JSON error."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from simcse_rag.index.hybrid import HybridConfig, HybridRetriever  # noqa: E402
from simcse_rag.schema import Passage  # noqa: E402
from simcse_rag.serve import create_app  # noqa: E402

PASSAGES = [
    Passage("d1", "My child has a fever and a cough.", {"tenant": "a", "year": 2021}),
    Passage("d2", "A fever at night in a child.", {"tenant": "b", "year": 2022}),
    Passage("d3", "Fever medicine for a cough.", {"year": 2023}),
]


@pytest.fixture
def client(tiny_encoder: Any) -> TestClient:
    config = HybridConfig(query_backend="torch")
    retriever = HybridRetriever.from_passages(PASSAGES, tiny_encoder, config=config)
    return TestClient(create_app(retriever), raise_server_exceptions=False)


def test_search_and_batch_apply_the_filter(client: TestClient) -> None:
    reply = client.post("/search", json={"query": "fever", "k": 5, "filter": {"tenant": "b"}})
    assert reply.status_code == 200
    assert [h["id"] for h in reply.json()["hits"]] == ["d2"]
    body = {"queries": ["fever", "cough"], "filter": {"year": {"$lte": 2022}}}
    results = client.post("/search/batch", json=body).json()["results"]
    assert [sorted(h["id"] for h in hits) for hits in results] == [["d1", "d2"], ["d1", "d2"]]
    unfiltered = client.post("/search", json={"query": "fever", "filter": None}).json()["hits"]
    assert len(unfiltered) == 3


@pytest.mark.parametrize(
    ("spec", "part"),
    [
        ({"year": {"$gt": "abc"}}, 'filter["year"]["$gt"]'),
        ({"year": {"$like": 1}}, "unknown operator"),
        ('{"tenant": "a"}', "'filter' must be a JSON object"),
        ({}, "empty filter"),
    ],
)
def test_bad_filter_is_a_422_with_one_line(client: TestClient, spec: Any, part: str) -> None:
    for path, body in (("/search", {"query": "fever"}), ("/search/batch", {"queries": ["x"]})):
        reply = client.post(path, json={**body, "filter": spec})
        assert reply.status_code == 422
        error = reply.json()["error"]
        assert part in error and "\n" not in error
        assert set(reply.json()) == {"error"}  # nothing returned
