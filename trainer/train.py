"""Train one classifier from a recipe and save it to saved_models/<name>/.

    python -m trainer.train                               # the shipped classifier's recipe
    python -m trainer.train --recipe resnet20             # a recipe of tuning/recipes/
    python -m trainer.train --recipe saved_models/resnet20/config.json   # any saved config replays
    python -m trainer.train --recipe best                 # the best trial of tuning/summary.json
    python -m trainer.train --epochs 1 --subset 2000 --name smoke --out /tmp/models
    python -m trainer.train --recipe tuning/airnet_dense.json --cutout 8 --teacher-models saved_models/A saved_models/B
                                                          # distilled online: the models average on every fresh view

A flag given on the command line overrides the recipe's value; everything else comes from the
recipe, and the saved config.json records the complete recipe that ran.
Interrupted runs resume from the last finished epoch when the same command runs again
(checkpoints/<name>/, kept until the model folder is saved).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from trainer import cli
from trainer.constants import CHECKPOINTS_ROOT, MODELS_ROOT, TUNING_ROOT

INTERRUPTED = "interrupted; run the same command again to resume from the last finished epoch"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", "--config", dest="recipe",
                   help="a recipe name in tuning/recipes/, a recipe or saved config.json file, best (the "
                        "search's best trial) or default (default: the shipped classifier's recipe)")
    p.add_argument("--name", type=cli.plain_name, help="folder name under --out (default: the recipe's name)")
    # Recipe settings: None means "as the recipe says".
    p.add_argument("--epochs", type=cli.positive_int)
    p.add_argument("--batch-size", type=cli.positive_int)
    p.add_argument("--subset", type=cli.positive_int, help="train on a class-balanced subset of this many images")
    p.add_argument("--holdout", type=cli.fraction,
                   help="fraction of the training split held out for validation (0 = train on all 50,000)")
    p.add_argument("--cutout", type=cli.non_negative_int,
                   help="cutout: black out pixels within N//2 of a random centre, an N+1 square for even N (0 = off)")
    p.add_argument("--precision", choices=("float32", "bfloat16"),
                   help="bfloat16: Keras mixed precision (bfloat16 math, float32 weights), faster on CPUs "
                        "with AMX or AVX-512 BF16; the saved model is float32 either way")
    p.add_argument("--seed", type=cli.non_negative_int)
    p.add_argument("--teacher-models", type=Path, nargs="+", metavar="MODEL_DIR",
                   help="distil online: these saved classifiers, averaged, give every augmented batch its targets")
    p.add_argument("--teacher-weight", type=float, help="share of the teacher in each target (recipe default 0.9)")
    p.add_argument("--teacher-temperature", type=float, help="Hinton's temperature (recipe default 1)")
    # How this run executes; not part of the recipe.
    p.add_argument("--threads", type=cli.non_negative_int, default=0, help="TF threads (0 = all cores)")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    p.add_argument("--tuning-dir", type=Path, default=TUNING_ROOT, help="where --recipe best finds the search summary")
    p.add_argument("--out", type=Path, default=MODELS_ROOT)
    p.add_argument("--checkpoints", type=Path, default=CHECKPOINTS_ROOT)
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1 if sys.stdout.isatty() else 2,
                   help="Keras progress: 1 = bar, 2 = one line per epoch")
    p.add_argument("--tf-logs", action="store_true", help="show TensorFlow's own log lines")
    args = p.parse_args(argv)
    if args.subset is not None and args.subset < 20:
        p.error("--subset must be at least 20 images")
    if args.teacher_weight is not None and not 0.0 <= args.teacher_weight <= 1.0:
        p.error("--teacher-weight must be in [0, 1]")
    if args.teacher_temperature is not None and args.teacher_temperature <= 0:
        p.error("--teacher-temperature must be positive")
    return args


def prepare(args) -> tuple[dict, Path, Path]:
    """The recipe with the flags put in, and the model and checkpoint folders: everything a bad
    input can be refused on, checked before any data is read or any weight allocated."""
    from trainer import recipes
    from trainer.artifacts import check_replaceable, clean_stale
    from trainer.architectures import check_config_param_limit
    from trainer.paths import check_model_folder

    recipe = recipes.with_overrides(
        recipes.load(args.recipe, args.tuning_dir), name=args.name, epochs=args.epochs,
        batch_size=args.batch_size, subset=args.subset, holdout=args.holdout, cutout=args.cutout,
        precision=args.precision, seed=args.seed,
        teacher_models=[str(d) for d in args.teacher_models] if args.teacher_models else None,
        teacher_weight=args.teacher_weight, teacher_temperature=args.teacher_temperature)
    check_config_param_limit(recipe["arch"], recipe["hyperparameters"], recipe["name"])
    if recipe["teacher_models"]:
        recipes.check_teachers(recipe["teacher_models"])
    target = check_replaceable(check_model_folder(args.out, recipe["name"]))
    clean_stale(target)
    return recipe, target, check_model_folder(args.checkpoints, recipe["name"], "the checkpoint name")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tf_logs:
        from trainer.runtime import set_verbose

        set_verbose()
    recipe, target, ckpt_dir = prepare(args)
    from trainer import runtime

    runtime.configure(args.threads)
    from trainer.fitting import fit_recipe, load_split, save_model_folder

    split = load_split(recipe, args.data)
    student, log = fit_recipe(recipe, split, ckpt_dir, args.verbose)
    save_model_folder(student, recipe, target, split, log, args.threads)
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # only now: the model folder is in place
    print(f"saved {target} (training time {log.total_seconds() / 60:.1f} min); "
          f"next: python -m trainer.evaluate {target}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, interrupted=INTERRUPTED))
