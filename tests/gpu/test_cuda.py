"""CUDA paths on the tiny random BERT: encoding, mixed precision, GradCache, resume, adapt.

Marked ``gpu`` (deselected by default, run with ``-m gpu``) and skipped without CUDA. Every test
runs in seconds on one GPU; ``benchmarks/gpu_check.sh`` runs them on a lent GPU machine.

``SIMCSE_RAG_TEST_DEVICE=cpu`` runs the same tests on CPU (the fp16 ones skip there): a dry run
of the test code itself on a machine without a GPU, not a check of the CUDA paths.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from simcse_rag.data import as_examples
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.losses import simcse_loss
from simcse_rag.train_step import Optimization, TokenCache, cached_forward_backward
from simcse_rag.trainer import train
from tests.unit.test_trainer import (
    assert_grad_cache_matches_full_batch,
    assert_resume_equals_uninterrupted_run,
    eval_loss,
    train_config,
)

DEVICE = os.environ.get("SIMCSE_RAG_TEST_DEVICE", "cuda")
ON_CUDA = DEVICE.startswith("cuda")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(ON_CUDA and not torch.cuda.is_available(), reason="CUDA is not available"),
]
needs_cuda = pytest.mark.skipif(not ON_CUDA, reason="fp16 training and fp16 weights need CUDA")

SENTS = [
    f"{w} {v} number {i}"
    for i, (w, v) in enumerate(
        (w, v)
        for w in ("fever", "cough", "vaccine", "insulin", "loan", "stock", "tax", "revenue")
        for v in ("child", "doctor", "bank", "market")
    )
]
PAIRS = [(s, s.replace("number", "is")) for s in SENTS]


@pytest.fixture(autouse=True)
def _deterministic():
    """Deterministic kernels, so that two identical runs give identical weights."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(previous)


def _encoder(model_dir, device=DEVICE, **kw):
    return SimCSEEncoder.from_pretrained(model_dir, device=device, **kw)


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


# --------------------------------------------------------------------------- encoding, dtypes
def test_encoder_on_cuda_encodes_the_cpu_vectors(tiny_model_dir):
    gpu = _encoder(tiny_model_dir)
    cpu = _encoder(tiny_model_dir, device="cpu")
    assert gpu.device.type == DEVICE.split(":")[0]
    assert {p.device.type for p in gpu.model.parameters()} == {gpu.device.type}
    ours = gpu.encode(SENTS, batch_size=7)  # several batches, sorted by length and put back
    assert ours.dtype == np.float32 and ours.shape == (len(SENTS), gpu.dim)
    assert _row_cosines(ours, cpu.encode(SENTS)).min() > 0.999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_fp16_weights_are_refused_on_cpu(tiny_model_dir):
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        _encoder(tiny_model_dir, device="cpu", dtype="float16")


@needs_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_weights_on_cuda_encode_close_to_fp32(tiny_model_dir, dtype):
    half = _encoder(tiny_model_dir, dtype=dtype)
    assert half.model.dtype == getattr(torch, dtype)
    full = _encoder(tiny_model_dir)
    vectors = half.encode(SENTS)
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
    assert _row_cosines(vectors, full.encode(SENTS)).min() > 0.98


