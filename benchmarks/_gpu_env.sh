# Sourced by the lent-GPU scripts (gpu_check.sh, gpu_train.sh) from the repository root, with the
# default results folder as its argument: sets OUT (results; $OUT wins), PY (the Python holding
# torch) and unbuffered output, installs the wheels carried in .whl/ (if any) to /tmp/site, and
# defines build_anonface, the CUDA build of the kernels against that machine's torch.
set -uo pipefail
OUT=${OUT:-$PWD/${1:-gpu_out}}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

# Build and install anonface with its CUDA kernels (log: $OUT/build.log): CUDA_HOME from the nvcc on
# PATH unless set, torch's libraries linked directly, else torch's CMake config. Returns 1 on failure.
build_anonface() {
  if [ -z "${CUDA_HOME:-}" ]; then
    local nvcc_path
    nvcc_path=$(readlink -f "$(command -v nvcc)")
    export CUDA_HOME=$(dirname "$(dirname "$nvcc_path")")
  fi
  export CUDACXX=$CUDA_HOME/bin/nvcc
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  export ANONFACE_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=16
  if ! $PY -m pip install -v --no-build-isolation --no-deps -Cbuild-dir=build/gpu . > "$OUT/build.log" 2>&1; then
    tail -30 "$OUT/build.log"
    echo "build with torch's libraries linked directly failed; trying torch's CMake config"
    if ! $PY -m pip install --no-build-isolation --no-deps -Cbuild-dir=build/gpu2 \
        -Ccmake.define.ANONFACE_TORCH_CMAKE=ON . >> "$OUT/build.log" 2>&1; then
      tail -40 "$OUT/build.log"; echo "BUILD FAILED"; return 1
    fi
  fi
}
