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


# --precision: Keras's dtype policy while training. "bfloat16" is Keras mixed precision: layers
# compute in bfloat16 and keep float32 weights, so the trained weights load into a float32 twin.
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def set_precision(precision: str) -> None:
    """Sets the dtype policy of the layers built after this call."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {sorted(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])


PAD = 4  # reflect padding before the 32x32 crop: crop offsets run 0..2 * PAD
# A view is one augmentation's random draws: crop offsets (dy, dx), flip (0/1), cutout centre (cy, cx).
# Drawn apart from their use so a teacher can see exactly the view a student will train on.
VIEW_FIELDS = 5


def draw_views(n: int, rng: np.random.Generator) -> np.ndarray:
    """n random views (uint8, n x VIEW_FIELDS), the draws `_augment` makes inside tf.data."""
    crop = rng.integers(0, 2 * PAD + 1, (n, 2))
    flip = rng.integers(0, 2, (n, 1))
    centre = rng.integers(0, 32, (n, 2))
    return np.concatenate([crop, flip, centre], axis=1).astype(np.uint8)


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


def _augment(image, label, cutout: int, flip=None):
    # A fresh random view; `flip` (a bool) replaces the coin toss when the flips alternate (see train_dataset).
    crop = tf.random.uniform([2], 0, 2 * PAD + 1, dtype=tf.int32)
    coin = tf.random.uniform([1], 0, 2, dtype=tf.int32) if flip is None else tf.reshape(tf.cast(flip, tf.int32), [1])
    centre = tf.random.uniform([2], 0, 32, dtype=tf.int32)
    return apply_view(image, tf.concat([crop, coin, centre], 0), cutout), label


class FlipEpoch(keras.callbacks.Callback):
    """Tells an alternating-flip pipeline which epoch it feeds (Keras makes each epoch's
    iterator after on_epoch_begin, so the map functions read the new value; resumed runs too)."""

    def __init__(self):
        super().__init__()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, cutout: int = 0,
                  targets: np.ndarray | None = None, flip_epoch: tf.Variable | None = None,
                  views: np.ndarray | None = None) -> tf.data.Dataset:
    """Shuffled, augmented batches of float32 0-255 pixels (the model normalises).

    Labels are one-hot, or the rows of `targets` (N x 10 distributions, e.g. distillation's soft labels).
    With `flip_epoch` (FlipEpoch's variable) flips alternate, as airbench's do (Jordan 2024): each
    image's first flip is a fixed coin toss and later epochs switch it, so any two consecutive epochs
    show both mirror images, where independent coin tosses repeat one view half the time.
    With `views` (N x K x VIEW_FIELDS, a view-teacher's) each image shows one of its K stored views,
    picked at random each time, and `targets` (N x K x 10) gives each view its own target.
    """
    if views is not None and (targets is None or flip_epoch is not None or views.ndim != 3
                              or views.shape[::2] != (len(y), VIEW_FIELDS)):
        raise ValueError(f"views ({views.shape}) need per-view targets, N x K x {VIEW_FIELDS}, and no alternating flip")
    expected = (len(y), NUM_CLASSES) if views is None else (len(y), views.shape[1], NUM_CLASSES)
    if targets is not None and targets.shape != expected:
        raise ValueError(f"targets have shape {targets.shape}, expected {expected}")
    labels = tf.one_hot(y, NUM_CLASSES) if targets is None else targets.astype(np.float32)
    columns = (x, labels)
    if flip_epoch is not None:  # alternating flips carry each image's first coin toss beside it through the shuffle
        columns += (np.random.default_rng(seed).integers(0, 2, len(y)),)
    if views is not None:
        columns += (views,)
    ds = tf.data.Dataset.from_tensor_slices(columns).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    # The seed fixes the shuffle order only: parallel map workers draw crops, flips and cutouts in
    # varying order, so the augmentation differs from run to run.
    if views is not None:
        def stored_view(image, targets_k, views_k):
            k = tf.random.uniform([], 0, tf.shape(views_k)[0], dtype=tf.int32)
            return apply_view(tf.cast(image, tf.float32), views_k[k], cutout), targets_k[k]

        ds = ds.map(stored_view, num_parallel_calls=tf.data.AUTOTUNE)
    elif flip_epoch is None:
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
