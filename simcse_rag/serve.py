"""An HTTP JSON API over a :class:`~simcse_rag.index.hybrid.HybridRetriever` (Starlette).

Endpoints::

    POST   /search         {"query": str, "k": 10, "mode": "hybrid", "candidates": 100,
                            "filter": {...}}   (filter optional: simcse_rag.index.filters)
                           -> {"hits": [hit, ...]}   (hits as ``simcse-rag search --json``)
    POST   /search/batch   {"queries": [str, ...], "k", "mode", "candidates", "filter"}
                           -> {"results": [[hit, ...], ...]}
    GET    /health         -> {"status": "ok", "passages": n}
    GET    /info           -> the index manifest (model, counts, config)
    POST   /passages       {"passages": [{"id", "text", "metadata"}, ...]}   (--writable only)
                           -> {"added": n, "replaced": n, "passages": n}
    DELETE /passages       {"ids": [str, ...]}                               (--writable only)
                           -> {"deleted": n, "passages": n}

A mistake in a request gets a 400 (not JSON / not an object) or 422 (a bad field) response
``{"error": "<one-line message>"}``, never a traceback. Searches and updates run in Starlette's
thread pool, so the event loop keeps serving while a query is encoded; concurrent ``/search``
requests with the same settings are searched together in one ``search_batch`` call
(:mod:`simcse_rag.index.micro_batch`). The retriever's read/write lock keeps concurrent searches
and updates consistent, and each update is saved (atomically) before its response is sent.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simcse_rag.index.filters import parse_filter
from simcse_rag.index.hybrid import HybridRetriever
from simcse_rag.index.micro_batch import shared_batcher
from simcse_rag.schema import Passage

logger = logging.getLogger(__name__)

_SEARCH_FIELDS = frozenset({"k", "mode", "candidates", "filter"})


class RequestError(ValueError):
    """A client mistake: becomes a JSON ``{"error": message}`` response with ``status``."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def create_app(
    retriever: HybridRetriever,
    *,
    writable: bool = False,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Build the Starlette application serving ``retriever``.

    Args:
        retriever: The index to serve.
        writable: Enable ``POST`` / ``DELETE /passages``.
        path: Where updates are saved (required when ``writable``).

    Returns:
        A Starlette ASGI application (run it with uvicorn).

    Raises:
        ImportError: Starlette is not installed (the ``serve`` extra).
        ValueError: ``writable`` without ``path``.
    """
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.routing import Route
    except ImportError as exc:
        raise ImportError(
            "serving needs Starlette and uvicorn: pip install 'simcse-rag[serve]'."
        ) from exc
    if writable and path is None:
        raise ValueError("a writable server needs the index path to save updates to; pass path=.")
    api = _Api(retriever, writable=writable, path=Path(path) if path is not None else None)
    routes = [
        Route("/search", _endpoint(api.search), methods=["POST"]),
        Route("/search/batch", _endpoint(api.search_batch), methods=["POST"]),
        Route("/health", _endpoint(api.health), methods=["GET"]),
        Route("/info", _endpoint(api.info), methods=["GET"]),
        Route("/passages", _endpoint(api.add), methods=["POST"]),
        Route("/passages", _endpoint(api.delete), methods=["DELETE"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )


class _Api:
    """The endpoints' work, on plain Python values (run in the thread pool)."""

    def __init__(self, retriever: HybridRetriever, *, writable: bool, path: Path | None) -> None:
        self.retriever = retriever
        self.writable = writable
        self.path = path
        self._write_lock = threading.Lock()  # an update and its save, one at a time

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, _SEARCH_FIELDS | {"query"})
        query = _required(body, "query")
        if not isinstance(query, str):
            raise RequestError(f"'query' must be a string, got {_kind(query)}.")
        # Checked on the loop (cheap); searched in the thread pool with concurrent requests.
        hits = await shared_batcher(self.retriever).search(query, **_search_options(body))
        return {"hits": [h.to_dict() for h in hits]}

    def search_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, _SEARCH_FIELDS | {"queries"})
        queries = _string_list(body, "queries")
        results = self.retriever.search_batch(queries, **_search_options(body))
        return {"results": [[h.to_dict() for h in hits] for hits in results]}

    def health(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": "ok", "passages": len(self.retriever)}

    def info(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.retriever.manifest()

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_writable()
        _only(body, {"passages"})
        items = _required(body, "passages")
        if not isinstance(items, list):
            raise RequestError(f"'passages' must be a list of objects, got {_kind(items)}.")
        passages = [_passage(i, item) for i, item in enumerate(items)]
        with self._write_lock:
            new = sum(p.id not in self.retriever for p in passages)
            self.retriever.add(passages)
            self._save()
        return {"added": new, "replaced": len(passages) - new, "passages": len(self.retriever)}

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_writable()
        _only(body, {"ids"})
        ids = _string_list(body, "ids")
        with self._write_lock:
            deleted = self.retriever.delete(ids)
            if deleted:
                self._save()
        return {"deleted": deleted, "passages": len(self.retriever)}

    def _check_writable(self) -> None:
        if not self.writable:
            raise RequestError(
                "this index is served read-only; restart `simcse-rag serve` with --writable "
                "to add or delete passages.",
                status=403,
            )

    def _save(self) -> None:
        assert self.path is not None  # create_app requires it for a writable server
        self.retriever.save(self.path)


def _endpoint(work: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """Wrap ``work`` as a Starlette endpoint: parse the body, run ``work`` in the thread pool
    (or await it, when it is a coroutine function that sends its search there itself), turn
    client mistakes into JSON errors."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    async def endpoint(request: Any) -> Any:
        try:
            body = await _json_body(request) if request.method != "GET" else {}
            if inspect.iscoroutinefunction(work):
                result = await work(body)
            else:
                result = await run_in_threadpool(work, body)
        except RequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except (ValueError, TypeError) as exc:  # the retriever's argument checks
            return JSONResponse({"error": " ".join(str(exc).split())}, status_code=422)
        return JSONResponse(result)

    return endpoint


async def _json_body(request: Any) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RequestError(f"the request body is not valid JSON ({exc}).", status=400) from None
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {_kind(body)}.", 400)
    return body


def _only(body: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; "
            f"expected: {', '.join(sorted(allowed))}."
        )


def _required(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise RequestError(f"the request needs a {name!r} field.")
    return body[name]


def _string_list(body: dict[str, Any], name: str) -> list[str]:
    value = _required(body, name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{name!r} must be a list of strings, got {_kind(value)}.")
    return value


def _search_options(body: dict[str, Any]) -> dict[str, Any]:
    options = {"k": body.get("k", 10), "mode": body.get("mode", "hybrid")}
    options["candidates"] = body.get("candidates", 100)
    for name in ("k", "candidates"):
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise RequestError(f"{name!r} must be a positive integer, got {value!r}.")
    spec = body.get("filter")
    if spec is not None:
        if not isinstance(spec, dict):  # JSON text inside JSON is a client mistake, not a filter
            raise RequestError(f"'filter' must be a JSON object, got {_kind(spec)}.")
        try:  # checked here so no search starts on a filter that cannot be read
            options["filter"] = parse_filter(spec)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
    return options


def _passage(i: int, item: Any) -> Passage:
    if not isinstance(item, dict):
        raise RequestError(f"passages[{i}] must be an object, got {_kind(item)}.")
    unknown = sorted(set(item) - {"id", "text", "metadata"})
    if unknown:
        raise RequestError(f"passages[{i}]: unknown field(s) {', '.join(map(repr, unknown))}.")
    try:
        return Passage(item.get("id"), item.get("text"), item.get("metadata") or {})
    except (ValueError, TypeError) as exc:
        raise RequestError(f"passages[{i}]: {exc}") from None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


async def _http_error(request: Any, exc: Any) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


async def _server_error(request: Any, exc: Exception) -> Any:
    from starlette.responses import JSONResponse

    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal server error (see the server log)."}, 500)
