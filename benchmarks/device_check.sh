#!/usr/bin/env bash
# The open GPU checks (issues 6 and 18) as one prepared script for a lent GPU machine: under 9 minutes.
#
#   bash benchmarks/device_check.sh           on the GPU machine, from the repository root
#   bash benchmarks/device_check.sh --tiny    the same steps on tiny random models on CPU (a dry run, ~2 min)
#
# What it measures, full-size random-weight transformers at 81x480x832 (docs/performance.md):
#   1. 1.3B, one guided step: diffusers' defaults, --fast (cuDNN attention + compile), --fast + FA4,
#      --fast + fused QKV, the --cache step time when a step is skipped, --fp8 (torchao), the kernel floor,
#      and each one's relative error against an fp32 reference step;
#   2. the whole 1.3B pipeline (UMT5-XXL, transformer, VAE decode) per offload mode: peak memory.
#
# The lent machines have torch, transformers, tokenizers, safetensors, accelerate and peft, but not
# diffusers, PyAV, ftfy or torchao: carry their wheels in the git-ignored .whl/ folder (about 46 MB):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl diffusers==0.42.1 importlib_metadata av==18.1.0 ftfy wcwidth torchao
# FlashAttention-4 (flash-attn-4 with nvidia-cutlass-dsl and its 92 MB CUDA 13 libraries, apache-tvm-ffi,
# torch-c-dlpack-ext, quack-kernels, einops: about 100 MB) does not fit a 64 MB carry: where it is not
# importable, the FA4 row records why and the rest runs. Figures and logs land in $OUT (default ./out).
set -u
OUT=${OUT:-out}
TINY=""
[ "${1:-}" = "--tiny" ] && TINY="--tiny"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
if [ -z "$TINY" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
  MODES=none,model,group,group+tiling
else
  MODES=none  # offload needs an accelerator
fi

# 1. every mode on one step of the 1.3B transformer (fp32 reference last: about 20 s on an H200)
timeout 330 python3 benchmarks/gpu_step.py $TINY --no-batched --offload-modes "" \
  --extra fa4,fused_qkv,cache,fp8 --out "$OUT/gpu_step_1.3b.json" >"$OUT/gpu_step_1.3b.log" 2>&1
echo "gpu_step exit $?"
tail -n 24 "$OUT/gpu_step_1.3b.log"

# 2. the whole 1.3B pipeline per offload mode: does group offload fit 8 GB?
timeout 200 python3 benchmarks/gpu_pipeline_memory.py $TINY --modes "$MODES" \
  --out "$OUT/pipeline_memory_1.3b.json" >"$OUT/pipeline_memory_1.3b.log" 2>&1
echo "gpu_pipeline_memory exit $?"
tail -n 8 "$OUT/pipeline_memory_1.3b.log"