def test_mixed_precision_modes_resolve_per_device(tiny_model_dir):
    model = _encoder(tiny_model_dir).model
    device = torch.device(DEVICE)
    expected = {"no": (None, False)}
    if ON_CUDA:
        expected["auto"] = (torch.bfloat16, False)  # every GPU this check runs on has bf16
        expected["bf16"] = (torch.bfloat16, False)
        expected["fp16"] = (torch.float16, True)
    else:
        expected["auto"] = (None, False)
    for mode, (dtype, scaled) in expected.items():
        opt = Optimization.create(model, train_config(mixed_precision=mode), 4, device)
        assert (opt.amp_dtype, opt.scaler is not None) == (dtype, scaled), mode
    if not ON_CUDA:
        with pytest.raises(ValueError, match="fp16' needs a CUDA device"):
            Optimization.create(model, train_config(mixed_precision="fp16"), 4, device)


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("mode", ["auto", "no", pytest.param("fp16", marks=needs_cuda), "bf16"])
def test_training_on_device_learns_saves_and_reloads_on_cpu(tiny_model_dir, tmp_path, mode):
    enc = _encoder(tiny_model_dir, pooling="mean")
    before_weights = enc.model.embeddings.word_embeddings.weight.detach().cpu().clone()
    before = eval_loss(enc, PAIRS)
    result = train(
        enc, PAIRS, train_config(max_steps=40, mixed_precision=mode), output_dir=tmp_path / "o"
    )
    assert result.global_step == 40 and np.isfinite(result.losses).all()
    assert np.mean(result.losses[-8:]) < np.mean(result.losses[:8])
    assert eval_loss(enc, PAIRS) < before - 0.5
    assert enc.device.type == DEVICE.split(":")[0] and not enc.model.training
    after_weights = enc.model.embeddings.word_embeddings.weight.detach().cpu()
    assert after_weights.dtype == torch.float32  # autocast never changes the weights' dtype
    assert not torch.allclose(after_weights, before_weights)
    ckpt = result.last_checkpoint
    assert (ckpt / "scaler.pt").is_file() == (mode == "fp16")
    rng = torch.load(ckpt / "rng.pt", weights_only=True)
    assert ("cuda" in rng) == ON_CUDA
    loaded = SimCSEEncoder.from_pretrained(result.output_dir, device="cpu")
    assert loaded.model.dtype == torch.float32 and loaded.pooling == "mean"
    assert _row_cosines(loaded.encode(SENTS), enc.encode(SENTS)).min() > 0.999


def test_unsupervised_training_on_device_model_loads_in_sentence_transformers(
    tiny_model_dir, tmp_path
):
    from sentence_transformers import SentenceTransformer

    enc = _encoder(tiny_model_dir)
    result = train(enc, SENTS, train_config(), output_dir=tmp_path / "o")
    assert enc.pooling == "cls_before_pooler" and result.losses[0] > 0.01  # dropout views differ
    st = SentenceTransformer(str(result.output_dir), device="cpu")
    loaded = SimCSEEncoder.from_pretrained(result.output_dir, device="cpu")
    np.testing.assert_allclose(st.encode(SENTS[:6]), loaded.encode(SENTS[:6]), atol=1e-5)


# --------------------------------------------------------------------------- GradCache
def test_grad_cache_gives_the_full_batch_loss_and_gradients(tiny_model_dir):
    assert_grad_cache_matches_full_batch(lambda: _encoder(tiny_model_dir), atol=1e-5)


def test_grad_cache_replays_each_chunks_dropout_mask_on_device(tiny_model_dir):
    """The second (graph) pass of every chunk must see the first pass's dropout masks."""
    enc = _encoder(tiny_model_dir)
    enc.model.train()  # dropout 0.1 on
    tokens = TokenCache(enc, as_examples(SENTS), 64)
    outputs: list[torch.Tensor] = []

    def embed(texts):
        rep = enc.forward(tokens.features(texts)).float()
        outputs.append(rep.detach().clone())
        return rep

    def loss_of(reps):
        return simcse_loss(reps[0], reps[1])

    groups = [SENTS[:8], SENTS[:8]]
    loss = cached_forward_backward(groups, 3, embed, loss_of, lambda x: x.backward())
    first, second = outputs[:6], outputs[6:]
    assert len(second) == 6 and np.isfinite(loss) and loss > 0.01
    # The two views of a sentence differ (dropout is on) ...
    assert not torch.allclose(torch.cat(first[:3]), torch.cat(first[3:]), atol=1e-3)
    # ... but each chunk's replay reproduces its first pass exactly.
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["no", "bf16"])
def test_grad_cache_training_matches_full_batch_losses(tiny_model_dir, tmp_path, mode):
    examples = [(a, b, SENTS[(i + 3) % len(SENTS)]) for i, (a, b) in enumerate(PAIRS)]
    runs = []
    for mini in (None, 3):
        config = train_config(max_steps=4, dropout=0.0, mini_batch_size=mini, mixed_precision=mode)
        res = train(_encoder(tiny_model_dir), examples, config, output_dir=tmp_path / f"m{mini}")
        runs.append(res.losses)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-4 if mode == "no" else 2e-2)


