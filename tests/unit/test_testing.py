"""The test helpers: the tiny random BERT and the "tiny or real encoder" switch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simcse_rag import testing
from simcse_rag.encoder import SimCSEEncoder


def test_tiny_encoder_is_written_where_asked_and_runs_on_cpu(
    tiny_encoder: SimCSEEncoder, tmp_path: Path
) -> None:
    encoder = testing.load_encoder(tiny=True, tiny_dir=tmp_path / "tiny")
    assert (tmp_path / "tiny" / "model.safetensors").is_file()
    assert encoder.device.type == "cpu" and encoder.pooling == "cls"
    # Same seed, same model as the session's tiny encoder.
    texts = ["fever in children", "儿童发烧"]
    np.testing.assert_allclose(encoder.encode(texts), tiny_encoder.encode(texts), atol=1e-6)


def test_tiny_encoder_without_a_folder_goes_to_a_new_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    encoder = testing.load_encoder(tiny=True)
    (made,) = tmp_path.iterdir()
    assert made.name.startswith("simcse-rag-tiny-")
    assert Path(encoder.name_or_path) == made / "tiny-bert"


def test_real_encoder_is_the_named_model(tiny_model_dir: Path) -> None:
    encoder = testing.load_encoder(tiny_model_dir, device="cpu")
    assert Path(encoder.name_or_path) == tiny_model_dir
    assert encoder.device.type == "cpu"


def test_tiny_and_a_model_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"tiny=True and model='some/model' exclude each other"):
        testing.load_encoder("some/model", tiny=True, tiny_dir=tmp_path / "tiny")
    assert not (tmp_path / "tiny").exists()  # refused before building anything
