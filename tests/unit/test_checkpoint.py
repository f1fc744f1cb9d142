"""Checkpoints: save / resume round trip, resume checks, final model folder, divergence message."""

from __future__ import annotations

import json

import pytest
import torch

from simcse_rag import checkpoint
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.testing import build_tiny_bert
from simcse_rag.train_step import Optimization
from simcse_rag.trainer import TrainingConfig, train

SENTS = [f"{w} number {i}" for i, w in enumerate(("fever", "cough", "loan", "tax") * 3)]
CONFIG = TrainingConfig(max_steps=2, batch_size=4, learning_rate=1e-3, checkpoint_steps=1, seed=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def trained(tiny_model_dir, tmp_path):
    """A 2-step run's encoder and its output folder (checkpoint-last at step 2)."""
    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    train(encoder, SENTS, CONFIG, output_dir=tmp_path / "run")
    return encoder, tmp_path / "run"


def test_load_restores_weights_optimizer_schedule_rng_and_state(tiny_model_dir, trained):
    encoder, out = trained
    folder = out / checkpoint.LAST_CHECKPOINT
    fresh = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    opt = Optimization.create(fresh.model, CONFIG, 2, fresh.device)
    torch.manual_seed(123)  # the checkpoint's RNG state must replace this one
    state = checkpoint.load_checkpoint(folder, fresh, opt, CONFIG)
    assert (state.step, state.total_steps, len(state.losses)) == (2, 2, 2)
    assert state.losses == json.loads((folder / checkpoint.STATE_FILE).read_text())["losses"]
    saved_rng = torch.load(folder / "rng.pt", weights_only=True)["cpu"]
    assert torch.equal(torch.get_rng_state(), saved_rng)
    assert opt.optimizer.state_dict()["state"][0]["step"].item() == 2
    assert opt.scheduler.last_epoch == 2
    for (name, a), b in zip(
        encoder.model.state_dict().items(), fresh.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_resume_with_another_model_is_a_clear_error(trained, tmp_path):
    _, out = trained
    other = build_tiny_bert(tmp_path / "wider", hidden_size=48, num_heads=2)
    encoder = SimCSEEncoder.from_pretrained(other, device="cpu")
    with pytest.raises(ValueError, match=r"does not match the model .*resume with the same") as err:
        train(encoder, SENTS, CONFIG, output_dir=out, resume=True)
    assert str(err.value).endswith("; resume with the same model the run started from.")
    assert "--" not in str(err.value)  # a Python caller has no --model to pass


def test_corrupt_trainer_state_is_named(tiny_model_dir, trained):
    _, out = trained
    state_file = out / checkpoint.LAST_CHECKPOINT / checkpoint.STATE_FILE
    state_file.write_text(json.dumps({"step": 2, "learning_rate": 1.0}))
    encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    with pytest.raises(ValueError, match="trainer_state.json is not a trainer state"):
        train(encoder, SENTS, CONFIG, output_dir=out, resume=True)


def test_final_model_drops_module_folders_of_an_earlier_pooling(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    state = checkpoint.TrainerState(step=1)
    cls_encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu", pooling="cls")
    checkpoint.save_final(out, cls_encoder, state, CONFIG)
    assert (out / "2_Dense").is_dir() and (out / "3_Normalize").is_dir()
    mean_encoder = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu", pooling="mean")
    checkpoint.save_final(out, mean_encoder, state, CONFIG)
    assert not (out / "2_Dense").exists() and not (out / "3_Normalize").exists()
    assert SimCSEEncoder.from_pretrained(out, device="cpu").pooling == "mean"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_diverged_error_names_the_last_good_checkpoint(trained, tmp_path):
    _, out = trained
    message = str(checkpoint.diverged_error("loss is nan", 3, out))
    assert "step 3: loss is nan" in message and "checkpoint-last (step 2)" in message
    assert message.endswith("then resume with resume=True.") and "--resume" not in message
    assert "none was written yet" in str(checkpoint.diverged_error("x", 1, tmp_path / "new"))
    assert "No checkpoint is written" in str(checkpoint.diverged_error("x", 1, None))
