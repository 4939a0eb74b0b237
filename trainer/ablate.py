"""One-change-at-a-time ablations of a training recipe, scored on the training split's hold-out.

    python -m trainer.ablate                                # the shipped recipe, 5,000 images x 6 epochs
    python -m trainer.ablate --recipe resnet20 --variants base cutout8 --subset 2000 --epochs 1

Each variant is one `python -m trainer.train` run (a child process, so thread settings and Keras
state start clean) on a class-balanced subset of the fitting images; its final weights are then
scored on the whole hold-out (10% of the training split by default, never the test split).
Results go to tuning/ablations.{json,csv}; variants already there with the same budget are
skipped, so an interrupted run picks up where it stopped. Results at another budget are never
overwritten: use another --tuning-dir, or delete them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainer import cli
from trainer.ablations import VARIANTS, variants_for
from trainer.constants import REPO_ROOT, TUNING_ROOT

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.ablate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", "--config", dest="recipe",
                   help="base recipe, as trainer.train --recipe takes it (default: the shipped classifier's)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                   help="default: every variant that applies to the config's architecture")
    p.add_argument("--subset", type=cli.positive_int, default=5000, help="training images per variant")
    p.add_argument("--epochs", type=cli.positive_int, default=6)
    p.add_argument("--holdout", type=float, default=0.1, help="fraction of the training split scored")
    p.add_argument("--seed", type=cli.non_negative_int, default=0)
    p.add_argument("--threads", type=cli.non_negative_int, default=0, help="TF threads per run (0 = all cores)")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    p.add_argument("--tuning-dir", type=Path, default=TUNING_ROOT)
    args = p.parse_args(argv)
    if args.subset < 20:
        p.error("--subset must be at least 20")
    if not 0.0 < args.holdout < 1.0:
        p.error("--holdout must be in (0, 1)")
    return args


def holdout_accuracy(model_dir: Path, x_val, y_val) -> float:
    import numpy as np

    from trainer.models import load_classifier

    model = load_classifier(model_dir)
    probs = model.predict(x_val.astype(np.float32), batch_size=500, verbose=0)
    return float((probs.argmax(axis=1) == y_val).mean())


def run_variant(name: str, args, base: dict, x_val, y_val, workdir: Path) -> dict:
    from trainer.artifacts import read_json, write_json

    change, flags, overrides = VARIANTS[name]
    config = workdir / f"{name}.json"
    write_json(config, {**base, "name": name, "hyperparameters": {**base["hyperparameters"], **overrides}})
    cmd = [sys.executable, "-m", "trainer.train", "--recipe", str(config), "--name", name,
           "--epochs", str(args.epochs), "--subset", str(args.subset), "--holdout", str(args.holdout),
           "--seed", str(args.seed), "--threads", str(args.threads), "--verbose", "2",
           "--out", str(workdir / "models"), "--checkpoints", str(workdir / "checkpoints"), *flags]
    if args.data:
        cmd += ["--data", args.data]
    started = time.perf_counter()
    if subprocess.run(cmd, cwd=REPO_ROOT).returncode != 0:
        raise ValueError(f"variant {name}: trainer.train failed (its message is above); "
                         "variants measured so far are kept")
    model_dir = workdir / "models" / name
    saved = read_json(model_dir / "config.json")
    history = read_json(model_dir / "training.json")["history"]
    return {"variant": name, "change": change,
            "holdout_accuracy": round(holdout_accuracy(model_dir, x_val, y_val), 4),
            "train_accuracy_last_epoch": history["accuracy"][-1], "params": saved["params"],
            "train_seconds": round(time.perf_counter() - started, 1)}


def write_results(rows: list[dict], budget: dict, tuning_dir: Path) -> None:
    from trainer.artifacts import write_csv, write_json

    tuning_dir.mkdir(parents=True, exist_ok=True)
    write_json(tuning_dir / "ablations.json", {"budget": budget, "results": rows})
    write_csv(tuning_dir / "ablations.csv", rows, list(rows[0]))


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer import recipes
    from trainer.artifacts import read_json

    base = recipes.load(args.recipe, args.tuning_dir)
    variants = variants_for(base["arch"], args.variants)
    from trainer.architectures import check_config_param_limit

    for name in variants:  # every variant refused before the first one trains
        check_config_param_limit(base["arch"], {**base["hyperparameters"], **VARIANTS[name][2]}, name)
    from trainer import runtime
    from trainer.data import holdout_split, load_cifar10

    runtime.configure(args.threads)
    budget = {"config": base["name"], "subset": args.subset, "epochs": args.epochs,
              "holdout": args.holdout, "seed": args.seed}
    path = args.tuning_dir / "ablations.json"
    previous = read_json(path) if path.is_file() else {}
    if previous and previous.get("budget") != budget:
        raise ValueError(f"{path} holds ablations at another budget ({previous.get('budget')}); "
                         "pass another --tuning-dir or delete it")
    rows = previous.get("results", [])

    data = load_cifar10(args.data, splits=("train",))
    *_, x_val, y_val = holdout_split(data.x_train, data.y_train, args.holdout, seed=args.seed)
    print(f"ablations of {base['name']}: {args.subset:,} images x {args.epochs} epochs, "
          f"scored on {len(y_val):,} hold-out images; data: {data.source}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ablate-") as tmp:
        for name in variants:
            if any(r["variant"] == name for r in rows):
                print(f"{name}: already measured, skipped", flush=True)
                continue
            rows.append(run_variant(name, args, base, x_val, y_val, Path(tmp)))
            print(f"{name}: hold-out accuracy {rows[-1]['holdout_accuracy']:.4f}", flush=True)
            write_results(rows, budget, args.tuning_dir)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
