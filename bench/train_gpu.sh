#!/usr/bin/env bash
# Issue 10's GPU proof in one prepared command: the learning curve of the standard synthetic step on one
# H100/H200, within a 9-minute device slot. Data is the endless synthetic stream, rendered on the fly by
# the machine's cores (one render worker per core, two cores left for the trainer and the GPU feed); bf16.
# Writes bench/results/learning_curve_gpu.json (+ .png) and the best model bench/results/learn_gpu.pt.
# Target: PA-MPJPE <= 0.25x the mean-pose baseline of the held-out set.
#
#   bash bench/train_gpu.sh                       # on the device (the project's .venv installed there)
#   DEVICE=cpu MINUTES=0.5 IMG=64 WORKERS=1 BATCH=8 OUT=/tmp/gpu_smoke bash bench/train_gpu.sh   # CPU dry run
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-7.5}               # training budget; start-up and the held-out set take about a minute more
IMG=${IMG:-128}
VARIANT=${VARIANT:-fastvit_t8}
BATCH=${BATCH:-128}
LR=${LR:-2e-3}
WORKERS=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
OUT=${OUT:-bench/results}
PY=${PY:-.venv/bin/python}
AMP=bf16
[ "$DEVICE" = cpu ] && AMP=off
mkdir -p "$OUT"
if [ "$DEVICE" != cpu ]; then
  "$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("device:", torch.cuda.get_device_name(0))
PY
fi
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
exec "$PY" -m handmesh.cli bench learn --run "gpu_standard_${VARIANT}_${IMG}px" --step standard \
  --device "$DEVICE" --amp "$AMP" --img-size "$IMG" --variant "$VARIANT" --batch-size "$BATCH" --lr "$LR" \
  --warmup-images $(( BATCH * 100 )) --images 5000000 --minutes "$MINUTES" --workers "$WORKERS" --threads 2 \
  --milestones 10000,25000,50000,75000,100000,150000,200000,300000,400000,600000,800000 \
  --eval-images 500 --json "$OUT/learning_curve_gpu.json" --png "$OUT/learning_curve_gpu.png" \
  --checkpoint "$OUT/learn_gpu.pt" "$@"
