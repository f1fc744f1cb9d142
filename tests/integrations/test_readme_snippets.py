"""The README's LangChain and LlamaIndex snippets, read from README.md and run as printed (slow)."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from pathlib import Path

import pytest

from tests.conftest import has_default_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not has_default_model(), reason="needs the 'model' extra"),
]

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet(name: str) -> str:
    """The fenced python block that follows ``<!-- snippet: NAME -->`` in README.md."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README.md has no snippet {name!r}"
    return match.group(1)


CORE = _snippet("core")
LANGCHAIN = _snippet("langchain")
LLAMA_INDEX = _snippet("llama_index")
LLAMA_INDEX_FUSION = _snippet("llama_index_fusion")


def _run(code: str) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(textwrap.dedent(code), "<snippet>", "exec"), {})  # noqa: S102
    return out.getvalue().splitlines()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_core_snippet() -> None:
    lines = _run(CORE)
    assert lines[0].startswith("1 d2 ") and lines[0].endswith("['bm25', 'dense']")
    assert len(lines) == 3
    assert lines[-1] == "['d3']"


def test_langchain_snippet() -> None:
    lines = _run(LANGCHAIN)
    assert lines[0].startswith("en-1 ")
    assert len(lines) == 3
    assert lines[-1] == "['zh-1']"


def test_llama_index_snippet() -> None:
    from llama_index.core import Settings

    previous = Settings._embed_model
    try:
        lines = _run(LLAMA_INDEX)
    finally:
        Settings._embed_model = previous
    assert lines[0].startswith("en-1 ")
    assert lines[-1].startswith("['zh-1'")


def test_llama_index_fusion_snippet() -> None:
    pytest.importorskip("llama_index.retrievers.bm25")
    assert _run(LLAMA_INDEX_FUSION) == ["['en-1', 'zh-1']"]
