"""Import boundaries: the core never imports a framework; adapters name their extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_BLOCKER = """
import importlib.abc
import sys

class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r} or name.startswith({blocked!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_core_does_not_import_any_framework() -> None:
    result = _run(
        """
        import importlib, pkgutil, sys
        import simcse_rag
        for info in pkgutil.walk_packages(simcse_rag.__path__, "simcse_rag."):
            if info.name.startswith("simcse_rag.__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except ImportError as exc:  # an optional dependency of that module
                print("SKIPPED:", info.name, exc)
        loaded = sorted(
            m for m in sys.modules
            if m.split(".")[0] in {"langchain", "langchain_core", "langchain_community",
                                   "llama_index", "langchain_simcse", "llama_index_simcse"}
        )
        print("LOADED:", loaded)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED: []" in result.stdout


@pytest.mark.parametrize(
    ("adapter", "blocked", "extra"),
    [
        ("langchain_simcse", "langchain_core", "simcse-rag[langchain]"),
        ("llama_index_simcse", "llama_index", "simcse-rag[llamaindex]"),
    ],
)
def test_adapter_without_its_framework_names_the_extra(adapter, blocked, extra) -> None:
    pytest.importorskip(adapter)  # the framework is installed here; block it in a subprocess
    code = _BLOCKER.format(blocked=blocked) + textwrap.dedent(
        f"""
        try:
            import {adapter}
        except ImportError as exc:
            print("MESSAGE:", exc)
        else:
            print("IMPORTED")
        """
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "IMPORTED" not in result.stdout
    assert f"pip install '{extra}'" in result.stdout
