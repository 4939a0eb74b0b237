"""Every metric of a saved classifier, recomputed on each run.

    python -m trainer.evaluate saved_models/<name>

On the CIFAR-10 test split: top-1 accuracy (plain, with flip test-time augmentation, and with
airbench's 6-view flip-and-shift TTA), per-class accuracy, precision/recall/F1, the confusion
matrix (JSON and PNG); parameter count, MACs, file sizes; CPU latency in ms per image on ONE
thread (median and p90, Keras through a tf.function and TFLite; flip TTA in both, 6-view TTA in
TFLite) measured in a child process; throughput at batch 256 on all cores.
When `python -m trainer.quantize` has written model_int8.tflite, its accuracy on the whole test
split, its agreement with the Keras model, its size and its latency are reported too.
Writes metrics.json, report.md, confusion_matrix.png and test_predictions.npz beside the model
(or into --out). A smoke run on part of the test split (--limit) never writes beside the model:
it prints its figures, and writes them only into an --out folder of their own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer import cli
from trainer.constants import CONFUSION_FILENAME, METRICS_FILENAME, PREDICTIONS_FILENAME, REPORT_FILENAME


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path, help="a folder written by trainer.train, e.g. saved_models/<name>")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    p.add_argument("--runs", type=cli.positive_int, default=200,
                   help="timed batch-1 calls per latency figure (>= 200 for reports)")
    p.add_argument("--warmup", type=cli.non_negative_int, default=20)
    p.add_argument("--limit", type=cli.positive_int,
                   help="evaluate only the first N test images (smoke tests): nothing is written unless --out")
    p.add_argument("--out", type=Path, help="write the result files here instead of beside the model")
    args = p.parse_args(argv)
    if args.limit is not None and args.out is not None and args.out.resolve() == args.model_dir.resolve():
        p.error("--limit results cannot go into the model folder: its metrics are for the whole test split")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.out is not None and not args.out.is_dir():
        raise FileNotFoundError(f"--out {args.out} is not a folder")
    out_dir = args.out if args.out is not None else (None if args.limit else args.model_dir)
    from trainer.evaluation import evaluate, write_results
    from trainer.tta import MULTICROP_VIEWS

    metrics = evaluate(args.model_dir, args.data, args.limit, args.runs, args.warmup,
                       log=lambda line: print(line, flush=True))
    name = metrics["name"]
    if out_dir is not None:
        write_results(out_dir, metrics)

    lat = metrics["latency_ms"]
    print(f"\n{name}: accuracy {metrics['accuracy'] * 100:.2f}% (flip TTA {metrics['accuracy_flip_tta'] * 100:.2f}%, "
          f"{MULTICROP_VIEWS}-view TTA {metrics['accuracy_multicrop_tta'] * 100:.2f}%), "
          f"{metrics['params']:,} params, {metrics['macs'] / 1e6:.1f}M MACs\n"
          f"latency, 1 thread: Keras {lat['keras']['median']:.2f} ms (p90 {lat['keras']['p90']:.2f}), "
          f"TFLite {lat['tflite']['median']:.2f} ms (p90 {lat['tflite']['p90']:.2f}); "
          f"throughput {metrics['throughput_img_s']:.0f} img/s at batch 256")
    int8 = metrics.get("int8")
    if int8:
        print(f"int8 TFLite: accuracy {int8['accuracy'] * 100:.2f}%, agrees with Keras on "
              f"{int8['agreement_with_keras'] * 100:.1f}%, {lat['tflite_int8']['median']:.2f} ms median, 1 thread")
    if out_dir is None:
        print(f"smoke run on {metrics['test_images']:,} images: nothing written (give --out DIR to keep the files)")
    else:
        print(f"wrote {out_dir}/{METRICS_FILENAME}, {REPORT_FILENAME}, {CONFUSION_FILENAME}, {PREDICTIONS_FILENAME}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
