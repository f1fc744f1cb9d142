#!/usr/bin/env bash
# One GPU check for a lent CUDA machine, run from the repository root:
#   bash .whl/run_gpu.sh        (this file, copied next to the wheels it installs)
# 1. installs the wheels in .whl/ (the dependencies the machine lacks: faiss-cpu, bm25s,
#    PyStemmer, jieba, rank-bm25, pytest) into /tmp/site, without network;
# 2. runs the CUDA tests (pytest -m gpu tests/gpu) -> $OUT/gpu.log, $OUT/gpu-junit.xml;
# 3. times training of a MiniLM-sized random BERT on the GPU in fp32 / bf16 / fp16 / bf16 +
#    GradCache -> $OUT/throughput.md, $OUT/throughput.json.
# The package is not installed there: everything imports from the working tree via PYTHONPATH.
# Exits with pytest's status. Bounded by timeouts to about 4 minutes.
set -u
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
WHEELS="${WHEELS:-.whl}"
SITE="${SITE:-/tmp/site}"

echo "== install wheels from $WHEELS"
if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl; then
  echo "pip failed; unpacking the wheels directly"
  mkdir -p "$SITE"
  for w in "$WHEELS"/*.whl; do python3 -m zipfile -e "$w" "$SITE"; done
fi

export PYTHONPATH="$SITE:$PWD:$PWD/integrations"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export CUBLAS_WORKSPACE_CONFIG=:4096:8  # deterministic cuBLAS (the resume tests compare runs)

{
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  python3 - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("torch", "transformers", "sentence_transformers", "numpy", "scipy", "faiss",
             "bm25s", "Stemmer", "jieba", "rank_bm25", "onnxruntime", "pytest"):
    try:
        mod = importlib.import_module(name)
        print(f"{name} {getattr(mod, '__version__', '?')} from {mod.__file__}")
    except Exception as exc:  # report every missing piece, not only the first
        print(f"{name} MISSING: {exc!r}")
import torch
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
      "bf16", torch.cuda.is_available() and torch.cuda.is_bf16_supported())
EOF
} 2>&1 | tee "$OUT/env.txt"

echo "== CUDA tests"
# -o addopts="": the project's addopts need pytest-socket, which the machine lacks.
timeout 200 python3 -m pytest -p no:cacheprovider -o addopts="" -m gpu tests/gpu \
  -v -rfEs --durations=8 --junitxml="$OUT/gpu-junit.xml" 2>&1 | tee "$OUT/gpu.log"
rc=${PIPESTATUS[0]}
echo "pytest exit status: $rc" | tee -a "$OUT/gpu.log"

echo "== training throughput"
timeout 120 python3 benchmarks/gpu_throughput.py --steps 40 --warmup 8 \
  --json "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.md"
echo "throughput exit status: ${PIPESTATUS[0]}" | tee -a "$OUT/throughput.md"
exit "$rc"
