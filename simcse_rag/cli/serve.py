"""``simcse-rag serve DIR``: an HTTP JSON API over a saved index (Starlette + uvicorn)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from simcse_rag.cli._common import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``serve`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve an index over HTTP (JSON API)",
        description="Serve a saved index: POST /search, POST /search/batch, GET /health, "
        "GET /info; with --writable also POST /passages (upsert) and DELETE /passages, each "
        "saved to the index folder atomically. Needs the 'serve' extra.",
    )
    parser.add_argument("index", type=Path, help="index folder")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)",
    )
    parser.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--writable", action="store_true", help="allow adding and deleting passages"
    )
    parser.set_defaults(func=run)


def _port(value: str) -> int:
    port = positive_int(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 1..65535, got {value!r}")
    return port


def run(args: argparse.Namespace) -> int:
    """Load the index, then serve it until interrupted."""
    from simcse_rag.index.hybrid import HybridRetriever
    from simcse_rag.index.saved import INDEX_DIR, SETTINGS_FILE
    from simcse_rag.serve import create_app

    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(
            "serving needs Starlette and uvicorn: pip install 'simcse-rag[serve]'."
        ) from exc
    folder = args.index
    if (folder / SETTINGS_FILE).is_file():  # a saved LangChain / LlamaIndex retriever
        folder = folder / INDEX_DIR
    HybridRetriever.read_manifest(folder)  # a clear error before anything is loaded or bound
    retriever = HybridRetriever.load(folder)
    retriever.encode_queries(["warm up"])  # build the query model now, not in the first request
    app = create_app(retriever, writable=args.writable, path=folder if args.writable else None)
    listener = _listen(args.host, args.port)
    mode = "read-write" if args.writable else "read-only"
    print(
        f"serving {len(retriever)} passages from {folder} ({mode}) at "
        f"http://{args.host}:{args.port}",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listener])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so a taken port is a one-line error, not a log dump."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ValueError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
            "or --host."
        ) from None
