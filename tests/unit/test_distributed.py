"""Multi-process training on CPU: 2 processes (gloo) match 1 process on the same global batch.

Spawned with ``torch.multiprocessing`` (a file rendezvous; gloo talks over loopback from C++,
outside pytest-socket's reach, and nothing leaves the machine).

* ``gather_batch`` + ``simcse_loss`` + ``average_gradients``: same loss and same parameter
  gradients as one process over the whole batch, with uneven shards and hard negatives.
* ``train()`` under ``torch.distributed``: the same per-step losses as a single-process run
  (dropout off so both runs are deterministic), and the same final weights.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from simcse_rag.losses import simcse_loss

WORLD = 2
pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)


def _init(rank: int, rendezvous: str) -> None:
    import torch.distributed as dist

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)


def _toy_problem(batch: int = 7, dim: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(dim, dim)
    with torch.no_grad():
        model.weight.copy_(torch.randn(dim, dim, generator=g))
        model.bias.copy_(torch.randn(dim, generator=g))
    anchors = torch.randn(batch, dim, generator=g)
    positives = anchors + 0.1 * torch.randn(batch, dim, generator=g)
    negatives = torch.randn(batch + 2, dim, generator=g)
    owner = torch.tensor([i % batch for i in range(batch + 2)])  # uneven: some anchors own 2
    return model, anchors, positives, negatives, owner


def _loss_and_grads(model, anchors, positives, negatives, owner):
    loss = simcse_loss(
        model(anchors),
        model(positives),
        model(negatives),
        negative_owner=owner,
        temperature=0.1,
        hard_negative_weight=0.5,
        symmetric=True,
    )
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


def _shutdown() -> None:
    # Wait for every rank before tearing the group down: a rank that exits while its peer's gloo
    # threads still talk to it can abort with "terminate called without an active exception".
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    # The results are on disk; skip interpreter teardown, where a still-joinable C++ thread of
    # torch (seen ~1 run in 10 on CPU/gloo) aborts the process after the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _gather_worker(rank: int, rendezvous: str, out: str) -> None:
    from simcse_rag import distributed

    _init(rank, rendezvous)
    model, anchors, positives, negatives, owner = _toy_problem()
    idx = distributed.shard(list(range(anchors.shape[0])))  # 4 / 3 anchors: uneven shards
    mine = [i for i, o in enumerate(owner.tolist()) if o in idx]
    local_owner = torch.tensor([idx.index(owner[i].item()) for i in mine])
    reps = [model(anchors[idx]), model(positives[idx]), model(negatives[mine])]
    (a, p, n), glob_owner = distributed.gather_batch(reps, local_owner)
    loss = simcse_loss(
        a,
        p,
        n,
        negative_owner=glob_owner,
        temperature=0.1,
        hard_negative_weight=0.5,
        symmetric=True,
    )
    loss.backward()
    distributed.average_gradients(model)
    grads = [p.grad.tolist() for p in model.parameters()]
    Path(out, f"rank{rank}.json").write_text(json.dumps({"loss": loss.item(), "grads": grads}))
    _shutdown()


def test_gathered_loss_and_gradients_match_one_process(tmp_path):
    """The negatives are not in shard order, so the owners must be re-indexed correctly too."""
    model, anchors, positives, negatives, owner = _toy_problem()
    # One process sees negatives grouped by shard (rank 0's anchors' negatives first).
    idx0 = list(range(4))
    order = [i for i, o in enumerate(owner.tolist()) if o in idx0] + [
        i for i, o in enumerate(owner.tolist()) if o not in idx0
    ]
    want_loss, want_grads = _loss_and_grads(
        model, anchors, positives, negatives[order], owner[order]
    )

    torch.multiprocessing.spawn(
        _gather_worker, args=(str(tmp_path / "rdv"), str(tmp_path)), nprocs=WORLD, join=True
    )
    for rank in range(WORLD):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["loss"] == pytest.approx(want_loss, rel=1e-5)
        for g, w in zip(got["grads"], want_grads, strict=True):
            torch.testing.assert_close(torch.tensor(g), w, rtol=1e-4, atol=1e-5)


def test_helpers_are_identity_in_one_process():
    from simcse_rag import distributed

    x = torch.randn(3, 4, requires_grad=True)
    assert not distributed.is_distributed()
    assert (
        distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main_process()
    )
    assert distributed.shard([1, 2, 3]) == [1, 2, 3]
    assert distributed.gather_with_grad(x) is x
    reps, owner = distributed.gather_batch([x, x], None)
    assert reps[0] is x and owner is None


# ----------------------------------------------------------------------------- trainer
PAIRS = [
    ("fever in children", "child has a high temperature"),
    ("bank loan interest", "interest rate on a loan"),
    ("tax on dividends", "dividend income tax"),
    ("cough at night", "night time coughing"),
    ("insulin dose", "how much insulin to take"),
    ("stock market", "share prices today"),
    ("baby sleep", "infant sleeping hours"),
    ("skin rash", "red itchy skin"),
    ("asthma attack", "breathing trouble asthma"),
    ("heart blood pressure", "high blood pressure heart"),
    ("water intake", "how much water to drink"),
    ("company revenue", "total sales of the company"),
]


def _config():
    from simcse_rag.trainer import TrainingConfig

    return TrainingConfig(
        batch_size=6, max_steps=3, learning_rate=5e-4, dropout=0.0, seed=3, checkpoint_steps=100
    )


def _train_worker(rank: int, rendezvous: str, model_dir: str, out: str) -> None:
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.trainer import train

    _init(rank, rendezvous)
    encoder = SimCSEEncoder.from_pretrained(model_dir, device="cpu")
    result = train(encoder, PAIRS, _config(), output_dir=Path(out) / "ddp")
    Path(out, f"train{rank}.json").write_text(json.dumps({"losses": result.losses}))
    _shutdown()


def test_two_process_training_matches_single_process(tmp_path, tiny_model_dir):
    from simcse_rag.encoder import SimCSEEncoder
    from simcse_rag.trainer import train

    torch.set_num_threads(1)
    single = SimCSEEncoder.from_pretrained(tiny_model_dir, device="cpu")
    want = train(single, PAIRS, _config(), output_dir=tmp_path / "single").losses

    torch.multiprocessing.spawn(
        _train_worker,
        args=(str(tmp_path / "rdv"), str(tiny_model_dir), str(tmp_path)),
        nprocs=WORLD,
        join=True,
    )
    for rank in range(WORLD):
        got = json.loads((tmp_path / f"train{rank}.json").read_text())["losses"]
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
    # Only rank 0 wrote the model, and it equals the single-process result.
    ddp = SimCSEEncoder.from_pretrained(tmp_path / "ddp", device="cpu")
    texts = [a for a, _ in PAIRS]
    torch.testing.assert_close(
        torch.from_numpy(ddp.encode(texts)),
        torch.from_numpy(single.encode(texts)),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.slow
def test_torchrun_cli_trains_with_two_processes(tmp_path, tiny_model_dir):
    """``torchrun --nproc-per-node 2 -m simcse_rag train sup ...`` end to end (CPU, gloo)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    data = tmp_path / "pairs.tsv"
    data.write_text("anchor\tpositive\n" + "\n".join(f"{a}\t{p}" for a, p in PAIRS) + "\n")
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "-m", "simcse_rag"]
    cmd += ["train", "sup", "--data", str(data), "--out", str(out), "--model", str(tiny_model_dir)]
    cmd += ["--max-steps", "2", "--batch-size", "6", "--dropout", "0", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("final loss") == 1  # one summary, from rank 0
    assert (out / "config.json").is_file()
