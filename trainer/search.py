"""KerasTuner search over the separable-CNN space on a proxy budget.

    python -m trainer.search                      # 30 Bayesian trials, 4,000 images x 2 epochs
    python -m trainer.search --max-trials 40      # re-running continues the same search

Trials are scored on a hold-out carved from the training split, never on the test split.
The raw oracle state lives in tuning/runs/ (not in git); tuning/summary.csv and
tuning/summary.json are rewritten after the search and are the committed record.

Distributed search (KerasTuner's chief/worker mode): start one chief and any number of
workers with the same command and these environment variables:

    KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 KERASTUNER_TUNER_ID=chief python -m trainer.search
    KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 KERASTUNER_TUNER_ID=tuner0 python -m trainer.search

The chief only runs the oracle and writes the summary when every trial is done.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trainer import cli
from trainer.constants import TUNING_ROOT
SUMMARY_COLUMNS = ["trial_id", "status", "val_accuracy", "accuracy", "params", "macs", "seconds"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tuner", choices=("bayesian", "random"), default="bayesian")
    p.add_argument("--max-trials", type=cli.positive_int, default=30)
    p.add_argument("--epochs", type=cli.positive_int, default=2, help="epochs per trial (proxy budget)")
    p.add_argument("--subset", type=cli.positive_int, default=4000, help="training images per trial (proxy budget)")
    p.add_argument("--val-size", type=cli.positive_int, default=1000, help="hold-out images used to score a trial")
    p.add_argument("--batch-size", type=cli.positive_int, default=256)
    p.add_argument("--seed", type=cli.non_negative_int, default=0)
    p.add_argument("--threads", type=cli.non_negative_int, default=0, help="TF threads (0 = all cores)")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    p.add_argument("--tuning-dir", type=Path, default=TUNING_ROOT)
    p.add_argument("--project", type=cli.plain_name, default="sepnet", help="search name under tuning/runs/ (a plain name)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1 if sys.stdout.isatty() else 2)
    args = p.parse_args(argv)
    if args.subset < 20 or args.val_size < 10:
        p.error("--subset must be at least 20 and --val-size at least 10")
    from trainer.paths import BadPathError, check_output_dir

    try:
        check_output_dir(args.tuning_dir, "--tuning-dir")
    except BadPathError as exc:
        p.error(str(exc))
    return args


def make_tuner(args, hypermodel):
    import keras_tuner as kt

    common = dict(
        objective=kt.Objective("val_accuracy", direction="max"),
        max_trials=args.max_trials, seed=args.seed,
        # Oversized points fail in build(); tolerate runs of them instead of aborting the search.
        max_consecutive_failed_trials=25,
        directory=str(args.tuning_dir / "runs"), project_name=args.project, overwrite=False)
    if args.tuner == "bayesian":
        return _logged(kt.BayesianOptimization)(hypermodel, num_initial_points=10, **common)
    return _logged(kt.RandomSearch)(hypermodel, **common)


def _logged(tuner_class):
    """The tuner, plus one line per finished trial naming the worker that ran it."""

    class LoggedTuner(tuner_class):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            score = trial.metrics.get_last_value("val_accuracy") if trial.metrics.exists("val_accuracy") else None
            print(f"[{self.tuner_id}] trial {trial.trial_id} {trial.status}"
                  + ("" if score is None else f" val_accuracy={score:.4f}"), flush=True)

    return LoggedTuner


def trial_rows(oracle) -> list[dict]:
    rows = []
    for trial_id, trial in sorted(oracle.trials.items()):
        row = {"trial_id": trial_id, "status": str(trial.status)}
        for metric in SUMMARY_COLUMNS[2:]:
            value = trial.metrics.get_last_value(metric) if trial.metrics.exists(metric) else None
            if value is not None:
                value = int(value) if metric in ("params", "macs") else round(float(value), 5)
            row[metric] = value
        row.update({f"hp_{k}": v for k, v in trial.hyperparameters.values.items()})
        rows.append(row)
    return rows


def write_summary(rows: list[dict], tuning_dir: Path, proxy: dict) -> dict:
    from trainer.artifacts import write_csv, write_json

    tuning_dir.mkdir(parents=True, exist_ok=True)
    done = [r for r in rows if r["status"] == "COMPLETED" and r["val_accuracy"] is not None]
    best = max(done, key=lambda r: r["val_accuracy"], default=None)
    columns = SUMMARY_COLUMNS + sorted({k for r in rows for k in r if k.startswith("hp_")})
    write_csv(tuning_dir / "summary.csv", rows, columns)
    summary = {"objective": "val_accuracy on a hold-out carved from the training split",
               "proxy_budget": proxy, "trials": rows,
               "best_trial_id": best["trial_id"] if best else None}
    write_json(tuning_dir / "summary.json", summary)
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer import runtime

    runtime.configure(args.threads)

    import keras

    from trainer.data import balanced_subset, holdout_split, load_cifar10
    from trainer.hypermodel import SepNetHyperModel

    keras.utils.set_random_seed(args.seed)
    role = os.environ.get("KERASTUNER_TUNER_ID")
    proxy = {"tuner": args.tuner, "epochs": args.epochs, "train_images": args.subset,
             "val_images": args.val_size, "batch_size": args.batch_size, "seed": args.seed}
    hypermodel = SepNetHyperModel(args.epochs, args.batch_size, args.subset, args.seed)
    tuner = make_tuner(args, hypermodel)

    if role == "chief":  # serves the oracle until the workers have run every trial
        tuner.search()
    else:
        data = load_cifar10(args.data, splits=("train",))
        x_fit, y_fit, x_val, y_val = holdout_split(data.x_train, data.y_train, 0.1, seed=args.seed)
        x, y = balanced_subset(x_fit, y_fit, args.subset, seed=args.seed)
        x_val, y_val = balanced_subset(x_val, y_val, args.val_size, seed=args.seed)
        print(f"search: {args.tuner}, {args.max_trials} trials, {len(y):,} images x {args.epochs} epochs, "
              f"{len(y_val):,} hold-out images; data: {data.source}", flush=True)
        tuner.search(x, y, validation_data=(x_val, y_val), verbose=args.verbose)
        if role:  # a worker: the chief owns the summary
            return 0
    summary = write_summary(trial_rows(tuner.oracle), args.tuning_dir, proxy)
    done = sum(r["status"] == "COMPLETED" for r in summary["trials"])
    print(f"{len(summary['trials'])} trials ({done} completed); best: {summary['best_trial_id']}; "
          f"summary in {args.tuning_dir / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
