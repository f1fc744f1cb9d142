from __future__ import annotations

import time

import numpy as np
import pytest

from simcse_rag.encoder import SimCSEEncoder, looks_like_path, resolve_model_path
from tests.conftest import has_default_model

TEXTS = [
    "a short one",
    "孩子发烧到三十九度怎么办？",
    "a much longer sentence about the revenue of the company in the third quarter of the year",
    "x",
    "mixed 中文 and English text",
]


def test_encode_shape_dtype_and_norm(tiny_encoder):
    emb = tiny_encoder.encode(TEXTS, batch_size=2)
    assert emb.shape == (len(TEXTS), tiny_encoder.dim)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_encode_keeps_input_order_regardless_of_batching(tiny_encoder):
    whole = tiny_encoder.encode(TEXTS, batch_size=64)
    for bs in (1, 2, 3):
        np.testing.assert_allclose(tiny_encoder.encode(TEXTS, batch_size=bs), whole, atol=1e-5)
    one_by_one = np.stack([tiny_encoder.embed_query(t) for t in TEXTS])
    np.testing.assert_allclose(one_by_one, whole, atol=1e-5)


def test_encode_empty_and_unnormalized(tiny_encoder):
    assert tiny_encoder.encode([]).shape == (0, tiny_encoder.dim)
    raw = tiny_encoder.encode(TEXTS[:2], normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_embed_query_shape(tiny_encoder):
    assert tiny_encoder.embed_query("hello").shape == (tiny_encoder.dim,)


def test_non_string_is_named_by_index(tiny_encoder):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tiny_encoder.encode(["ok", 3])
    with pytest.raises(TypeError, match="list of texts"):
        tiny_encoder.encode("a bare string")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got True"):
        tiny_encoder.encode(["ok"], batch_size=True)
    with pytest.raises(ValueError, match="batch_size"):
        tiny_encoder.encode(["a"], batch_size=0)


def test_truncation_at_max_length(tiny_model_dir):
    enc = SimCSEEncoder.from_pretrained(tiny_model_dir, max_length=8, device="cpu")
    long_a = "word " * 200
    long_b = "word " * 50
    np.testing.assert_allclose(enc.encode([long_a]), enc.encode([long_b]), atol=1e-6)
    assert enc.tokenize([long_a])["input_ids"].shape[1] == 8


def test_unknown_pooling_lists_modes(tiny_model_dir):
    with pytest.raises(ValueError, match="choose one of"):
        SimCSEEncoder.from_pretrained(tiny_model_dir, pooling="avg")


def test_missing_folder_is_clear(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        SimCSEEncoder.from_pretrained(tmp_path / "nope")


def _fails_fast(name: str, match: str) -> None:
    """Loading ``name`` raises ``match`` within a second or two: no hub retries."""
    start = time.monotonic()
    with pytest.raises(ValueError, match=match):
        SimCSEEncoder.from_pretrained(name)
    assert time.monotonic() - start < 2.0


def test_model_path_typo_fails_fast(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    _fails_fast("runs/liveqa-adpat", r"^model folder 'runs/liveqa-adpat' does not exist; check")
    _fails_fast("models/a/b", "model folder 'models/a/b' does not exist")  # two slashes
    _fails_fast("adapted.safetensors", "model folder 'adapted.safetensors' does not exist")


def test_folder_without_model_and_file_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    _fails_fast(str(tmp_path / "empty"), r"holds no model \(no config\.json\)")
    (tmp_path / "weights.bin").write_bytes(b"")
    _fails_fast(str(tmp_path / "weights.bin"), "is a file; pass the folder")


def test_hub_id_offline_fails_fast_unless_cached(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fails_fast("simcse-rag-tests/absent", r"^model 'simcse-rag-tests/absent' .* offline")
    snapshot = tmp_path / "hub" / "models--simcse-rag-tests--cached" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc")
    assert resolve_model_path("simcse-rag-tests/cached") == "simcse-rag-tests/cached"


def test_hub_ids_pass_through_when_online(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.chdir(tmp_path)  # no BAAI/ folder here
    for hub_id in ("BAAI/bge-small-en-v1.5", "bert-base-uncased"):
        assert resolve_model_path(hub_id) == hub_id


@pytest.mark.parametrize(
    ("name", "is_path"),
    [
        ("runs\\model", True),
        ("a/b/c", True),
        ("./model", True),
        ("~/model", True),
        ("/abs/model", True),
        ("model/", True),
        ("pytorch_model.bin", True),
        ("BAAI/bge-small-en-v1.5", False),
        ("bert-base-uncased", False),
    ],
)
def test_looks_like_path(name, is_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_path(name) is is_path


def test_default_pooling_for_plain_checkpoint_is_cls(tiny_encoder):
    assert tiny_encoder.pooling == "cls"


@pytest.mark.parametrize("mode", ["cls", "cls_before_pooler", "mean", "first_last_avg", "last2avg"])
def test_save_and_reload_gives_same_vectors(tiny_model_dir, tmp_path, mode):
    enc = SimCSEEncoder.from_pretrained(tiny_model_dir, pooling=mode, device="cpu")
    out = enc.save_pretrained(tmp_path / "saved")
    again = SimCSEEncoder.from_pretrained(out, device="cpu")
    assert again.pooling == mode
    assert again.max_length == enc.max_length
    np.testing.assert_allclose(again.encode(TEXTS), enc.encode(TEXTS), atol=1e-6)
    assert again.fingerprint() == enc.fingerprint()


@pytest.mark.parametrize("mode", ["cls", "cls_before_pooler", "mean"])
def test_sentence_transformers_loads_saved_model(tiny_model_dir, tmp_path, mode):
    st = pytest.importorskip("sentence_transformers")
    enc = SimCSEEncoder.from_pretrained(tiny_model_dir, pooling=mode, max_length=64, device="cpu")
    folder = enc.save_pretrained(tmp_path / "st")
    model = st.SentenceTransformer(str(folder), device="cpu")
    assert model.max_seq_length == 64
    ours = enc.encode(TEXTS)
    theirs = model.encode(TEXTS, convert_to_numpy=True)
    assert np.abs(ours - theirs).max() <= 1e-5


def test_save_replaces_existing_atomically(tiny_encoder, tmp_path):
    target = tmp_path / "m"
    tiny_encoder.save_pretrained(target)
    (target / "stale.txt").write_text("old")
    tiny_encoder.save_pretrained(target)
    assert not (target / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_fingerprint_changes_with_pooling(tiny_model_dir):
    a = SimCSEEncoder.from_pretrained(tiny_model_dir, pooling="cls", device="cpu")
    b = SimCSEEncoder.from_pretrained(tiny_model_dir, pooling="mean", device="cpu")
    assert a.fingerprint() != b.fingerprint()


def test_bad_device_and_dtype(tiny_model_dir):
    with pytest.raises(ValueError, match="dtype"):
        SimCSEEncoder.from_pretrained(tiny_model_dir, dtype="int8")
    with pytest.raises(ValueError, match="float16 needs a CUDA"):
        SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float16")


@pytest.mark.skipif(not has_default_model(), reason="model extra not installed")
def test_default_model_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    from simcse_rag.encoder import default_model_path

    enc = SimCSEEncoder.from_pretrained(device="cpu")
    assert enc.pooling == "mean" and enc.max_length == 256 and enc.dim == 384
    model = st.SentenceTransformer(str(default_model_path()), device="cpu")
    ours = enc.encode(TEXTS)
    theirs = model.encode(TEXTS, convert_to_numpy=True)
    assert np.abs(ours - theirs).max() <= 1e-5
    sims = ours @ ours.T
    assert sims[0, 0] > 0.99


@pytest.mark.parametrize(
    ("pooling_config", "expected"),
    [
        ({"pooling_mode": "mean"}, "mean"),  # sentence-transformers >= 6
        ({"pooling_mode": "cls"}, "cls_before_pooler"),
        ({"pooling_mode_mean_tokens": True}, "mean"),  # older versions
    ],
)
def test_sentence_transformers_pooling_configs(tiny_model_dir, tmp_path, pooling_config, expected):
    import json
    import shutil

    folder = tmp_path / "st"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    assert SimCSEEncoder.from_pretrained(folder, device="cpu").pooling == expected


def test_unsupported_sentence_transformers_pooling_is_named(tiny_model_dir, tmp_path):
    import json
    import shutil

    folder = tmp_path / "st"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "max"}))
    modules = [
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="max.*pass pooling="):
        SimCSEEncoder.from_pretrained(folder, device="cpu")
    assert SimCSEEncoder.from_pretrained(folder, pooling="mean", device="cpu").pooling == "mean"


def test_sentence_transformers_6_folder_keeps_its_max_seq_length(tiny_model_dir, tmp_path):
    # sentence-transformers >= 6 stores max_seq_length as the tokenizer's model_max_length, not
    # in sentence_bert_config.json; we read it as 128 (the position limit) before.
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(tiny_model_dir), device="cpu")
    model.max_seq_length = 40
    model.save(str(tmp_path / "st6"))
    reloaded = st.SentenceTransformer(str(tmp_path / "st6"), device="cpu")
    enc = SimCSEEncoder.from_pretrained(tmp_path / "st6", device="cpu", pooling="mean")
    assert enc.max_length == reloaded.max_seq_length == 40
