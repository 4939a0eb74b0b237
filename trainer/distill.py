"""Knowledge distillation's teacher: soft labels for the training split from an average of saved models.

    python -m trainer.distill saved_models/airnet_sep_cutout8 saved_models/resnet20 ... \
        --out tuning/distillation/teacher_probs.npz
    python -m trainer.train --config tuning/airnet_sep.json --teacher tuning/distillation/teacher_probs.npz

Hinton et al. 2015, offline: the teacher's probabilities are computed once, on the un-augmented
training images and their mirror images (flip TTA), and stored; training then mixes them into
each image's label (`soft_labels`). Offline because running five teachers inside every training
step would cost more CPU than the student itself; the student still sees crops, flips and cutout
of the image, so its target is the teacher's view of the whole image, not of that crop.
Only the training split is read: the teacher's members were trained on it and nothing else.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from trainer import cli
from trainer.data import NUM_CLASSES

PREDICT_BATCH = 500


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path, help="saved classifier folders whose average is the teacher")
    p.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    return p.parse_args(argv)


def teacher_probs(predictors, x: np.ndarray) -> np.ndarray:
    """The members' softmax outputs, each averaged over the image and its mirror, then over members.

    predictors: one `images -> probabilities` function per member (`batched_predict(model)`).
    """
    from trainer.tta import flip_probs

    total = np.zeros((len(x), NUM_CLASSES), np.float64)
    for predict in predictors:
        total += flip_probs(predict, x)
    return (total / len(predictors)).astype(np.float32)


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
    """weight * teacher(T) + (1 - weight) * one-hot: the distillation target per training image.

    teacher(T) is softmax(log(p) / T), Hinton's temperature applied to the stored probabilities
    (T > 1 spreads the mass the teacher gives to the wrong classes, which is what it teaches).
    """
    if teacher.shape != (len(labels), NUM_CLASSES):
        raise ValueError(f"teacher probabilities have shape {teacher.shape}, expected ({len(labels)}, {NUM_CLASSES})")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"distillation weight must be in [0, 1], got {weight}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = np.log(np.clip(teacher.astype(np.float64), 1e-8, 1.0)) / temperature
    tempered = np.exp(logits - logits.max(axis=1, keepdims=True))
    tempered /= tempered.sum(axis=1, keepdims=True)
    one_hot = np.eye(NUM_CLASSES)[labels]
    return (weight * tempered + (1.0 - weight) * one_hot).astype(np.float32)


def load_teacher(path: Path, labels: np.ndarray) -> np.ndarray:
    """The stored probabilities, checked against the training labels they must line up with."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: python -m trainer.distill MODEL ... --out {path} writes it")
    try:
        with np.load(path) as data:
            probs, stored = data["probs"].astype(np.float32), data["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a teacher file of trainer.distill ({exc})") from exc
    if not np.array_equal(stored, labels):
        raise ValueError(f"{path} was computed for other training labels ({len(stored)} images, this run has "
                         f"{len(labels)}): recompute it on the same archive")
    return probs


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer.artifacts import atomic_write_bytes, is_classifier_dir
    from trainer.data import load_cifar10
    from trainer.models import load_classifier

    for d in args.models:
        if not is_classifier_dir(d):
            raise FileNotFoundError(f"{d} is not a saved classifier (no model.keras)")
    data = load_cifar10(args.data, splits=("train",))
    models = [load_classifier(d / "model.keras") for d in args.models]
    probs = teacher_probs([batched_predict(m) for m in models], data.x_train)
    accuracy = float((probs.argmax(1) == data.y_train).mean())
    confidence = float(probs[np.arange(len(probs)), data.y_train].mean())
    buf = io.BytesIO()
    np.savez_compressed(buf, probs=probs.astype(np.float16), labels=data.y_train,
                        models=np.array([d.name for d in args.models]), source=np.array(data.source))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"teacher of {len(models)} models on {len(probs):,} training images ({data.source}): "
          f"training accuracy {100 * accuracy:.2f}%, mean probability of the true class {confidence:.3f}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
