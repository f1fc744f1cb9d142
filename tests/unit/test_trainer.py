"""SimCSE trainer on the tiny model: learning, checkpoints, resume, NaN stop, saved models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.losses import simcse_loss
from simcse_rag.trainer import TrainingConfig, read_training_config, train

SENTS = [
    f"{w} {v} number {i}"
    for i, (w, v) in enumerate(
        (w, v)
        for w in ("fever", "cough", "vaccine", "insulin", "loan", "stock", "tax", "revenue")
        for v in ("child", "doctor", "bank", "market")
    )
]
PAIRS = [(s, s.replace("number", "is")) for s in SENTS]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _encoder(tiny_model_dir, **kw):
    return SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu", **kw)


def eval_loss(encoder, pairs):
    """The SimCSE loss of ``pairs`` under ``encoder`` (no gradients); shared with tests/gpu."""
    a = torch.from_numpy(encoder.encode([p[0] for p in pairs], normalize=False))
    b = torch.from_numpy(encoder.encode([p[1] for p in pairs], normalize=False))
    return simcse_loss(a, b).item()


def train_config(**kw):
    """A short TrainingConfig for the tiny model (``kw`` overrides); shared with tests/gpu."""
    base = dict(max_steps=6, batch_size=8, learning_rate=1e-3, checkpoint_steps=3, seed=7)
    base.update(kw)
    return TrainingConfig(**base)


def test_supervised_training_lowers_the_loss(tiny_model_dir, tmp_path):
    enc = _encoder(tiny_model_dir, pooling="mean")
    before = eval_loss(enc, PAIRS)
    result = train(enc, PAIRS, train_config(max_steps=40), output_dir=tmp_path / "out")
    assert result.global_step == 40 and len(result.losses) == 40
    assert eval_loss(enc, PAIRS) < before - 0.5
    assert enc.pooling == "mean" and not enc.model.training


def test_unsupervised_cls_trains_with_mlp_and_saves_without(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    enc = _encoder(tiny_model_dir)
    assert enc.pooling == "cls"
    result = train(enc, SENTS, train_config(), output_dir=tmp_path / "out")
    assert enc.pooling == "cls_before_pooler"
    loaded = SimCSEEncoder.from_pretrained(result.output_dir, device="cpu")
    assert loaded.pooling == "cls_before_pooler"
    st = SentenceTransformer(str(result.output_dir), device="cpu")
    ours = loaded.encode(SENTS[:6])
    np.testing.assert_allclose(st.encode(SENTS[:6]), ours, atol=1e-5)
    np.testing.assert_allclose(enc.encode(SENTS[:6]), ours, atol=1e-6)
    assert read_training_config(result.output_dir) == train_config()
    ckpt = result.last_checkpoint
    assert {"optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json"} <= {
        p.name for p in ckpt.iterdir()
    }
    torch.load(ckpt / "optimizer.pt", weights_only=True)  # state dicts only


def test_supervised_cls_model_loads_in_sentence_transformers(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    enc = _encoder(tiny_model_dir)
    examples = [
        (a, b, [SENTS[(i + 5) % len(SENTS)], SENTS[(i + 9) % len(SENTS)]])
        for i, (a, b) in enumerate(PAIRS)
    ]
    result = train(enc, examples, train_config(hard_negative_weight=0.5), output_dir=tmp_path / "o")
    st = SentenceTransformer(str(result.output_dir), device="cpu")
    loaded = SimCSEEncoder.from_pretrained(result.output_dir, device="cpu")
    assert enc.pooling == loaded.pooling == "cls"  # supervised keeps the MLP head
    np.testing.assert_allclose(st.encode(SENTS[:5]), loaded.encode(SENTS[:5]), atol=1e-5)


def test_mean_pooling_and_dropout_setting(tiny_model_dir, tmp_path):
    enc = _encoder(tiny_model_dir, pooling="mean")
    train(enc, SENTS, train_config(max_steps=2, dropout=0.3), output_dir=tmp_path / "o")
    assert enc.pooling == "mean"
    ps = {m.p for m in enc.model.modules() if isinstance(m, torch.nn.Dropout)}
    assert ps == {0.3}
    assert enc.model.config.attention_probs_dropout_prob == 0.3


def assert_resume_equals_uninterrupted_run(new_encoder, config, tmp_path) -> None:
    """A run interrupted after its step-3 checkpoint and resumed in a fresh encoder ends with
    the uninterrupted run's losses and weights (dropout on: the RNG state must come back too).
    Shared with tests/gpu, which passes encoders on its device."""
    full = new_encoder()
    ref = train(full, SENTS, config, output_dir=tmp_path / "full", eval_fn=lambda e: 0.0)

    calls = {"n": 0}

    def interrupting_eval(encoder):
        calls["n"] += 1
        if calls["n"] == 5:  # during step 5: steps 4-5 are lost, checkpoint at step 3 remains
            raise KeyboardInterrupt
        return 0.0

    with pytest.raises(KeyboardInterrupt):
        train(new_encoder(), SENTS, config, output_dir=tmp_path / "run", eval_fn=interrupting_eval)
    state = json.loads((tmp_path / "run" / "checkpoint-last" / "trainer_state.json").read_text())
    assert state["step"] == 3
    resumed_enc = new_encoder()  # a fresh process would start from the base model
    resumed = train(
        resumed_enc, SENTS, config, output_dir=tmp_path / "run", resume=True, eval_fn=lambda e: 0.0
    )
    assert resumed.global_step == 6
    np.testing.assert_allclose(resumed.losses, ref.losses, rtol=1e-5)
    for (name, a), b in zip(
        full.model.state_dict().items(), resumed_enc.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_resume_equals_uninterrupted_run(tiny_model_dir, tmp_path):
    config = train_config(max_steps=6, checkpoint_steps=3, eval_steps=1)
    assert_resume_equals_uninterrupted_run(lambda: _encoder(tiny_model_dir), config, tmp_path)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_model_dir, tmp_path):
    enc = _encoder(tiny_model_dir)
    poison = {"on": False}
    enc.model.register_forward_hook(
        lambda mod, inp, out: (
            out if not poison["on"] else type(out)(**{k: v * float("nan") for k, v in out.items()})
        )
    )

    def on_step(step, loss):
        poison["on"] = step == 3  # the 4th step's forward produces NaN

    out = tmp_path / "o"
    with pytest.raises(
        FloatingPointError, match=r"step 4: loss is nan.*checkpoint-last \(step 2\)"
    ):
        train(enc, SENTS, train_config(checkpoint_steps=2), output_dir=out, on_step=on_step)
    poison["on"] = False
    state = json.loads((out / "checkpoint-last" / "trainer_state.json").read_text())
    assert state["step"] == 2 and all(np.isfinite(state["losses"]))
    good = SimCSEEncoder.from_pretrained(out / "checkpoint-last", device="cpu")
    assert np.isfinite(good.encode(SENTS[:4])).all()
    assert not (out / "model.safetensors").exists()  # no final model from a diverged run


def grad_cache_batch():
    """Eight pairs with two hard negatives each: a batch GradCache splits into chunks of 3."""
    from simcse_rag.data import as_examples

    return as_examples(
        [(a, b, [SENTS[(i + 3) % 32], SENTS[(i + 7) % 32]]) for i, (a, b) in enumerate(PAIRS[:8])]
    )


def assert_grad_cache_matches_full_batch(make_encoder, atol):
    """GradCache in chunks of 3 gives the full batch's loss and gradients (dropout off), on
    whatever device ``make_encoder`` puts the model; shared with tests/gpu."""
    from simcse_rag.train_step import TokenCache, forward_backward

    batch = grad_cache_batch()
    grads, losses = [], []
    for mini in (None, 3):
        enc = make_encoder()
        enc.model.train()
        for m in enc.model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        config = train_config(mini_batch_size=mini, symmetric=True, hard_negative_weight=0.3)
        losses.append(forward_backward(enc, batch, TokenCache(enc, batch, 64), config, None, None))
        grads.append(
            {n: p.grad.clone() for n, p in enc.model.named_parameters() if p.grad is not None}
        )
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-3, atol=atol, msg=name)


def test_grad_cache_gives_the_full_batch_gradients(tiny_model_dir):
    assert_grad_cache_matches_full_batch(lambda: _encoder(tiny_model_dir), atol=1e-6)


def test_grad_cache_training_matches_full_batch_losses(tiny_model_dir, tmp_path):
    examples = [(a, b, SENTS[(i + 3) % len(SENTS)]) for i, (a, b) in enumerate(PAIRS)]
    runs = []
    for mini in (None, 3):
        enc = _encoder(tiny_model_dir)
        res = train(
            enc,
            examples,
            train_config(max_steps=4, dropout=0.0, mini_batch_size=mini),
            output_dir=tmp_path / f"m{mini}",
        )
        runs.append(res.losses)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-4)


def test_grad_cache_replays_dropout_masks(tiny_model_dir, tmp_path):
    enc = _encoder(tiny_model_dir)
    res = train(
        enc,
        SENTS,
        train_config(max_steps=3, dropout=0.1, mini_batch_size=2),
        output_dir=tmp_path / "o",
    )
    assert all(np.isfinite(res.losses)) and res.losses[0] > 0.01  # two views differ by dropout


def test_eval_fn_keeps_best(tiny_model_dir, tmp_path):
    scores = iter([0.1, 0.9, 0.3])
    enc = _encoder(tiny_model_dir)
    res = train(
        enc,
        SENTS,
        train_config(max_steps=6, eval_steps=2),
        output_dir=tmp_path / "o",
        eval_fn=lambda e: next(scores),
    )
    assert res.best_metric == 0.9 and res.best_step == 4
    assert json.loads((res.best_dir / "eval.json").read_text())["step"] == 4
    assert [e["step"] for e in res.evals] == [2, 4, 6]


def test_output_dir_and_config_errors(tiny_model_dir, tmp_path):
    enc = _encoder(tiny_model_dir)
    out = tmp_path / "o"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(ValueError, match="not empty.*overwrite=True"):
        train(enc, SENTS, train_config(), output_dir=out)
    with pytest.raises(ValueError, match="Cannot resume"):
        train(enc, SENTS, train_config(), output_dir=out, resume=True)
    with pytest.raises(ValueError, match="batch_size 64 is larger than the 32"):
        train(enc, SENTS, train_config(batch_size=64), output_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="Unknown pooling mode 'avg'"):
        TrainingConfig(pooling="avg")
    with pytest.raises(ValueError, match="mlp_only_train needs pooling='cls'"):
        train(
            enc, SENTS, train_config(pooling="mean", mlp_only_train=True), output_dir=tmp_path / "c"
        )
    with pytest.raises(ValueError, match="temperature"):
        TrainingConfig(temperature=0)
    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig(batch_size=1)


def test_output_dir_errors_name_the_python_arguments(tiny_model_dir, tmp_path):
    enc = _encoder(tiny_model_dir)
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ValueError) as not_empty:
        train(enc, SENTS, train_config(), output_dir=out)
    assert str(not_empty.value) == (
        f"Output folder {out} is not empty; pass resume=True to continue its run, "
        "overwrite=True to replace it, or another output_dir."
    )
    with pytest.raises(ValueError) as no_checkpoint:
        train(enc, SENTS, train_config(), output_dir=out, resume=True)
    assert str(no_checkpoint.value) == (
        f"Cannot resume: {out / 'checkpoint-last'} has no checkpoint; drop resume=True to "
        "start a new run."
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_training_in_memory_writes_nothing_and_equals_a_saved_run(
    tiny_model_dir, tmp_path, monkeypatch
):
    from simcse_rag import _io
    from simcse_rag.trainer import training_summary

    config = train_config(max_steps=4, checkpoint_steps=1, eval_steps=2)
    saved = _encoder(tiny_model_dir)
    ref = train(saved, SENTS, config, output_dir=tmp_path / "out", eval_fn=lambda e: 0.5)

    def no_writes(*args, **kwargs):
        raise AssertionError("train(output_dir=None) wrote to disk")

    for target, name in ((torch, "save"), (_io, "write_json"), (_io, "atomic_write_dir")):
        monkeypatch.setattr(target, name, no_writes)
    monkeypatch.setattr(SimCSEEncoder, "save_pretrained", no_writes)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    mem = _encoder(tiny_model_dir)
    res = train(mem, SENTS, config, output_dir=None, eval_fn=lambda e: 0.5)
    assert list(cwd.iterdir()) == []
    assert res.output_dir is None and res.last_checkpoint is None and res.best_dir is None
    assert res.losses == ref.losses and res.evals == ref.evals and res.best_step == 2
    assert mem.pooling == saved.pooling == "cls_before_pooler" and not mem.model.training
    for (name, a), b in zip(
        saved.model.state_dict().items(), mem.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert "kept in memory" in training_summary(res)


def test_training_in_memory_cannot_resume_and_names_no_checkpoint(tiny_model_dir):
    enc = _encoder(tiny_model_dir)
    with pytest.raises(ValueError, match="resume=True needs the output_dir"):
        train(enc, SENTS, train_config(), output_dir=None, resume=True)
    enc.model.register_forward_hook(
        lambda mod, inp, out: type(out)(**{k: v * float("nan") for k, v in out.items()})
    )
    with pytest.raises(FloatingPointError, match="step 1: loss is nan. No checkpoint is written"):
        train(enc, SENTS, train_config(), output_dir=None)
