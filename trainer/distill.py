"""Knowledge distillation's teacher: soft labels for the training split from an average of saved models.

    python -m trainer.distill saved_models/airnet_sep_cutout8 saved_models/resnet20 ... \
        --out tuning/distillation/teacher_probs.npz
    python -m trainer.train --config tuning/airnet_sep.json --teacher tuning/distillation/teacher_probs.npz

    python -m trainer.distill MODELS ... --views 8 --cutout 8 --out tuning/distillation/teacher_views.npz
    python -m trainer.train ... --cutout 8 --teacher tuning/distillation/teacher_views.npz

Hinton et al. 2015, offline: the teacher's probabilities are computed once and stored; training then
mixes them into each image's label (`soft_labels`). Offline, because running the teachers inside every
training step costs more CPU than the student itself; the online form below pays that cost.

Two kinds of teacher file:
- whole image (default): the teacher sees each un-augmented training image and its mirror (flip TTA),
  while the student trains on crops, flips and cutout of it, so its target cannot say what a given
  crop or cutout hides.
- views (--views K): K random augmented views per image are drawn here (crop, flip, cutout centre;
  `trainer.training.draw_views`), the teacher sees exactly each view, and training replays the stored
  views with their own targets: Beyer et al. 2022's "consistent" teaching, with a pool of K views per
  image instead of a fresh one every step.
Only the training split is read: the teacher's members were trained on it and nothing else.

Online (`trainer.train --teacher-models DIR ...`, no file): the members run inside every training
step on the very batch the student sees (`OnlineDistiller`), so each epoch's fresh crops, flips and
cutouts get fresh targets: Beyer et al.'s function matching without a fixed pool, which item 39 of
REPORT.md found the dense student memorises. It costs the members' forward passes on every step.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from trainer import cli
from trainer.data import NUM_CLASSES

PREDICT_BATCH = 500


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path, help="saved classifier folders whose average is the teacher")
    p.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    p.add_argument("--views", type=int, default=0,
                   help="store K random augmented views per image, each with its own target (default 0: whole image)")
    p.add_argument("--cutout", type=int, default=0,
                   help="with --views: the cutout size the student will train with (its --cutout)")
    p.add_argument("--seed", type=int, default=0, help="with --views: seeds the views' random draws")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    args = p.parse_args(argv)
    if args.views < 0 or args.cutout < 0:
        p.error("--views and --cutout must be >= 0")
    if args.cutout and not args.views:
        p.error("--cutout needs --views: the whole-image teacher sees no cutout")
    return args


def teacher_probs(predictors, x: np.ndarray) -> np.ndarray:
    """The members' softmax outputs, each averaged over the image and its mirror, then over members.

    predictors: one `images -> probabilities` function per member (`batched_predict(model)`).
    """
    from trainer.tta import flip_probs

    total = np.zeros((len(x), NUM_CLASSES), np.float64)
    for predict in predictors:
        total += flip_probs(predict, x)
    return (total / len(predictors)).astype(np.float32)


def render_views(x: np.ndarray, views: np.ndarray, cutout: int) -> np.ndarray:
    """Each image under its view (n x VIEW_FIELDS), through the training pipeline's own `apply_view`."""
    import tensorflow as tf

    from trainer.training import apply_view

    ds = tf.data.Dataset.from_tensor_slices((x, views)).map(
        lambda image, view: apply_view(image, view, cutout), num_parallel_calls=tf.data.AUTOTUNE)
    return np.concatenate([batch.numpy() for batch in ds.batch(PREDICT_BATCH)])


def view_teacher_probs(predictors, x: np.ndarray, views: np.ndarray, cutout: int, log=print) -> np.ndarray:
    """The members' average softmax output on each stored view: n x K x 10 for views of n x K x VIEW_FIELDS."""
    probs = np.zeros(views.shape[:2] + (NUM_CLASSES,), np.float32)
    for k in range(views.shape[1]):
        images = render_views(x, views[:, k], cutout)
        probs[:, k] = np.mean([predict(images) for predict in predictors], axis=0)
        log(f"view {k + 1}/{views.shape[1]} done")
    return probs


def batched_predict(model):
    """model(x) over fixed-size slices through one traced graph.

    Not model.predict: on the 50,000-image split its tf.data iterator hung at teardown here
    (TF 2.21, a futex wait in ~IteratorResource), and plain slicing needs no dataset at all.
    """
    import tensorflow as tf

    fn = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    return lambda x: np.concatenate([fn(tf.constant(x[i:i + PREDICT_BATCH], tf.float32)).numpy()
                                     for i in range(0, len(x), PREDICT_BATCH)])


def soft_labels(teacher: np.ndarray, labels: np.ndarray, weight: float, temperature: float = 1.0) -> np.ndarray:
    """weight * teacher(T) + (1 - weight) * one-hot: the distillation target per training image (or view).

    teacher(T) is softmax(log(p) / T), Hinton's temperature applied to the stored probabilities
    (T > 1 spreads the mass the teacher gives to the wrong classes, which is what it teaches).
    """
    if teacher.ndim not in (2, 3) or teacher.shape[0] != len(labels) or teacher.shape[-1] != NUM_CLASSES:
        raise ValueError(f"teacher probabilities have shape {teacher.shape}, expected ({len(labels)}, {NUM_CLASSES}) "
                         f"or ({len(labels)}, views, {NUM_CLASSES})")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"distillation weight must be in [0, 1], got {weight}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    one_hot = np.eye(NUM_CLASSES)[labels].reshape((len(labels),) + (1,) * (teacher.ndim - 2) + (NUM_CLASSES,))
    mixed = mix_targets(teacher.astype(np.float64), one_hot, weight, temperature)  # float64 until stored
    return np.asarray(mixed).astype(np.float32)


