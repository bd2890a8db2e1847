#!/usr/bin/env bash
# The learned anonymizer's GPU recipe, one command for a lent GPU machine: train the paper-sized M
# against SphereFace-20 D (configs/paper_gpu.yaml, time-bounded), export M, and bring back the run's log
# and the exported weights (split into parts under the device tool's 16 MB per-file limit).
# Prepare on the CPU machine (the data folder is git-ignored and research-only; never commit it):
#     python tools/pack_gpu_train_data.py --out .gpudata/train_data
# then run with the device tool, carry [".gpudata/train_data"]:
#     bash benchmarks/gpu_train.sh
# Back on the CPU machine, join and judge it with the evaluation (dlib and its models are not on the
# GPU machine):
#     cat gpu_train_out/m.pt.part* > runs/paper_gpu_m.pt
#     python -m anonface.eval --folds 6 --methods learned=runs/paper_gpu_m.pt --only privacy -o reports/paper_gpu
# Environment: OUT (results folder, default ./gpu_train_out), DEVICE (default cuda), TRAIN_SET (extra
# space-separated --set overrides, e.g. for a smoke test on the CPU).
cd "$(dirname "$0")/.."
source benchmarks/_gpu_env.sh gpu_train_out
export ANONFACE_DATA=${ANONFACE_DATA:-$PWD/.gpudata/train_data}
if [ ! -f "$ANONFACE_DATA/lfw_pairs/pairs.txt" ]; then
  echo "no training data at $ANONFACE_DATA (run tools/pack_gpu_train_data.py and carry it)"; exit 2
fi
# Build the kernels if this machine has no anonface yet (the training needs roi_align and face_paste).
if ! $PY -P -c "import anonface._C" 2>/dev/null; then
  echo "=== build ==="
  build_anonface || exit 1
fi
sets=()
for s in ${TRAIN_SET:-}; do sets+=(--set "$s"); done
run=runs/paper_gpu_recipe
echo "=== train ==="
t0=$(date +%s)
$PY -P -m anonface.train --config configs/paper_gpu.yaml --device "${DEVICE:-cuda}" --resume none \
  --set "out_dir=$run" "${sets[@]}" 2>&1 | tee "$OUT/train.log" | grep -E "step [0-9]+0+/|stopp|saved|Error|error" | tail -20
rc=${PIPESTATUS[0]}
echo "train: exit $rc after $(( $(date +%s) - t0 )) s"
[ $rc -eq 0 ] || exit $rc
cp "$run/log.jsonl" "$run/config.yaml" "$OUT/" 2>/dev/null
echo "=== export ==="
$PY -P -m anonface.train.export "$run/last.pt" "$OUT/m.pt" || exit 1
split -b 15m -d "$OUT/m.pt" "$OUT/m.pt.part" && rm "$OUT/m.pt"
ls -la "$OUT"
echo "gpu_train: done in $(( $(date +%s) - t0 )) s"