# --------------------------------------------------------------------------- resume
@pytest.mark.parametrize("mode", ["no", "auto", pytest.param("fp16", marks=needs_cuda)])
def test_resume_on_device_equals_uninterrupted_run(tiny_model_dir, tmp_path, mode):
    """Dropout 0.1 is on: a resumed run only matches if the device's RNG state is restored."""
    config = train_config(max_steps=6, checkpoint_steps=3, eval_steps=1, mixed_precision=mode)
    assert_resume_equals_uninterrupted_run(lambda: _encoder(tiny_model_dir), config, tmp_path)


def test_resume_without_the_saved_rng_state_would_differ(tiny_model_dir, tmp_path):
    """Guards the test above: replacing the saved RNG state of the device that draws the
    dropout masks changes the resumed losses, so that test fails if the state is not restored."""
    config = train_config(max_steps=6, checkpoint_steps=3)
    full = train(_encoder(tiny_model_dir), SENTS, config, output_dir=tmp_path / "full")

    def stop_after_checkpoint(step, loss):
        if step == 4:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(
            _encoder(tiny_model_dir), SENTS, config, output_dir=run, on_step=stop_after_checkpoint
        )
    rng_file = run / "checkpoint-last" / "rng.pt"
    rng = torch.load(rng_file, weights_only=True)
    if ON_CUDA:
        torch.cuda.manual_seed_all(999)
        rng["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    else:
        torch.manual_seed(999)
        rng["cpu"] = torch.get_rng_state()
    torch.save(rng, rng_file)
    resumed = train(_encoder(tiny_model_dir), SENTS, config, output_dir=run, resume=True)
    assert resumed.losses[:3] == pytest.approx(full.losses[:3], rel=1e-5)
    assert not np.allclose(resumed.losses[3:], full.losses[3:], rtol=1e-3)


# --------------------------------------------------------------------------- adapt
def test_adapt_end_to_end_on_device(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    from simcse_rag.adapt import REPORT_JSON, adapt
    from tests.unit.test_adapt import synthetic_corpus, tiny_adapt_config

    encoder = _encoder(tiny_model_dir)
    before = encoder.model.embeddings.word_embeddings.weight.detach().cpu().clone()
    out = tmp_path / "adapted"
    result = adapt(synthetic_corpus(40), encoder, out, config=tiny_adapt_config())
    report = json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))
    assert report == json.loads(json.dumps(result.report))
    assert set(report["before"]) == set(report["after"]) == {"dense", "bm25", "hybrid"}
    assert report["before"]["bm25"] == report["after"]["bm25"]
    assert report["rounds"][0]["train"]["steps"] == 3
    assert report["rounds"][0]["mining"]["negatives_kept"] > 0
    assert encoder.device.type == DEVICE.split(":")[0]
    assert {p.device.type for p in encoder.model.parameters()} == {encoder.device.type}
    reloaded = SimCSEEncoder.from_pretrained(out, device="cpu")
    assert not torch.allclose(reloaded.model.embeddings.word_embeddings.weight.detach(), before)
    texts = ["fever aspirin dose", "bank loan interest"]
    st = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(
        st.encode(texts, normalize_embeddings=True), reloaded.encode(texts), atol=1e-5
    )
    assert _row_cosines(encoder.encode(texts), reloaded.encode(texts)).min() > 0.999
