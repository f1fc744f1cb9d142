"""``simcse-rag index build|add|delete|info``: build and maintain a hybrid index folder."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from simcse_rag.cli._common import (
    CORPUS_HELP,
    add_model_argument,
    add_passage_backend_argument,
    add_retriever_arguments,
    existing_file,
    load_encoder,
    retriever_config,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``index`` command group."""
    parser = subparsers.add_parser("index", help="build / update a hybrid (dense + BM25) index")
    sub = parser.add_subparsers(dest="index_command", metavar="ACTION")

    build = sub.add_parser(
        "build",
        help="index a corpus into a folder",
        description="Index a corpus file: BEIR .jsonl (_id or id, text, optional title), .csv or "
        ".tsv with a header row of the same columns, or .txt (one passage per line, id = line "
        "number). The folder is written atomically: a failed build never touches "
        "an existing index, and vectors of unchanged texts in an existing index built with the "
        "same model are reused instead of re-encoded.",
    )
    build.add_argument("--corpus", required=True, type=existing_file, help=CORPUS_HELP)
    build.add_argument("--out", required=True, type=Path, help="index folder to create/replace")
    add_model_argument(build)
    add_retriever_arguments(build)
    build.add_argument("--bm25-backend", default="bm25s", choices=("bm25s", "rank_bm25"))
    build.add_argument(
        "--backend",
        default="faiss",
        choices=("faiss", "milvus"),
        help="dense vectors in FAISS files (default) or in Milvus (extra: simcse-rag[milvus])",
    )
    build.add_argument(
        "--milvus-uri",
        default=None,
        help="with --backend milvus: a local path ending in .db (Milvus Lite) or "
        "http://host:19530 (server; credentials from $MILVUS_TOKEN)",
    )
    build.add_argument(
        "--milvus-collection",
        default="simcse_rag",
        help="collection name prefix; each build writes <prefix>_<8 hex> and drops the "
        "previous build's collection once the new index is saved",
    )
    build.add_argument(
        "--milvus-index-type",
        default="AUTOINDEX",
        choices=("AUTOINDEX", "FLAT", "HNSW", "IVF_FLAT"),
    )
    build.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    build.set_defaults(func=run_build)

    add = sub.add_parser("add", help="add or replace passages (upsert by id)")
    add.add_argument("index", type=Path, help="index folder")
    add.add_argument("--corpus", required=True, type=existing_file, help=CORPUS_HELP)
    add_model_argument(add)
    add_passage_backend_argument(add, keep=True)
    add.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add.set_defaults(func=run_add)

    delete = sub.add_parser("delete", help="remove passages by id")
    delete.add_argument("index", type=Path, help="index folder")
    delete.add_argument("--ids", nargs="+", required=True, metavar="ID", help="ids to remove")
    add_model_argument(delete)
    delete.set_defaults(func=run_delete)

    info = sub.add_parser("info", help="print an index's manifest")
    info.add_argument("index", type=Path, help="index folder")
    info.set_defaults(func=run_info)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _check_out(out: Path) -> bool:
    """Return whether ``out`` holds an index; refuse to replace any other non-empty folder."""
    from simcse_rag.index.hybrid import MANIFEST

    if not out.exists():
        return False
    if not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a folder path.")
    if (out / MANIFEST).is_file():
        return True
    if any(out.iterdir()):
        raise ValueError(
            f"--out {str(out)!r} exists and is not a simcse-rag index; "
            "choose an empty or new folder."
        )
    return False


