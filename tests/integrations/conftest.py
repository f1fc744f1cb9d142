"""Fixtures shared by the adapter tests: a small mixed English / Chinese corpus and a tiny model.

The adapters' tests need distinct texts to get distinct vectors. The session's tiny random BERT
with ``cls`` pooling maps every text to nearly the same vector, so these tests load it with mean
pooling (saved as its own folder, so path loading is exercised too). The corpus texts also have
distinct token counts, which keeps their vectors apart even under a degenerate tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integrations.corpus import CORPUS


@pytest.fixture(scope="session")
def corpus() -> list[tuple[str, str, dict]]:
    """The shared corpus as (id, text, metadata) triples."""
    return [(i, t, dict(m)) for i, t, m in CORPUS]


@pytest.fixture(scope="session")
def model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model saved with mean pooling as its default."""
    from simcse_rag.encoder import SimCSEEncoder

    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, pooling="mean", device="cpu")
    return encoder.save_pretrained(tmp_path_factory.mktemp("adapters") / "tiny-mean")


@pytest.fixture(scope="session")
def encoder(model_dir: Path):
    """A SimCSEEncoder over :func:`model_dir`, loaded through the real from_pretrained path."""
    from simcse_rag.encoder import SimCSEEncoder

    return SimCSEEncoder.from_pretrained(model_dir, device="cpu")
