"""One recipe's training run: its data split, the resumable fit, and the saved model folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from trainer.artifacts import atomic_dir, cpu_has_bf16, machine_summary, write_json
from trainer.checkpoints import EpochLog, ResumableBackup, stop_before_export_requested
from trainer.constants import CONFIG_FILENAME, FLOAT_FILENAME, KERAS_FILENAME, TRAINING_FILENAME
from trainer.data import balanced_subset, holdout_split, load_cifar10
from trainer.recipes import RECIPE_KEYS
from trainer.runtime import set_precision


class Split(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    source: str


def load_split(recipe: dict, archive=None) -> Split:
    """The recipe's training images (hold-out and subset applied, seeded) and its validation images."""
    data = load_cifar10(archive, splits=("train",))
    x, y, x_val, y_val = data.x_train, data.y_train, None, None
    if recipe["holdout"] > 0:
        x, y, x_val, y_val = holdout_split(x, y, recipe["holdout"], seed=recipe["seed"])
    x, y = balanced_subset(x, y, recipe["subset"], seed=recipe["seed"])
    if x_val is not None and recipe["subset"]:  # keep validation proportionate on smoke runs
        x_val, y_val = balanced_subset(x_val, y_val, max(recipe["subset"] // 5, 10), seed=recipe["seed"])
    return Split(x, y, x_val, y_val, data.source)


def fit_recipe(recipe: dict, split: Split, ckpt_dir: Path, verbose: int = 2) -> tuple[keras.Model, EpochLog]:
    """Trains the recipe's model, resuming from ckpt_dir; returns the student and its epoch log.

    The checkpoint stays in ckpt_dir when this returns: the caller removes it once the model is saved.
    """
    from trainer.macs import count_macs
    from trainer.models import build_model, check_param_limit
    from trainer.training import compile_classifier, eval_dataset, steps_per_epoch, train_dataset

    keras.utils.set_random_seed(recipe["seed"])
    if recipe["precision"] == "bfloat16" and not cpu_has_bf16():
        print("warning: this CPU has no bfloat16 instructions (AMX or AVX-512 BF16); bfloat16 "
              "is emulated there and may run slower than float32", file=sys.stderr, flush=True)
    set_precision(recipe["precision"])
    student = build_model(recipe["arch"], recipe["hyperparameters"], name=recipe["name"])
    params = check_param_limit(student)
    model = student
    if recipe["teacher_models"]:
        from trainer.distillation import OnlineDistiller, ensemble_teacher

        model = OnlineDistiller(student, ensemble_teacher(recipe["teacher_models"]), recipe["teacher_weight"],
                                recipe["teacher_temperature"])
    total_steps = steps_per_epoch(len(split.y), recipe["batch_size"]) * recipe["epochs"]
    compile_classifier(model, recipe["hyperparameters"], total_steps)
    print(f"{recipe['name']}: {recipe['arch']}, {params:,} params, {count_macs(student) / 1e6:.1f}M MACs; "
          f"{len(split.y):,} training images x {recipe['epochs']} epochs; data: {split.source}", flush=True)

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log = EpochLog(ckpt_dir / "epochs.json")
    model.fit(train_dataset(split.x, split.y, recipe["batch_size"], recipe["seed"], recipe["cutout"]),
              validation_data=None if split.x_val is None else eval_dataset(split.x_val, split.y_val),
              epochs=recipe["epochs"], callbacks=[ResumableBackup(ckpt_dir), log], verbose=verbose)
    if stop_before_export_requested():
        raise KeyboardInterrupt
    return student, log


def save_model_folder(student: keras.Model, recipe: dict, target: Path, split: Split, log: EpochLog,
                      threads: int = 0) -> None:
    """model.keras, model.tflite, config.json (the complete recipe) and training.json, in one rename."""
    from trainer.export import to_tflite
    from trainer.macs import count_macs
    from trainer.models import build_model

    # Save a fresh, uncompiled float32 twin: no optimizer state (half the file), nothing custom to
    # load, and the same float32 model whatever precision trained it.
    set_precision("float32")
    clean = build_model(recipe["arch"], recipe["hyperparameters"], name=recipe["name"])
    clean.set_weights(student.get_weights())
    with atomic_dir(target) as tmp:
        clean.save(tmp / KERAS_FILENAME)
        (tmp / FLOAT_FILENAME).write_bytes(to_tflite(clean))
        write_json(tmp / CONFIG_FILENAME, {
            **{k: recipe[k] for k in RECIPE_KEYS}, "trial_id": recipe.get("trial_id"),
            "params": clean.count_params(), "macs": count_macs(clean),
            "data_source": split.source, "train_images": len(split.y)})
        write_json(tmp / TRAINING_FILENAME, {
            "training_time_s": round(log.total_seconds(), 1), "epochs_run": len(log.epochs),
            "threads": threads or "all", "history": log.history(), "machine": machine_summary()})
