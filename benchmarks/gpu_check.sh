#!/usr/bin/env bash
# One prepared run for a lent GPU machine (see README "GPU check"): build the CUDA kernels, run the
# CUDA tests (roi and face ops, CUDA twins and CPU-vs-CUDA checks included), run compute-sanitizer
# memcheck and racecheck on a small case of every op, run the GPU benchmarks. Everything it measures
# goes under $OUT (the device tool brings that folder back); commit the figures to
# benchmarks/results/. Run from the repository root:
#     bash benchmarks/gpu_check.sh            (OUT defaults to ./gpu_out)
# The lent machine has python3 with a CUDA torch, nvcc, cmake, ninja, pybind11, scikit-build-core,
# pytest and numpy; other wheels travel in .whl/ (git-ignored locally via .git/info/exclude) and are
# installed to /tmp/site. The tests need hypothesis; prepare once on the CPU machine with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl hypothesis sortedcontainers attrs
# and pass carry=[".whl"] to the device tool.
cd "$(dirname "$0")/.."
source benchmarks/_gpu_env.sh gpu_out
status=0
# The device tool brings back at most 8 files: with PACK_TO set, everything under $OUT is packed into
# one tar there after every step, so a run stopped at its time limit still returns what it finished.
pack() { if [ -n "${PACK_TO:-}" ]; then tar -cf "$PACK_TO/gpu_results.tar" -C "$OUT" . 2>/dev/null; fi; }
step() { pack; echo; echo "=== $* ==="; }
trap pack EXIT

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"

step "build (CUDA on)"
build_anonface || exit 1
# -P: import the installed package, not the source folder (which has no compiled module)
$PY -P -c "import anonface; print(anonface.build_info())" | tee -a "$OUT/device.txt"
# link facts: the module must need the shared libstdc++, not carry a static copy (python_tests/test_build.py)
so=$($PY -P -c "import anonface._C as m; print(m.__file__)")
{ c++ --version | head -1; echo "c++ libstdc++.so: $(c++ -print-file-name=libstdc++.so)"
  env | grep -E '^(LDFLAGS|CXXFLAGS|CFLAGS|CXX|CC|CUDAHOSTCXX)=' ; grep -E "C\+\+ runtime|WARNING" "$OUT/build.log" | head
  readelf -d "$so" | grep NEEDED; echo "C++ runtime symbols defined in the module: $(nm -D --defined-only -C "$so" | grep -c -E 'std::basic_ostream|std::locale::')"
} 2>&1 | tee "$OUT/link.txt"

step "CUDA tests (ops, detector decode, pipeline, models: every test with cuda in its id)"
# -k cuda selects the CUDA twins and CPU-vs-CUDA checks. With pytest-xdist (on the lent machine) the
# tests run in worker processes, so a test that crashes its process is reported and the rest still run.
xdist=""
$PY -c "import xdist" 2>/dev/null && xdist="-n 8"
timeout 240 $PY -P -m pytest python_tests/ops python_tests/detect/test_decode.py python_tests/test_cuda_twins.py \
  python_tests/test_build.py -k "cuda or cxx_runtime" -q -p no:cacheprovider -rfEs $xdist > "$OUT/pytest_cuda.txt" 2>&1
[ $? -eq 0 ] || status=1
tail -25 "$OUT/pytest_cuda.txt"

step "errors from every op reach Python (CPU, then CUDA; a backtrace if CUDA crashes)"
$PY -P tools/cuda_error_case.py cpu > "$OUT/error_case.txt" 2>&1 || status=1
if ! timeout 60 $PY -P tools/cuda_error_case.py cuda >> "$OUT/error_case.txt" 2>&1; then
  status=1
  command -v cuda-gdb >/dev/null 2>&1 && timeout 120 cuda-gdb -batch -ex run -ex bt \
    --args $PY -P tools/cuda_error_case.py cuda >> "$OUT/error_case.txt" 2>&1
fi
tail -40 "$OUT/error_case.txt"

step "compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null 2>&1; then
  timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 $PY -P tools/cuda_sanitizer_case.py \
    > "$OUT/sanitizer_memcheck.txt" 2>&1 || status=1
  tail -5 "$OUT/sanitizer_memcheck.txt"
else
  echo "compute-sanitizer not found" | tee "$OUT/sanitizer_memcheck.txt"; status=1
fi

if [ "${GPU_CHECK_BENCH:-1}" = "0" ]; then echo; echo "gpu_check: exit status $status (benchmarks skipped)"; exit $status; fi

step "benchmarks"
timeout 110 $PY -P benchmarks/bench_gpu_pipeline.py --out "$OUT/pipeline_cuda.json" --profile "$OUT/profile_gpu_resident.txt" 2>&1 | tail -15
timeout 80 $PY -P benchmarks/bench_face_ops.py --device cuda --repeats 7 --out "$OUT/face_ops_cuda.json" 2>&1 | tail -45
timeout 60 $PY -P benchmarks/bench_roi.py --device cuda --out "$OUT" 2>&1 | tail -16

step "compute-sanitizer racecheck (face_modify uses shared memory)"
if command -v compute-sanitizer >/dev/null 2>&1; then
  timeout 70 compute-sanitizer --tool racecheck --error-exitcode 9 $PY -P tools/cuda_sanitizer_case.py \
    > "$OUT/sanitizer_racecheck.txt" 2>&1 || status=1
  tail -3 "$OUT/sanitizer_racecheck.txt"
fi

echo; echo "gpu_check: exit status $status"
exit $status
