#!/usr/bin/env bash
# The GPU checks still open for issue 6, as one prepared script for a lent GPU machine (about 8 minutes).
#
# The lent machines have torch, transformers, tokenizers, safetensors, accelerate and peft, but not
# diffusers, PyAV or ftfy: carry their wheels in the git-ignored .whl/ folder (see docs/performance.md):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl diffusers==0.42.1 importlib_metadata av==18.1.0 ftfy wcwidth
# and run it from the repository root with .whl carried; figures and logs land in $OUT (default ./out).
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

# 1. kernel floor (the bound on any exact speed-up) and fused QKV on top of --fast, 1.3B at 81x480x832
timeout 260 python3 benchmarks/gpu_step.py --no-reference --no-batched --offload-modes "" \
  --extra fused_qkv --out "$OUT/gpu_step_1.3b.json" >"$OUT/gpu_step_1.3b.log" 2>&1
tail -n 20 "$OUT/gpu_step_1.3b.log"

# 2. the whole 1.3B pipeline (UMT5-XXL, transformer, VAE decode) per offload mode: does group fit 8 GB?
timeout 260 python3 benchmarks/gpu_pipeline_memory.py --modes none,group,group+tiling \
  --out "$OUT/pipeline_memory_1.3b.json" >"$OUT/pipeline_memory_1.3b.log" 2>&1
tail -n 8 "$OUT/pipeline_memory_1.3b.log"