def run_build(args: argparse.Namespace) -> int:
    """Build an index folder from a corpus file."""
    from simcse_rag.corpus import read_corpus
    from simcse_rag.index.hybrid import HybridRetriever

    existing = _check_out(args.out)
    passages = read_corpus(args.corpus)
    config = retriever_config(args, bm25_backend=args.bm25_backend)
    if args.backend == "milvus" and not args.milvus_uri:
        raise ValueError(
            "--backend milvus needs --milvus-uri: a local path ending in .db (Milvus Lite) or "
            "http://host:19530 (a Milvus server)."
        )
    encoder = load_encoder(args)
    start = time.perf_counter()
    dense = _new_milvus_index(args, encoder.dim) if args.backend == "milvus" else None
    previous = _milvus_settings(args.out) if existing else None
    retriever = HybridRetriever(encoder, config, dense_index=dense)
    reused = retriever.load_cache(args.out) if existing else 0
    _, missing = retriever.cache.lookup([p.text for p in passages], retriever.passage_backend)
    try:
        retriever.add(passages, show_progress=not args.no_progress)
        if dense is not None:
            dense.flush()
        retriever.save(args.out)
    except BaseException:
        if dense is not None:  # the old index (and its collection) stay as they were
            _drop_quietly(dense)
        raise
    if previous is not None and dense is not None and previous.collection != dense.collection:
        _drop_quietly(previous)
    source = " from the previous index" if reused else ""
    print(
        f"indexed {len(retriever)} passages into {args.out} in {time.perf_counter() - start:.1f}s "
        f"({len(passages) - len(missing)} vectors reused{source}, {len(missing)} encoded; "
        f"dense={retriever.dense_index.structure}, tokenizer={args.tokenizer})"
    )
    return 0


def _new_milvus_index(args: argparse.Namespace, dim: int):  # noqa: ANN202
    import uuid

    from simcse_rag.index.milvus import MilvusDenseIndex

    return MilvusDenseIndex(
        dim,
        args.milvus_uri,
        collection=f"{args.milvus_collection}_{uuid.uuid4().hex[:8]}",
        index_type=args.milvus_index_type,
    )


def _milvus_settings(folder: Path):  # noqa: ANN202
    """The Milvus index of an existing build (to drop after a rebuild), or ``None``."""
    from simcse_rag.index.milvus import SETTINGS_FILE, MilvusDenseIndex

    if not (folder / "dense" / SETTINGS_FILE).is_file():
        return None
    try:
        return MilvusDenseIndex.load(folder / "dense")
    except ValueError:  # already gone or changed: nothing we should drop
        return None


def _drop_quietly(index) -> None:  # noqa: ANN001
    import logging

    try:
        index.drop()
    except ValueError as exc:
        logging.getLogger(__name__).warning("could not drop Milvus collection: %s", exc)


def _load(args: argparse.Namespace):  # noqa: ANN202
    from simcse_rag.index.hybrid import HybridRetriever

    HybridRetriever.read_manifest(args.index)
    encoder = load_encoder(args) if args.model else None
    backend = getattr(args, "passage_backend", "keep")
    return HybridRetriever.load(
        args.index, encoder, passage_backend=None if backend == "keep" else backend
    )


def run_add(args: argparse.Namespace) -> int:
    """Upsert passages from a corpus file into an existing index."""
    from simcse_rag.corpus import read_corpus

    passages = read_corpus(args.corpus)
    retriever = _load(args)
    new = sum(p.id not in retriever for p in passages)
    retriever.add(passages, show_progress=not args.no_progress)
    retriever.save(args.index)
    print(
        f"added {new} and replaced {len(passages) - new} passages; index now holds {len(retriever)}"
    )
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete passages by id from an existing index."""
    retriever = _load(args)
    removed = retriever.delete(args.ids)
    unknown = [i for i in args.ids if i not in retriever and removed == 0]
    if removed:
        retriever.save(args.index)
    print(f"deleted {removed} passages; index now holds {len(retriever)}")
    if not removed:
        raise ValueError(f"none of the ids {unknown[:5]} is in the index; nothing deleted.")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print the manifest as JSON."""
    from simcse_rag.index.hybrid import HybridRetriever

    print(json.dumps(HybridRetriever.read_manifest(args.index), indent=2, ensure_ascii=False))
    return 0
