"""Is one classifier more accurate than another on the same test images? An exact McNemar test.

    python -m trainer.compare saved_models/airnet_sep_cutout8 saved_models/airnet_dense_cutout8 ...

Compares each later model with the first. Two models scored on the same 10,000 images are paired:
most images are right, or wrong, for both, and only the images where they disagree say which is
better. Among those, if the two were equally accurate, each image would be a fair coin; the
two-sided exact binomial p-value says how unlikely the observed split is. That is sharper than
comparing two accuracies as independent samples (about 0.8 points at 90% on 10,000 images), but
it covers test-set sampling only: a second training seed can still move a model by more.
Reads each model's test_predictions.npz (written by `python -m trainer.evaluate`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer import cli
from trainer.metrics import paired_comparison
from trainer.predictions import load_predictions


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", type=Path, help="evaluated model folder the others are compared with")
    p.add_argument("models", nargs="+", type=Path, help="evaluated model folders")
    p.add_argument("--out", type=cli.output_file(".json"), help="also write the results to this JSON file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer.artifacts import write_json

    baseline = load_predictions(args.baseline)
    rows = []
    for folder in args.models:
        model = load_predictions(folder)
        for flip_tta in (False, True):
            row = {"model": folder.name, "flip_tta": flip_tta, **paired_comparison(baseline, model, flip_tta)}
            rows.append(row)
            print(f"{folder.name} vs {args.baseline.name}{' (flip TTA)' if flip_tta else ''}: "
                  f"{row['difference_points']:+.2f} points; right only here {row['only_model_right']}, "
                  f"only in the baseline {row['only_baseline_right']}; p = {row['p_value']:.4f}; "
                  f"answers differ on {row['answers_differ']:.1%} of the images")
    if args.out:
        write_json(args.out, {"baseline": args.baseline.name, "test": "exact two-sided McNemar (binomial) "
                              "on the test images where exactly one model is right",
                              "source": "test_predictions.npz of each model (python -m trainer.evaluate)",
                              "results": rows})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
