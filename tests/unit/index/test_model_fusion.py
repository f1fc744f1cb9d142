"""The fusion setting saved with a model folder, and who reads it (HybridConfig, retriever, CLI)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from simcse_rag.cli import main
from simcse_rag.index.config import HybridConfig
from simcse_rag.index.model_fusion import MODEL_SETTINGS_FILE, read_model_fusion, write_model_fusion

SAVED = {"fusion": "dist_based", "rrf_k": 30, "weights": {"dense": 2.0, "bm25": 1.0}}


def _save(folder: Path) -> Path:
    return write_model_fusion(folder, chosen_on="a test", **SAVED)


def test_round_trip_and_nothing_saved(tmp_path: Path) -> None:
    assert read_model_fusion(None) == {}
    assert read_model_fusion(tmp_path) == {}
    assert read_model_fusion("sentence-transformers/all-MiniLM-L6-v2") == {}
    path = _save(tmp_path)
    assert path.name == MODEL_SETTINGS_FILE
    assert read_model_fusion(tmp_path) == SAVED
    assert json.loads(path.read_text())["retrieval"]["chosen_on"] == "a test"


def test_malformed_file_names_itself_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / MODEL_SETTINGS_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"simcse_rag\.json is not .*remove its 'retrieval'"):
        read_model_fusion(tmp_path)
    (tmp_path / MODEL_SETTINGS_FILE).write_text('{"retrieval": "rrf"}')
    with pytest.raises(ValueError, match=r"simcse_rag\.json is not"):
        read_model_fusion(tmp_path)


def test_for_model_takes_the_saved_setting_unless_chosen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert HybridConfig.for_model(None) == HybridConfig()
    assert HybridConfig.for_model(tmp_path, tokenizer="en") == HybridConfig(tokenizer="en")
    _save(tmp_path)
    with caplog.at_level(logging.INFO, logger="simcse_rag.index.config"):
        config = HybridConfig.for_model(tmp_path)
    assert (config.fusion, config.rrf_k, dict(config.weights)) == (
        "dist_based",
        30,
        {"dense": 2.0, "bm25": 1.0},
    )
    assert MODEL_SETTINGS_FILE in caplog.text and "dist_based" in caplog.text
    mixed = HybridConfig.for_model(tmp_path, fusion="rrf")
    assert mixed.fusion == "rrf" and mixed.weights["dense"] == 2.0  # chosen wins, rest saved


def test_for_model_refuses_a_bad_saved_value_naming_the_file(tmp_path: Path) -> None:
    write_model_fusion(tmp_path, fusion="sum", rrf_k=60, weights={"dense": 1.0}, chosen_on="x")
    with pytest.raises(ValueError, match=r"fusion 'sum' unknown.*simcse_rag\.json; fix or delete"):
        HybridConfig.for_model(tmp_path)


@pytest.fixture
def encoder_dir(tiny_encoder, tmp_path: Path) -> Path:
    """The tiny model saved by SimCSEEncoder (with its own simcse_rag.json)."""
    folder = tmp_path / "saved"
    tiny_encoder.save_pretrained(folder)
    return folder


@pytest.fixture
def adapted_dir(encoder_dir: Path, tmp_path: Path) -> Path:
    """A saved model with a fusion setting, as adapt leaves it."""
    folder = shutil.copytree(encoder_dir, tmp_path / "adapted")
    _save(folder)
    return folder


def test_retriever_over_an_adapted_model_searches_with_its_setting(
    adapted_dir: Path, encoder_dir: Path
) -> None:
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.index.hybrid import HybridRetriever

    # The encoder's own settings (pooling...) share the file and are kept.
    own = json.loads((encoder_dir / MODEL_SETTINGS_FILE).read_text())
    saved = json.loads((adapted_dir / MODEL_SETTINGS_FILE).read_text())
    assert saved == {**own, "retrieval": {**SAVED, "chosen_on": "a test"}}
    assert "pooling" in own and read_model_fusion(encoder_dir) == {}  # no setting saved
    encoder = SimCSEEncoder.from_pretrained(adapted_dir, device="cpu")
    assert HybridRetriever(encoder).config.fusion == "dist_based"
    assert HybridRetriever(encoder, HybridConfig()).config == HybridConfig()  # explicit wins


def test_index_build_uses_the_saved_setting_unless_flags_say_otherwise(
    adapted_dir: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"_id": f"d{i}", "text": f"text number {i}"}) + "\n" for i in range(4))
    )
    base = ["index", "build", "--corpus", str(corpus), "--model", str(adapted_dir), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--fusion", "rrf"]) == 0
    saved = json.loads((tmp_path / "a" / "manifest.json").read_text())["config"]
    chosen = json.loads((tmp_path / "b" / "manifest.json").read_text())["config"]
    assert (saved["fusion"], saved["weights"]["dense"]) == ("dist_based", 2.0)
    assert (chosen["fusion"], chosen["weights"]["dense"]) == ("rrf", 2.0)
