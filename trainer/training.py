"""What search and train share: input pipelines, the one-cycle schedule, optimiser and loss."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from trainer.data import NUM_CLASSES


def configure_threads(threads: int) -> None:
    """Pins TF's thread pools; must run before the first TF op (0 = TF's default, all cores)."""
    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _augment(image, label, cutout: int, flip=None):
    # Reflect-pad 4 then random 32x32 crop, and horizontal flip: the standard CIFAR recipe.
    # `flip` (a bool) replaces the coin toss when the flips alternate (see train_dataset).
    image = tf.pad(image, [[4, 4], [4, 4], [0, 0]], mode="REFLECT")
    image = tf.image.random_crop(image, (32, 32, 3))
    image = tf.image.random_flip_left_right(image) if flip is None else tf.where(flip, image[:, ::-1], image)
    if cutout > 0:  # DeVries & Taylor 2017: black out a random square (centre may fall near edges).
        # Pixels within cutout // 2 of the centre, so an even size gives a (size + 1)-pixel square.
        centre = tf.random.uniform([2], 0, 32, dtype=tf.int32)
        cy, cx = centre[0], centre[1]  # indexed, not unpacked: this runs as a graph in tf.data
        ys = tf.range(32)[:, None]
        xs = tf.range(32)[None, :]
        inside = (tf.abs(ys - cy) <= cutout // 2) & (tf.abs(xs - cx) <= cutout // 2)
        image = image * tf.cast(~inside, image.dtype)[..., None]
    return image, label


class FlipEpoch(keras.callbacks.Callback):
    """Tells an alternating-flip pipeline which epoch it feeds (Keras makes each epoch's
    iterator after on_epoch_begin, so the map functions read the new value; resumed runs too)."""

    def __init__(self):
        super().__init__()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, cutout: int = 0,
                  targets: np.ndarray | None = None, flip_epoch: tf.Variable | None = None) -> tf.data.Dataset:
    """Shuffled, augmented batches of float32 0-255 pixels (the model normalises).

    Labels are one-hot, or the rows of `targets` (N x 10 distributions, e.g. distillation's soft labels).
    With `flip_epoch` (FlipEpoch's variable) flips alternate, as airbench's do (Jordan 2024): each
    image's first flip is a fixed coin toss and later epochs switch it, so any two consecutive epochs
    show both mirror images, where independent coin tosses repeat one view half the time.
    """
    if targets is not None and targets.shape != (len(y), NUM_CLASSES):
        raise ValueError(f"targets have shape {targets.shape}, expected ({len(y)}, {NUM_CLASSES})")
    labels = tf.one_hot(y, NUM_CLASSES) if targets is None else targets.astype(np.float32)
    # Alternating flips carry each image's first coin toss beside it through the shuffle.
    columns = (x, labels) if flip_epoch is None else (x, labels, np.random.default_rng(seed).integers(0, 2, len(y)))
    ds = tf.data.Dataset.from_tensor_slices(columns).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    # The seed fixes the shuffle order only: parallel map workers draw crops, flips and cutouts in
    # varying order, so the augmentation differs from run to run.
    if flip_epoch is None:
        ds = ds.map(lambda a, b: _augment(tf.cast(a, tf.float32), b, cutout), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda a, b, c: _augment(tf.cast(a, tf.float32), b, cutout, flip=(c + flip_epoch) % 2 == 1),
                    num_parallel_calls=tf.data.AUTOTUNE)
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


def compile_classifier(model: keras.Model, hp: dict, total_steps: int, ema: bool = False) -> keras.Model:
    """SGD + Nesterov on the one-cycle schedule, decoupled weight decay off BN and biases."""
    optimizer = keras.optimizers.SGD(
        learning_rate=OneCycle(hp["learning_rate"], total_steps),
        momentum=0.9, nesterov=True, weight_decay=hp["weight_decay"], use_ema=ema)
    optimizer.exclude_from_weight_decay(var_names=["bn", "bias", "beta", "gamma"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=hp["label_smoothing"]),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=False,  # XLA was 3-4x slower on this CPU (DEVELOPERS.md)
    )
    return model


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    return max(n_images // batch_size, 1)


class Lookahead(keras.callbacks.Callback):
    """Lookahead (Zhang et al. 2019) in airbench's form: every `every` steps the trained ("fast")
    weights are pulled to a moving "slow" copy and the fast ones restart from it.

    slow <- decay * slow + (1 - decay) * fast, then fast <- slow, with decay = peak * (step / total)^3:
    no averaging early, when the weights must move, and up to `peak` (airbench: 0.95^5) at the end.
    The run ends on the slow weights. Trainable weights only: BN statistics keep following the data.
    """

    def __init__(self, total_steps: int, every: int = 5, peak: float = 0.95 ** 5):
        super().__init__()
        self.total_steps = max(int(total_steps), 1)
        self.every = int(every)
        self.peak = float(peak)
        self.slow = None
        self.step = 0

    def decay(self, step: int) -> float:
        return self.peak * min(step / self.total_steps, 1.0) ** 3

    def _pull(self, decay: float) -> None:
        for slow, var in zip(self.slow, self.model.trainable_weights):
            slow *= decay
            slow += (1.0 - decay) * keras.ops.convert_to_numpy(var.value)
            var.assign(slow)

    def on_train_begin(self, logs=None):
        # A resumed run starts from its restored weights and the step count Keras restored.
        self.step = int(self.model.optimizer.iterations.numpy())
        self.slow = [keras.ops.convert_to_numpy(w.value).copy() for w in self.model.trainable_weights]

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            self._pull(self.decay(self.step))

    def on_train_end(self, logs=None):
        self._pull(1.0)  # keep the slow weights
