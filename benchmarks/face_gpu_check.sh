#!/usr/bin/env bash
# Device check of the fused face kernels on a lent GPU (prepared on CPU; run from the repo root):
#   1. build anonface with the CUDA kernels (sm_90),
#   2. the face tests, CUDA twins included (CPU vs CUDA, bitwise noise),
#   3. compute-sanitizer memcheck + racecheck on a small probe of every op, odd boxes included,
#   4. the benchmark on CUDA (table + JSON) and, for comparison on the same machine, the CPU one.
# Everything is written under $OUT (the device tool brings it back).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/face_gpu_out}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-16}
PY=${PY:-python3}
t0=$(date +%s)
ANONFACE_CUDA=ON $PY -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 \
  || { echo "build failed"; tail -40 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
$PY -P -c "import anonface; print(anonface.build_info())" | tee "$OUT/build_info.txt"
$PY -P -m pytest python_tests/ops/test_face_crop.py python_tests/ops/test_face_paste.py \
  python_tests/ops/test_face_modify.py python_tests/ops/test_face_props.py -q -x -p no:cacheprovider 2>&1 \
  | tail -25 | tee "$OUT/tests.log"
cat > "$OUT/probe.py" <<'PYEOF'
import torch
from anonface.ops import face_crop, face_paste, face_modify
d = "cuda"
g = torch.Generator().manual_seed(0)
for cl in (True, False):
    f = torch.randint(0, 256, (3, 37, 53, 3), generator=g, dtype=torch.uint8)
    f = (f if cl else f.permute(0, 3, 1, 2).contiguous()).to(d)
    nan, inf = float("nan"), float("inf")
    rois = torch.tensor([[0, 3, 4, 30, 33], [1, -10, -10, 70, 60], [2, 50, 30, 60, 45], [0, 5, 5, 5, 9],
                         [1, 8, 8, 3, 2], [2, nan, 1, 5, 5], [0, -inf, -inf, inf, inf], [2, 52.5, 36.2, 52.7, 36.4]],
                        device=d)
    c = face_crop(f, rois, 17)
    face_paste(f, c, rois)
    for m in ("pixelate", "blur", "solid", "noise"):
        face_modify(f, rois, m)
    ff = (f.float() / 255).requires_grad_()
    faces = c.clone().requires_grad_()
    (face_crop(ff, rois, 9).sum() + face_paste(ff, faces, rois).square().sum()).backward()
    fd = f.double() / 255
    face_crop(fd, rois, (5, 7)); face_paste(fd, c.double(), rois, mask="box")
torch.cuda.synchronize()
print("probe ok")
PYEOF
for tool in memcheck racecheck; do
  compute-sanitizer --tool $tool --error-exitcode 9 $PY -P "$OUT/probe.py" > "$OUT/$tool.log" 2>&1
  echo "compute-sanitizer $tool: rc=$? $(grep -E 'ERROR SUMMARY|probe ok' "$OUT/$tool.log" | tr '\n' ' ')"
done
$PY -P benchmarks/bench_face_ops.py --device cuda --out "$OUT/face_ops_cuda.json" 2>&1 | tee "$OUT/bench_cuda.log"
$PY -P benchmarks/bench_face_ops.py --quick --out "$OUT/face_ops_cpu_devicehost.json" 2>&1 | tee "$OUT/bench_cpu.log"
echo "total: $(( $(date +%s) - t0 )) s"
