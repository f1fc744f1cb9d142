"""Crash safety and loading safety.

* A save killed with SIGKILL (in a real subprocess) while it writes, or between the renames of the
  swap, leaves the previous index loadable and unchanged.
* Loading validates manifest, counts and dimensions (corrupted folders give one-line errors).
* No pickle anywhere in the package; ``trust_remote_code`` stays off unless asked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from simcse_rag import _io
from simcse_rag.schema import Passage

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL tests need POSIX")


def run_until(script: str, marker: str, *args: str, timeout: float = 120) -> None:
    """Run ``script`` in a fresh Python, wait until it prints ``marker``, then SIGKILL it."""
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            if line.strip() == marker:
                break
            if time.monotonic() > deadline:
                break
        else:
            raise AssertionError(f"child ended before {marker!r}: {proc.stderr.read()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- atomic_write_dir
_SLOW_WRITER = """
import sys, time
from pathlib import Path
from simcse_rag import _io

def writer(folder):
    (folder / "manifest.json").write_text('{"version": 2}')
    for i in range(50):
        (folder / f"part{i}.bin").write_bytes(b"x" * 4096)
        if i == 5:
            print("WRITING", flush=True)
            time.sleep(60)

_io.atomic_write_dir(Path(sys.argv[1]), writer)
"""

_SWAP_CRASH = """
import os, sys, time
from pathlib import Path
from simcse_rag import _io

_io._exchange = lambda a, b: False   # force the two-rename fallback (non-Linux systems)
real_replace = os.replace
def replace(src, dst):
    real_replace(src, dst)
    print("BETWEEN_RENAMES", flush=True)   # old moved aside, new not yet in place
    time.sleep(60)
os.replace = replace

def writer(folder):
    (folder / "manifest.json").write_text('{"version": 2}')

_io.atomic_write_dir(Path(sys.argv[1]), writer)
"""


def _write_v1(target: Path) -> None:
    _io.atomic_write_dir(target, lambda f: (f / "manifest.json").write_text('{"version": 1}'))


def test_sigkill_while_writing_keeps_previous_dir(tmp_path):
    target = tmp_path / "index"
    _write_v1(target)
    run_until(_SLOW_WRITER, "WRITING", str(target))
    assert json.loads((target / "manifest.json").read_text()) == {"version": 1}
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json"]
    _io.atomic_write_dir(target, lambda f: (f / "manifest.json").write_text('{"version": 3}'))
    assert json.loads((target / "manifest.json").read_text()) == {"version": 3}


def test_sigkill_between_renames_is_recovered(tmp_path):
    target = tmp_path / "index"
    _write_v1(target)
    run_until(_SWAP_CRASH, "BETWEEN_RENAMES", str(target))
    assert not target.exists()  # the crash really hit the window
    _io.recover_dir(target)
    assert json.loads((target / "manifest.json").read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir() if ".old-" in p.name] == []


def test_linux_swap_is_a_single_atomic_exchange(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux-only")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    assert _io._exchange(a, b)
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


# ----------------------------------------------------------------------------- real indexes
_DENSE_CRASH = """
import sys, time
import numpy as np
from simcse_rag.index.dense import DenseIndex
from simcse_rag import _io

index = DenseIndex.load(sys.argv[1])
rng = np.random.default_rng(1)
index.add([f"new{i}" for i in range(500)], rng.standard_normal((500, 16)).astype("float32"))
real = _io.write_json
def slow_write_json(path, data):
    real(path, data)
    print("WRITING", flush=True)
    time.sleep(60)
_io.write_json = slow_write_json
index.save(sys.argv[1])
"""


def test_sigkill_during_dense_index_save_keeps_previous_index(tmp_path):
    from simcse_rag.index.dense import DenseIndex

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((200, 16)).astype(np.float32)
    index = DenseIndex(16, "flat")
    index.add([f"d{i}" for i in range(200)], vectors)
    target = index.save(tmp_path / "dense")
    before = index.search(vectors[:5], 5)
    run_until(_DENSE_CRASH, "WRITING", str(target))
    loaded = DenseIndex.load(target)
    assert len(loaded) == 200 and "new0" not in loaded
    after = loaded.search(vectors[:5], 5)
    assert after[0].tolist() == before[0].tolist()
    np.testing.assert_allclose(after[1], before[1])


_HYBRID_CRASH = """
import sys, time
from simcse_rag import _io
from simcse_rag.encoder import SimCSEEncoder
from simcse_rag.index.hybrid import HybridRetriever
from simcse_rag.schema import Passage

