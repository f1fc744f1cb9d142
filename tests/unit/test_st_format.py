"""sentence-transformers folder format: settings read back from written files, optional files."""

from __future__ import annotations

import shutil

import pytest

from simcse_rag import st_format
from simcse_rag.encoder import SimCSEEncoder


def _with_pooling(encoder: SimCSEEncoder, pooling: str) -> SimCSEEncoder:
    return SimCSEEncoder(
        encoder.model, encoder.tokenizer, pooling=pooling, max_length=24, device="cpu"
    )


@pytest.mark.parametrize(
    ("pooling", "expected"),
    [
        ("mean", {"pooling": "mean", "max_length": 24}),
        ("cls_before_pooler", {"pooling": "cls_before_pooler", "max_length": 24}),
        # Pooling(cls) + Dense(pooler, tanh): sentence-transformers' view of our "cls".
        ("cls", {"pooling": "cls_before_pooler", "max_length": 24, "has_dense": True}),
    ],
)
def test_written_files_read_back(tiny_encoder, tmp_path, pooling, expected):
    st_format.write_files(_with_pooling(tiny_encoder, pooling), tmp_path)
    assert st_format.read_settings(tmp_path) == expected
    written = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert written and written <= set(st_format.MODULE_DIRS)  # the trainer's cleanup list


def test_layer_average_pooling_writes_nothing(tiny_encoder, tmp_path, caplog):
    st_format.write_files(_with_pooling(tiny_encoder, "first_last_avg"), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert st_format.read_settings(tmp_path) == {}
    assert "no sentence-transformers equivalent" in caplog.text


def test_plain_hugging_face_folder_has_no_settings_and_loads(tiny_model_dir, tmp_path):
    folder = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, folder)
    assert not (folder / "modules.json").exists()
    assert st_format.read_settings(folder) == {}
    assert SimCSEEncoder.from_pretrained(folder, device="cpu").pooling == "cls"


@pytest.mark.parametrize("name", ["modules.json", "simcse_rag.json"])
def test_corrupt_config_is_named(tiny_encoder, tmp_path, name):
    """A corrupt pooling file stops the load (guessing the pooling would give other vectors)."""
    folder = tiny_encoder.save_pretrained(tmp_path / "m")
    (folder / name).write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"model config .*{name}.* corrupted"):
        SimCSEEncoder.from_pretrained(folder, device="cpu")


def test_pooler_is_required_for_cls(tmp_path):
    class NoPooler:
        pooler = None

    with pytest.raises(ValueError, match="cls_before_pooler"):
        st_format.write_pooler_as_dense(NoPooler(), tmp_path / "2_Dense")
    assert not (tmp_path / "2_Dense").exists()