def mix_targets(teacher, one_hot, weight: float, temperature: float = 1.0):
    """The formula of `soft_labels`, unchecked and on tensors (the online teacher's, in every step)."""
    tempered = ops.softmax(ops.log(ops.clip(teacher, 1e-8, 1.0)) / temperature, axis=-1)
    return weight * tempered + (1.0 - weight) * one_hot


def load_members(model_dirs) -> list[keras.Model]:
    """A teacher's saved classifiers, every folder checked before any model is loaded."""
    from trainer.artifacts import is_classifier_dir
    from trainer.models import load_classifier

    dirs = [Path(d) for d in model_dirs]
    for d in dirs:
        if not is_classifier_dir(d):
            raise FileNotFoundError(f"{d} is not a saved classifier (no model.keras)")
    return [load_classifier(d / "model.keras") for d in dirs]


def ensemble_teacher(model_dirs) -> keras.Model:
    """The saved classifiers' average softmax output as one frozen model."""
    from trainer.models import INPUT_SHAPE

    members = load_members(model_dirs)
    for member in members:
        member.trainable = False
    inputs = keras.Input(INPUT_SHAPE)
    outputs = [member(inputs, training=False) for member in members]
    # float32 whatever the training precision: the members are float32 as saved, so is their average.
    average = outputs[0] if len(outputs) == 1 else keras.layers.Average(dtype="float32")(outputs)
    return keras.Model(inputs, average, name="teacher")


class OnlineDistiller(keras.Model):
    """Trains `student` towards the teacher's output on each augmented batch, mixed with the labels.

    Only the student's weights train; `student` is what to save. The compiled loss (and its label
    smoothing) applies to the mixed target, as with stored targets; the compiled metrics still score
    the true labels.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, weight: float, temperature: float = 1.0,
                 **kwargs):
        super().__init__(name=f"{student.name}_distiller", **kwargs)
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.weight, self.temperature = float(weight), float(temperature)
        self.built = True  # both parts are built models; BackupAndRestore needs a built model before fit

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher = ops.stop_gradient(ops.cast(self.teacher(x, training=False), "float32"))
        target = mix_targets(teacher, ops.cast(y, "float32"), self.weight, self.temperature)
        return super().compute_loss(x, target, y_pred, sample_weight, training)


class Teacher(NamedTuple):
    """A teacher file's contents: probs (n x 10, or n x K x 10 with views), views (n x K x VIEW_FIELDS
    or None for a whole-image teacher) and the cutout size the views were drawn with."""

    probs: np.ndarray
    views: np.ndarray | None = None
    cutout: int = 0


def load_teacher(path: Path, labels: np.ndarray) -> Teacher:
    """The stored teacher, checked against the training labels it must line up with."""
    from trainer.training import VIEW_FIELDS

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: python -m trainer.distill MODEL ... --out {path} writes it")
    try:
        with np.load(path) as data:
            probs, stored = data["probs"].astype(np.float32), data["labels"]
            views = data["views"] if "views" in data.files else None
            cutout = int(data["cutout"]) if "cutout" in data.files else 0
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a teacher file of trainer.distill ({exc})") from exc
    if not np.array_equal(stored, labels):
        raise ValueError(f"{path} was computed for other training labels ({len(stored)} images, this run has "
                         f"{len(labels)}): recompute it on the same archive")
    if views is None:
        fits = probs.shape == (len(labels), NUM_CLASSES)
    else:  # n x K x VIEW_FIELDS views, one n x K x 10 target each
        fits = views.ndim == 3 and views.shape[::2] == (len(labels), VIEW_FIELDS) and \
            probs.shape == views.shape[:2] + (NUM_CLASSES,)
    if not fits:
        raise ValueError(f"{path} holds probabilities of shape {probs.shape} and views of shape "
                         f"{None if views is None else views.shape}, which do not fit together")
    return Teacher(probs, views, cutout)


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer.artifacts import atomic_write_bytes
    from trainer.data import load_cifar10
    from trainer.training import draw_views

    predictors = [batched_predict(member) for member in load_members(args.models)]
    data = load_cifar10(args.data, splits=("train",))
    extra = {}
    if args.views:
        n = len(data.y_train)
        views = draw_views(n * args.views, np.random.default_rng(args.seed)).reshape(n, args.views, -1)
        probs = view_teacher_probs(predictors, data.x_train, views, args.cutout,
                                   log=lambda line: print(line, flush=True))
        extra = {"views": views, "cutout": np.array(args.cutout), "seed": np.array(args.seed)}
        labels = data.y_train[:, None]
    else:
        probs = teacher_probs(predictors, data.x_train)
        labels = data.y_train
    accuracy = float((probs.argmax(-1) == labels).mean())
    confidence = float(np.take_along_axis(probs, labels[..., None], axis=-1).mean())
    buf = io.BytesIO()
    np.savez_compressed(buf, probs=probs.astype(np.float16), labels=data.y_train,
                        models=np.array([d.name for d in args.models]), source=np.array(data.source), **extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, buf.getvalue())
    what = f"{args.views} views (cutout {args.cutout}) of each of" if args.views else "the whole of"
    print(f"teacher of {len(predictors)} models on {what} {len(data.y_train):,} training images ({data.source}): "
          f"training accuracy {100 * accuracy:.2f}%, mean probability of the true class {confidence:.3f}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
