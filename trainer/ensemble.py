"""Test accuracy of an average of saved classifiers: how good a distillation teacher they would make.

    python -m trainer.ensemble saved_models/airnet_sep saved_models/resnet20 saved_models/sepnet_hybrid

Reads each model's test_predictions.npz (written by `python -m trainer.evaluate`), averages the
softmax outputs, with and without each model's flipped-image outputs, and reports every subset of
two or more models. Together the models break the 1M-parameter limit, so an ensemble is not a
deliverable; it measures what a teacher built from them could pass on.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from trainer import cli
from trainer.metrics import ensemble_accuracy
from trainer.predictions import load_predictions


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.ensemble", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path, help="evaluated model folders (at least two)")
    p.add_argument("--out", type=cli.output_file(".json"), help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if len(args.models) < 2:
        p.error("an ensemble needs at least two models")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer.artifacts import read_json, write_json

    preds = {d.name: load_predictions(d) for d in args.models}
    params = {d.name: read_json(d / "metrics.json").get("params") for d in args.models}
    rows = []
    for size in range(2, len(preds) + 1):
        for names in itertools.combinations(preds, size):
            row = {"models": list(names), "params": sum(params[n] or 0 for n in names),
                   **ensemble_accuracy([preds[n] for n in names])}
            rows.append(row)
            print(f"{' + '.join(names)}: {100 * row['accuracy']:.2f}% "
                  f"(flip TTA {100 * row['accuracy_flip_tta']:.2f}%), {row['params']:,} params")
    if args.out:
        write_json(args.out, {"source": "test_predictions.npz of each model (python -m trainer.evaluate)",
                              "results": rows})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
