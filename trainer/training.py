"""What search and train share: input pipelines, the one-cycle schedule, optimiser and loss."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from trainer.data import NUM_CLASSES


PAD = 4  # reflect padding before the 32x32 crop: crop offsets run 0..2 * PAD


def apply_view(image, view, cutout: int):
    """Reflect-pad, crop at (dy, dx), mirror if flip, then cutout around (cy, cx): the CIFAR recipe.

    Cutout (DeVries & Taylor 2017) blacks out the pixels within cutout // 2 of the centre, so an
    even size gives a (size + 1)-pixel square; centres near an edge clip it.
    """
    view = tf.cast(view, tf.int32)
    image = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]], mode="REFLECT")
    image = tf.slice(image, tf.stack([view[0], view[1], 0]), [32, 32, 3])
    image = tf.where(view[2] == 1, image[:, ::-1], image)
    if cutout > 0:
        ys = tf.range(32)[:, None]
        xs = tf.range(32)[None, :]
        inside = (tf.abs(ys - view[3]) <= cutout // 2) & (tf.abs(xs - view[4]) <= cutout // 2)
        image = image * tf.cast(~inside, image.dtype)[..., None]
    return image


def _augment(image, label, cutout: int):
    # A fresh random view every time an image is drawn: crop offsets, flip coin, cutout centre.
    crop = tf.random.uniform([2], 0, 2 * PAD + 1, dtype=tf.int32)
    coin = tf.random.uniform([1], 0, 2, dtype=tf.int32)
    centre = tf.random.uniform([2], 0, 32, dtype=tf.int32)
    return apply_view(image, tf.concat([crop, coin, centre], 0), cutout), label


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, cutout: int = 0) -> tf.data.Dataset:
    """Shuffled, augmented batches of float32 0-255 pixels (the model normalises), one-hot labels."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, NUM_CLASSES)))
    ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    # The seed fixes the shuffle order only: parallel map workers draw crops, flips and cutouts in
    # varying order, so the augmentation differs from run to run.
    ds = ds.map(lambda a, b: _augment(tf.cast(a, tf.float32), b, cutout), num_parallel_calls=tf.data.AUTOTUNE)
    # drop_remainder keeps every step's shape fixed: one traced graph, steady BN statistics.
    return ds.batch(batch_size, drop_remainder=len(y) >= batch_size).prefetch(tf.data.AUTOTUNE)


def eval_dataset(x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), tf.one_hot(y, NUM_CLASSES)))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@keras.saving.register_keras_serializable(package="trainer")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from peak/10 to peak over `warmup` of the steps, then linear decay to 0.

    Smith & Topin 2019's one-cycle, in the triangular form airbench uses: the schedule that
    makes few-epoch training on CIFAR-10 competitive.
    """

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.25):
        self.peak = float(peak)
        self.total_steps = int(max(total_steps, 1))
        self.warmup = float(warmup)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        up = tf.maximum(total * self.warmup, 1.0)
        rising = self.peak * (0.1 + 0.9 * step / up)
        falling = self.peak * tf.maximum(total - step, 0.0) / tf.maximum(total - up, 1.0)
        return tf.where(step < up, rising, falling)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup}


def compile_classifier(model: keras.Model, hp: dict, total_steps: int) -> keras.Model:
    """SGD + Nesterov on the one-cycle schedule, decoupled weight decay off BN and biases."""
    optimizer = keras.optimizers.SGD(
        learning_rate=OneCycle(hp["learning_rate"], total_steps),
        momentum=0.9, nesterov=True, weight_decay=hp["weight_decay"])
    optimizer.exclude_from_weight_decay(var_names=["bn", "bias", "beta", "gamma"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=hp["label_smoothing"]),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=False,  # XLA ran 3-4x slower on the CPUs this was tuned on
    )
    return model


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    return max(n_images // batch_size, 1)
