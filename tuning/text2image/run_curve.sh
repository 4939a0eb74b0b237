#!/usr/bin/env bash
# The learning curve across epochs: the shipped one-epoch recipe (batch 32, lr 7e-4, 200 warm-up
# steps, min-SNR-5, pooled text; its cosine schedule spans the whole run) trained for 2 and 4 epochs,
# each judged by the same quick evaluation as the within-epoch curve (guidance 4).
# Usage: bash tuning/text2image/run_curve.sh [EPOCHS...]   (default: 2 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=tuning/text2image/curve
for epochs in "${@:-2 4}"; do
  for e in $epochs; do
    if [ ! -f "$OUT/e$e.json" ]; then
      $PY -m trainer.diffusion.train --epochs "$e" --out "checkpoints/curve/text2image_e$e" \
          --checkpoint-dir "checkpoints/curve/ckpt_e$e" --checkpoint-every 200
      $PY -m trainer.diffusion.evaluate --model "checkpoints/curve/text2image_e$e" --quick --guidance 4 \
          --out "$OUT/e$e.json"
      cp "checkpoints/curve/text2image_e$e/training.json" "$OUT/e$e.training.json"
    fi
  done
done
