"""KerasTuner search over airbench-style separable nets on a validated proxy budget.

    python -m trainer.search                      # 40 Bayesian trials at the default proxy
    python -m trainer.search --max-trials 60      # re-running continues the same search

Trials are scored on a hold-out carved from the training split, never on the test split; the
proxy budget is the one `python -m trainer.proxy_check` validated (tuning/proxy_validation.json).
The first trial is the space's default point, the hand-designed shipped classifier. The raw
oracle state lives in tuning/runs/ (not in git), so an interrupted search resumes when the same
command runs again; tuning/summary.csv and tuning/summary.json are the committed record.

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


def parse_args(argv=None):
    from trainer.proxy import DEFAULT_PROXY, PROXIES, PROXY_BATCH_SIZE

    p = argparse.ArgumentParser(prog="python -m trainer.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tuner", choices=("bayesian", "random"), default="bayesian")
    p.add_argument("--max-trials", type=cli.positive_int, default=40)
    p.add_argument("--proxy", choices=sorted(PROXIES), default=DEFAULT_PROXY,
                   help="the proxy budget (training images x epochs); --subset and --epochs override it")
    p.add_argument("--epochs", type=cli.positive_int, help="epochs per trial")
    p.add_argument("--subset", type=cli.positive_int, help="training images per trial")
    p.add_argument("--val-size", type=cli.positive_int, help="hold-out images used to score a trial (default: all 5,000)")
    p.add_argument("--batch-size", type=cli.positive_int, default=PROXY_BATCH_SIZE)
    p.add_argument("--seed", type=cli.non_negative_int, default=0)
    p.add_argument("--threads", type=cli.non_negative_int, default=0, help="TF threads (0 = all cores)")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    p.add_argument("--tuning-dir", type=Path, default=TUNING_ROOT)
    p.add_argument("--project", type=cli.plain_name, default="airnet", help="search name under tuning/runs/ (a plain name)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1 if sys.stdout.isatty() else 2)
    args = p.parse_args(argv)
    budget = PROXIES[args.proxy]
    args.epochs = args.epochs or budget["epochs"]
    args.subset = args.subset or budget["train_images"]
    if args.subset < 20 or (args.val_size is not None and args.val_size < 10):
        p.error("--subset must be at least 20 and --val-size at least 10")
    from trainer.paths import BadPathError, check_output_dir

    try:
        check_output_dir(args.tuning_dir, "--tuning-dir")
    except BadPathError as exc:
        p.error(str(exc))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer import runtime

    runtime.configure(args.threads)

    import keras

    from trainer.hypermodel import AirNetHyperModel, recipe_from_values, within_limit
    from trainer.proxy import proxy_data
    from trainer.tuners import make_tuner, trial_rows, write_summary

    keras.utils.set_random_seed(args.seed)
    role = os.environ.get("KERASTUNER_TUNER_ID")
    proxy = {"name": args.proxy, "tuner": args.tuner, "epochs": args.epochs, "train_images": args.subset,
             "val_images": args.val_size, "batch_size": args.batch_size, "seed": args.seed}
    hypermodel = AirNetHyperModel(args.epochs, args.batch_size, args.subset, args.seed)
    tuner = make_tuner(hypermodel, args.tuner, args.max_trials, args.seed, args.tuning_dir / "runs", args.project,
                       feasible=within_limit)

    if role == "chief":  # serves the oracle until the workers have run every trial
        tuner.search()
    else:
        data = proxy_data(args.subset, args.val_size, seed=args.seed, archive=args.data)
        proxy["val_images"] = len(data.y_val)
        print(f"search: {args.tuner}, {args.max_trials} trials, {len(data.y):,} images x {args.epochs} epochs, "
              f"{len(data.y_val):,} hold-out images; data: {data.source}", flush=True)
        tuner.search(data.x, data.y, validation_data=(data.x_val, data.y_val), verbose=args.verbose)
        if role:  # a worker: the chief owns the summary
            return 0
    summary = write_summary(trial_rows(tuner.oracle), args.tuning_dir, proxy, recipe_from_values)
    done = sum(r["status"] == "COMPLETED" for r in summary["trials"])
    print(f"{len(summary['trials'])} trials ({done} completed); best: {summary['best_trial_id']}; "
          f"summary in {args.tuning_dir / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
