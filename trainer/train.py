"""Train one classifier to its full budget and save it to saved_models/<name>/.

    python -m trainer.train                       # the best trial of tuning/summary.json
    python -m trainer.train --config resnet20     # the ResNet-20 peer
    python -m trainer.train --epochs 1 --subset 2000 --name smoke
    python -m trainer.train --config tuning/airnet_sep.json --teacher tuning/distillation/teacher_probs.npz
                                                  # distilled (trainer.distill writes the teacher)
    python -m trainer.train --config tuning/airnet_sep.json --cutout 8 --teacher tuning/distillation/teacher_views.npz
                                                  # distilled on stored views (trainer.distill --views)
    python -m trainer.train --config tuning/airnet_dense.json --cutout 8 --teacher-models saved_models/A saved_models/B
                                                  # distilled online: the models average on every fresh view

Interrupted runs resume from the last finished epoch when the same command runs again
(keras.callbacks.BackupAndRestore under checkpoints/<name>/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from trainer import cli
from trainer.artifacts import write_json
from trainer.data import REPO_ROOT

DEFAULT_TUNING = REPO_ROOT / "tuning"
DEFAULT_OUT = REPO_ROOT / "saved_models"
DEFAULT_CHECKPOINTS = REPO_ROOT / "checkpoints"
# ResNet-20 trains with the same recipe as the searched nets, at its paper's peak LR.
RESNET20_HP = {"learning_rate": 0.2, "weight_decay": 5e-4, "label_smoothing": 0.1}
WHITENING_IMAGES = 5000  # airbench's sample for the whitened stem's patch statistics


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="best",
                   help="best (the search's best trial), default (DEFAULT_HP), resnet20, "
                        "or a JSON file with {'arch', 'hyperparameters'} (default: best)")
    p.add_argument("--name", help="folder name under --out (default: from the config)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--subset", type=int, help="train on a class-balanced subset of this many images")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="fraction of the training split held out for validation (0 = train on all 50,000)")
    p.add_argument("--cutout", type=int, default=0,
                   help="cutout: black out pixels within N//2 of a random centre, an N+1 square for even N (0 = off)")
    p.add_argument("--alternating-flip", action="store_true",
                   help="flip each image on alternate epochs (airbench) instead of a coin toss per epoch")
    p.add_argument("--ema", action="store_true", help="keep an exponential moving average of the weights")
    p.add_argument("--lookahead", action="store_true",
                   help="Lookahead in airbench's form: pull the weights to a slow average every 5 steps")
    p.add_argument("--teacher", type=Path,
                   help="distil: a teacher file of `python -m trainer.distill` (soft labels for the training "
                        "split; a file with views replaces the random augmentation with its stored views)")
    p.add_argument("--teacher-models", type=Path, nargs="+", metavar="MODEL_DIR",
                   help="distil online: these saved classifiers, averaged, give every augmented batch its targets "
                        "inside each training step (fresh views every epoch; their forward passes cost time)")
    p.add_argument("--teacher-weight", type=float, default=0.9,
                   help="share of the teacher in each image's target, the rest its one-hot label (default 0.9)")
    p.add_argument("--teacher-temperature", type=float, default=1.0,
                   help="Hinton's temperature on the teacher's probabilities (default 1: as stored)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: Keras mixed precision (bfloat16 math, float32 weights), faster on CPUs "
                        "with AMX or AVX-512 BF16; the saved model is float32 either way (default float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="TF threads (0 = all cores)")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    p.add_argument("--tuning-dir", type=Path, default=DEFAULT_TUNING)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS)
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1 if sys.stdout.isatty() else 2,
                   help="Keras progress: 1 = bar, 2 = one line per epoch")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    if args.subset is not None and args.subset < 10 * 2:
        p.error("--subset must be at least 20 images")
    if not 0.0 <= args.holdout < 1.0:
        p.error("--holdout must be in [0, 1)")
    if not 0.0 <= args.teacher_weight <= 1.0:
        p.error("--teacher-weight must be in [0, 1]")
    if args.teacher_temperature <= 0:
        p.error("--teacher-temperature must be positive")
    if args.teacher and args.teacher_models:
        p.error("--teacher (a stored teacher file) and --teacher-models (an online teacher) exclude each other")
    return args


def default_hyperparameters(arch: str) -> dict:
    """What a config file's "hyperparameters" are merged into, per architecture."""
    from trainer.models import AIRNET_HP, ARCHITECTURES, DEFAULT_HP

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return dict({"sepnet": DEFAULT_HP, "airnet": AIRNET_HP}.get(arch, RESNET20_HP))


