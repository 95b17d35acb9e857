#!/usr/bin/env bash
# Proof of learning: synthesize FreiHAND-layout data, train fastvit_t8 on this
# machine for TRAIN_MINUTES, score the trained model and the mean-pose baseline on the synthetic
# evaluation split, and write bench/results/train_synthetic.json + train_synthetic_curves.png.
#
#   bench/train_synthetic.sh                                   # the real run: ~20 min of training
#   TRAIN_MINUTES=1 N_TRAIN=64 N_EVAL=16 RESULTS=/tmp/r bench/train_synthetic.sh   # a 1-minute smoke run
#
# Run it on a quiet machine: the images/s it records are only meaningful without other load.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}" HF_HUB_OFFLINE=1

exec "$PY" -m handmesh.cli bench train \
    --minutes "${TRAIN_MINUTES:-20}" \
    --train "${N_TRAIN:-2000}" \
    --eval "${N_EVAL:-200}" \
    --variant "${VARIANT:-fastvit_t8}" \
    --img-size "${IMG_SIZE:-64}" \
    --batch-size "${BATCH:-16}" \
    --lr "${LR:-1e-3}" \
    --workers "${WORKERS:-1}" \
    --work "${WORK:-bench/tmp/train_synthetic}" \
    --results "${RESULTS:-bench/results}" \
    "$@"
