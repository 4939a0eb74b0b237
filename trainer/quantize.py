"""int8 TFLite export of a saved classifier, calibrated on the training split.

    python -m trainer.quantize saved_models/<name>
    python -m trainer.evaluate saved_models/<name>     # then scores and times model_int8.tflite too

Writes model_int8.tflite beside model.tflite. Every op runs in int8; the input and output stay
float32, so it takes the same raw 0-255 pixels as the float model. Calibration images are a
class-balanced sample of the CIFAR-10 training split (the test split is only for reporting).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trainer import cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.quantize", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path, help="a folder written by trainer.train, e.g. saved_models/<name>")
    p.add_argument("--calibration", type=cli.positive_int, default=1000,
                   help="training images used to calibrate activation ranges (default: 1000)")
    p.add_argument("--seed", type=cli.non_negative_int, default=0)
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    args = p.parse_args(argv)
    if args.calibration < 10:
        p.error("--calibration must be at least 10 images (one per class)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer.artifacts import atomic_write_bytes
    from trainer.data import balanced_subset, load_cifar10
    from trainer.constants import FLOAT_FILENAME, INT8_FILENAME
    from trainer.export import to_tflite_int8
    from trainer.models import load_classifier

    model = load_classifier(args.model_dir)  # clear error on a missing or corrupt model first
    data = load_cifar10(args.data, splits=("train",))
    images, _ = balanced_subset(data.x_train, data.y_train, args.calibration, seed=args.seed)
    start = time.perf_counter()
    flatbuffer = to_tflite_int8(model, images)
    out = args.model_dir / INT8_FILENAME
    atomic_write_bytes(out, flatbuffer)
    float_path = args.model_dir / FLOAT_FILENAME
    ratio = f", {float_path.stat().st_size / len(flatbuffer):.1f}x smaller than {FLOAT_FILENAME}" if float_path.is_file() else ""
    print(f"wrote {out}: {len(flatbuffer) / 1e6:.2f} MB{ratio}; calibrated on {len(images):,} training images "
          f"from {data.source} in {time.perf_counter() - start:.0f} s.\n"
          f"Score and time it: python -m trainer.evaluate {args.model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