encoder = SimCSEEncoder.from_pretrained(sys.argv[2], device="cpu")
retriever = HybridRetriever.load(sys.argv[1], encoder)
retriever.add([Passage(f"new{i}", f"extra passage number {i} about tax", {}) for i in range(50)])
retriever.delete(["p0"])
real = _io.write_json
def slow_write_json(path, data):
    real(path, data)
    print("WRITING", flush=True)
    time.sleep(60)
_io.write_json = slow_write_json
retriever.save(sys.argv[1])
"""


def test_sigkill_during_hybrid_save_keeps_previous_index(tmp_path, tiny_model_dir, tiny_encoder):
    from simcse_rag.index.hybrid import HybridRetriever

    passages = [
        Passage(f"p{i}", f"passage {i} about fever in children and cough", {}) for i in range(40)
    ]
    retriever = HybridRetriever.from_passages(passages, tiny_encoder)
    target = retriever.save(tmp_path / "hybrid")
    before = [h.id for h in retriever.search("fever cough", k=10)]
    run_until(_HYBRID_CRASH, "WRITING", str(target), str(tiny_model_dir))
    loaded = HybridRetriever.load(target, tiny_encoder)
    assert len(loaded) == 40 and "p0" in loaded and "new0" not in loaded
    assert [h.id for h in loaded.search("fever cough", k=10)] == before


# ----------------------------------------------------------------------------- load validation
def test_hybrid_load_validates_manifest_counts_and_dims(tmp_path, tiny_encoder):
    from simcse_rag.index.hybrid import HybridRetriever

    passages = [Passage(f"p{i}", f"text number {i}", {}) for i in range(10)]
    good = HybridRetriever.from_passages(passages, tiny_encoder).save(tmp_path / "good")

    def broken(name: str, edit) -> Path:
        folder = tmp_path / name
        shutil.copytree(good, folder)
        edit(folder)
        return folder

    def set_manifest(folder: Path, fn) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        fn(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest))

    cases = {
        "no_manifest": (lambda f: (f / "manifest.json").unlink(), "manifest"),
        "bad_json": (lambda f: (f / "manifest.json").write_text("{oops"), "corrupted|unreadable"),
        "version": (
            lambda f: set_manifest(f, lambda m: m.update(format_version=99)),
            "format version",
        ),
        "count": (
            lambda f: set_manifest(f, lambda m: m["counts"].update(passages=11)),
            "11|count|passages",
        ),
        "dropped_passage": (
            lambda f: (f / "passages.jsonl").write_text(
                "".join((f / "passages.jsonl").read_text().splitlines(keepends=True)[:-1])
            ),
            "passages|vectors|count",
        ),
        "dense_dim": (
            lambda f: (f / "dense" / "dense.json").write_text(
                (f / "dense" / "dense.json").read_text().replace('"dim": 32', '"dim": 16')
            ),
            "dim|16|32|vectors",
        ),
    }
    for name, (edit, pattern) in cases.items():
        folder = broken(name, edit)
        with pytest.raises(ValueError, match=re.compile(pattern, re.I)) as info:
            HybridRetriever.load(folder, tiny_encoder)
        assert "\n" not in str(info.value).strip(), name


# ------------------------------------------------------------------- no pickle / remote code
_PICKLE_PATTERNS = (
    re.compile(r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|cloudpickle)\b", re.M),
    re.compile(r"allow_pickle\s*=\s*True"),
    re.compile(r"\bpickle\.loads?\("),
)


def test_no_pickle_anywhere():
    sources = [
        *REPO.joinpath("simcse_rag").rglob("*.py"),
        *REPO.joinpath("integrations").rglob("*.py"),
    ]
    assert sources
    offenders = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.name}: {p.pattern}" for p in _PICKLE_PATTERNS if p.search(text)]
        for call in re.finditer(r"torch\.load\(([^()]*(\([^()]*\))?[^()]*)\)", text):
            if "weights_only=True" not in call.group(1) and "**" not in call.group(1):
                offenders.append(f"{path.name}: torch.load without weights_only=True")
    assert offenders == []


def test_trust_remote_code_is_off_unless_asked(tmp_path, tiny_model_dir):
    from simcse_rag.encoder import SimCSEEncoder

    model = tmp_path / "model-with-code"
    shutil.copytree(tiny_model_dir, model)
    marker = tmp_path / "remote-code-ran"
    (model / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class EvilConfig(BertConfig):\n    model_type = 'bert'\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n"
    )
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(config))

    with contextlib.suppress(ValueError):  # refusing is fine too; running the code is not
        SimCSEEncoder.from_pretrained(model, device="cpu")
    assert not marker.exists()

    # Positive control: asking for it does run the folder's code (whatever happens after).
    with contextlib.suppress(Exception):
        SimCSEEncoder.from_pretrained(model, device="cpu", trust_remote_code=True)
    assert marker.exists()
