#!/usr/bin/env bash
# Compile every CUDA source with nvcc (no link, no GPU needed) so CUDA code that does not compile
# cannot land. Uses the headers of the installed torch; the CPU wheel lacks the generated CUDA macros
# header, hence C10_CUDA_NO_CMAKE_CONFIGURE_FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=${VPY:-python3}
NVCC=${NVCC:-nvcc}
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "cuda-check: nvcc not found, skipping CUDA compile check"
  exit 0
fi
TORCH_DIR=$("$VPY" -c "import os, torch; print(os.path.dirname(torch.__file__))")
ABI=$("$VPY" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
shopt -s nullglob
files=(csrc/cuda/*.cu)
if [ ${#files[@]} -eq 0 ]; then echo "cuda-check: no .cu files"; exit 0; fi
fail=0
pids=()
for f in "${files[@]}"; do
  (
    "$NVCC" -c -std=c++20 -arch=sm_90 --expt-relaxed-constexpr \
      -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE -D_GLIBCXX_USE_CXX11_ABI="$ABI" -DANONFACE_WITH_CUDA=1 \
      -Icsrc -isystem "$TORCH_DIR/include" -isystem "$TORCH_DIR/include/torch/csrc/api/include" \
      "$f" -o /dev/null && echo "cuda-check: $f OK"
  ) &
  pids+=($!)
  # two at a time: CI machines have two cores
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}" || fail=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ $fail -ne 0 ]; then echo "cuda-check: FAILED" >&2; exit 1; fi
echo "cuda-check: all ${#files[@]} CUDA files compile"
