#!/usr/bin/env bash
# The training levers of the text-to-image stage 2, each at one fixed budget (one pass over a
# class-balanced 9,600-image subset of the training split), judged by the same quick evaluation.
# Each lever is added on top of the ones before it (cumulative). Usage: bash tuning/text2image/run_levers.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=tuning/text2image/levers
run() {  # name, flags...
  name=$1; shift
  if [ ! -f "$OUT/$name.json" ]; then
    $PY -m trainer.diffusion.train --limit 9600 --warmup 40 --checkpoint-every 1000 --out "checkpoints/levers/$name" \
        --checkpoint-dir "checkpoints/levers/ckpt_$name" "$@"
    $PY -m trainer.diffusion.evaluate --model "checkpoints/levers/$name" --quick --out "$OUT/$name.json"
    cp "checkpoints/levers/$name/training.json" "$OUT/$name.training.json"
  fi
}
run 0_baseline          --no-pooled-text --batch-size 64 --lr 1e-3 --snr-gamma 0
run 1_pooled_text       --batch-size 64 --lr 1e-3 --snr-gamma 0
run 2_batch32           --batch-size 32 --lr 7e-4 --snr-gamma 0
run 3_min_snr           --batch-size 32 --lr 7e-4 --snr-gamma 5