def resolve_config(config: str, tuning_dir: Path) -> dict:
    """Turns --config into {"arch", "hyperparameters", "name"}."""
    from trainer.models import DEFAULT_HP

    if config == "best":
        from trainer.search import best_trial

        trial = best_trial(tuning_dir)
        return {"arch": "sepnet", "hyperparameters": {**DEFAULT_HP, **trial["hyperparameters"]},
                "name": "sepnet_best", "trial_id": trial["trial_id"]}
    if config == "default":
        return {"arch": "sepnet", "hyperparameters": dict(DEFAULT_HP), "name": "sepnet_default"}
    if config == "resnet20":
        return {"arch": "resnet20", "hyperparameters": dict(RESNET20_HP), "name": "resnet20"}
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"--config {config!r} is neither best/default/resnet20 nor a JSON file")
    from trainer.artifacts import read_json

    spec = read_json(path)
    if "arch" not in spec:
        raise ValueError(f"{path} must hold an 'arch' key (sepnet, airnet or resnet20)")
    hp = {**default_hyperparameters(spec["arch"]), **spec.get("hyperparameters", {})}
    return {"arch": spec["arch"], "hyperparameters": hp, "name": spec.get("name", path.stem)}


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer.training import configure_threads

    configure_threads(args.threads)

    from trainer.artifacts import atomic_dir, cpu_has_bf16, machine_summary
    from trainer.data import balanced_subset, holdout_split, load_cifar10
    from trainer.export import FLOAT_FILENAME, to_tflite
    from trainer.macs import count_macs
    from trainer.models import build_model, check_param_limit
    from trainer.training import (FlipEpoch, Lookahead, compile_classifier, eval_dataset, set_precision,
                                  steps_per_epoch, train_dataset)

    spec = resolve_config(args.config, args.tuning_dir)
    name = args.name or spec["name"]
    hp = spec["hyperparameters"]
    keras.utils.set_random_seed(args.seed)

    data = load_cifar10(args.data, splits=("train",))
    # Split indices, not pixels, so per-image extras (the teacher's soft labels) follow each image.
    fit, y = np.arange(len(data.y_train)), data.y_train
    val = y_val = None
    if args.holdout > 0:
        fit, y, val, y_val = holdout_split(fit, y, args.holdout, seed=args.seed)
    fit, y = balanced_subset(fit, y, args.subset, seed=args.seed)
    if val is not None and args.subset:  # keep validation proportionate on smoke runs
        val, y_val = balanced_subset(val, y_val, max(args.subset // 5, 10), seed=args.seed)
    x = data.x_train[fit]
    x_val = None if val is None else data.x_train[val]
    targets = views = teacher = None
    if args.teacher:
        from trainer.distill import load_teacher, soft_labels

        teacher = load_teacher(args.teacher, data.y_train)
        if teacher.views is not None:
            # The student must see exactly what the teacher saw: same cutout, flips as stored.
            if teacher.cutout != args.cutout:
                raise ValueError(f"{args.teacher} holds views drawn with cutout {teacher.cutout}; "
                                 f"train with --cutout {teacher.cutout} (got {args.cutout})")
            if args.alternating_flip:
                raise ValueError(f"{args.teacher} holds views with their own flips; drop --alternating-flip")
            views = teacher.views[fit]
        targets = soft_labels(teacher.probs[fit], y, args.teacher_weight, args.teacher_temperature)

    if args.precision == "bfloat16" and not cpu_has_bf16():
        print("warning: this CPU has no bfloat16 instructions (AMX or AVX-512 BF16); --precision bfloat16 "
              "is emulated there and may run slower than float32", file=sys.stderr, flush=True)
    set_precision(args.precision)
    student = build_model(spec["arch"], hp, name=name)
    params = check_param_limit(student)
    if hp.get("whiten_stem"):
        from trainer.models import init_whitening_stem

        init_whitening_stem(student, x[:WHITENING_IMAGES])
    macs = count_macs(student)
    model = student
    if args.teacher_models:
        from trainer.distill import OnlineDistiller, ensemble_teacher

        model = OnlineDistiller(student, ensemble_teacher(args.teacher_models), args.teacher_weight,
                                args.teacher_temperature)
    total_steps = steps_per_epoch(len(y), args.batch_size) * args.epochs
    compile_classifier(model, hp, total_steps, ema=args.ema)
    print(f"{name}: {spec['arch']}, {params:,} params, {macs / 1e6:.1f}M MACs; "
          f"{len(y):,} training images x {args.epochs} epochs; data: {data.source}", flush=True)

    ckpt_dir = args.checkpoints / name
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log = EpochLog(ckpt_dir / "epochs.json")
    callbacks = [keras.callbacks.BackupAndRestore(str(ckpt_dir / "backup")), log]
    if args.lookahead:
        callbacks.append(Lookahead(total_steps))
    flip_epoch = None
    if args.alternating_flip:
        callbacks.append(FlipEpoch())
        flip_epoch = callbacks[-1].epoch
    model.fit(
        train_dataset(x, y, args.batch_size, args.seed, args.cutout, targets, flip_epoch, views),
        validation_data=None if x_val is None else eval_dataset(x_val, y_val),
        epochs=args.epochs,
        callbacks=callbacks,
        verbose=args.verbose,
    )

    # Save a fresh, uncompiled float32 twin: no optimizer state (half the file), nothing custom to
    # load, and the same float32 model whatever --precision trained it.
    set_precision("float32")
    clean = build_model(spec["arch"], hp, name=name)
    clean.set_weights(student.get_weights())
    with atomic_dir(args.out / name) as tmp:
        clean.save(tmp / "model.keras")
        (tmp / FLOAT_FILENAME).write_bytes(to_tflite(clean))
        write_json(tmp / "config.json", {
            "name": name, "arch": spec["arch"], "hyperparameters": hp,
            "trial_id": spec.get("trial_id"), "params": params, "macs": macs, "seed": args.seed,
            "precision": args.precision, "epochs": args.epochs, "batch_size": args.batch_size, "subset": args.subset,
            "holdout": args.holdout, "cutout": args.cutout,
            "alternating_flip": args.alternating_flip, "ema": args.ema, "lookahead": args.lookahead,
            "teacher": teacher_record(args, teacher),
            "data_source": data.source, "train_images": len(y)})
        write_json(tmp / "training.json", {
            "training_time_s": round(log.total_seconds(), 1), "epochs_run": len(log.epochs),
            "threads": args.threads or "all", "history": log.history(), "machine": machine_summary()})
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    print(f"saved {args.out / name} (training time {log.total_seconds() / 60:.1f} min); "
          f"next: python -m trainer.evaluate {args.out / name}")
    return 0


def teacher_record(args, teacher) -> dict | None:
    """What config.json says about the teacher: a stored file, online models, or None."""
    if args.teacher_models:
        return {"models": [str(d) for d in args.teacher_models], "online": True, "weight": args.teacher_weight,
                "temperature": args.teacher_temperature}
    if args.teacher:
        return {"file": str(args.teacher), "weight": args.teacher_weight, "temperature": args.teacher_temperature,
                "views": 0 if teacher.views is None else int(teacher.views.shape[1])}
    return None


class EpochLog(keras.callbacks.Callback):
    """Keeps per-epoch metrics and wall time on disk, so the times of resumed runs add up."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.epochs = json.loads(path.read_text()) if path.is_file() else []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs = [e for e in self.epochs if e["epoch"] < epoch]  # drop epochs lost to a crash
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch, "seconds": time.perf_counter() - self._start}
        entry.update({k: float(v) for k, v in (logs or {}).items()})
        self.epochs.append(entry)
        write_json(self.path, self.epochs)
        # Fault injection for the resume test: behave as if the user pressed Ctrl-C here.
        if os.environ.get("TRAINER_STOP_AFTER_EPOCH") == str(epoch + 1):
            raise KeyboardInterrupt

    def total_seconds(self) -> float:
        return sum(e["seconds"] for e in self.epochs)

    def history(self) -> dict:
        keys = [k for k in (self.epochs[0] if self.epochs else {}) if k != "epoch"]
        return {k: [round(e.get(k, float("nan")), 5) for e in self.epochs] for k in keys}


if __name__ == "__main__":
    sys.exit(cli.run(main))
