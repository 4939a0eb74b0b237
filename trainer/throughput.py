"""Training throughput (images per second) of candidate configs on this machine, before a long run.

    python -m trainer.throughput best tuning/sepnet_hybrid.json resnet20 --out tuning/throughput.json
    python -m trainer.throughput tuning/airnet_dense.json --precision float32 bfloat16

Each config trains on random pixels through the real input pipeline and optimiser, in one epoch:
the first WARMUP_BATCHES batches (graph tracing, oneDNN and tf.data warm-up) are not timed, the
next --batches are, batch by batch, so the figure is the steady-state speed of a long run and not
the start-up cost of short epochs. Random pixels cost the same FLOPs as CIFAR-10, so this measures
speed only; run it with nothing else on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trainer import cli
from trainer.constants import TUNING_ROOT

WARMUP_BATCHES = 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", help="recipes as trainer.train --recipe takes them: names, JSON files, best, default")
    p.add_argument("--batch-size", type=cli.positive_int, default=256)
    p.add_argument("--batches", type=cli.positive_int, default=30, help="timed batches, after the warm-up ones")
    p.add_argument("--threads", type=cli.non_negative_int, default=0, help="TF threads (0 = all cores)")
    p.add_argument("--precision", nargs="+", choices=("float32", "bfloat16"), default=["float32"],
                   help="measure each config at each of these (as trainer.train --precision)")
    p.add_argument("--tuning-dir", type=Path, default=TUNING_ROOT)
    p.add_argument("--out", type=cli.output_file(".json"), help="also write the results to this JSON file")
    return p.parse_args(argv)


def measure(spec: dict, batch_size: int, batches: int, precision: str = "float32") -> dict:
    import keras
    import numpy as np

    from trainer.macs import count_macs
    from trainer.models import build_model, check_param_limit
    from trainer.runtime import set_precision
    from trainer.training import compile_classifier, train_dataset

    set_precision(precision)
    model = build_model(spec["arch"], spec["hyperparameters"])
    params = check_param_limit(model)
    total = WARMUP_BATCHES + batches
    compile_classifier(model, spec["hyperparameters"], total_steps=total)
    rng = np.random.default_rng(0)
    n = batch_size * total
    ds = train_dataset(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                       rng.integers(0, 10, n), batch_size, seed=0)
    batch_ends = []
    clock = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batch_ends.append(time.perf_counter()))
    model.fit(ds, epochs=1, verbose=0, callbacks=[clock])
    timed = batch_ends[WARMUP_BATCHES - 1:]  # from the end of the last warm-up batch to the end
    images_per_second = batch_size * (len(timed) - 1) / (timed[-1] - timed[0])
    return {"params": params, "macs": count_macs(model), "images_per_second": round(images_per_second, 1),
            "epoch_minutes_50k": round(50_000 / images_per_second / 60, 2)}


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer import recipes
    from trainer.architectures import check_config_param_limit

    specs = [recipes.load(config, args.tuning_dir) for config in args.configs]
    for spec in specs:  # every config refused before the first is measured
        check_config_param_limit(spec["arch"], spec["hyperparameters"], spec["name"])
    from trainer import runtime

    runtime.configure(args.threads)
    from trainer.artifacts import machine_summary, write_json

    results = []
    for config, spec in zip(args.configs, specs):
        for precision in args.precision:
            row = {"config": config, "name": spec["name"], "precision": precision,
                   **measure(spec, args.batch_size, args.batches, precision)}
            results.append(row)
            print(f"{config} ({precision}): {row['params']:,} params, {row['macs'] / 1e6:.1f}M MACs, "
                  f"{row['images_per_second']:.0f} img/s (~{row['epoch_minutes_50k']:.1f} min per 50k-image "
                  f"epoch)", flush=True)
    if args.out:
        write_json(args.out, {"batch_size": args.batch_size, "threads": args.threads or "all",
                              "machine": machine_summary(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
