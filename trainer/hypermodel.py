"""The KerasTuner search space over depthwise-separable CNNs, with the < 1M parameter rule."""

from __future__ import annotations

import time

import keras_tuner as kt

from trainer.macs import count_macs
from trainer.constants import MAX_PARAMS, within_param_limit
from trainer.architectures import count_params_from_config
from trainer.models import DEFAULT_HP, build_sepnet
from trainer.training import compile_classifier, eval_dataset, steps_per_epoch, train_dataset

# Choices sized so most points fit under 1M; the rest fail fast in build() (no training).
SEARCH_SPACE = {
    "stem": ["patch2", "conv3s2"],
    "first_stage": ["separable", "conv"],
    "width_1": [48, 64, 96],
    "width_2": [96, 128, 160],
    "width_3": [160, 192, 256, 320],
    "kernel_size": [3, 5],
    "expansion": [1, 2, 3, 4],
    "activation": ["relu", "gelu", "swish"],
    "dropout": [0.0, 0.1, 0.2],
    "label_smoothing": [0.0, 0.1, 0.2],
}
INT_RANGES = {"blocks_1": (1, 3), "blocks_2": (1, 3), "blocks_3": (1, 3)}
LOG_RANGES = {"learning_rate": (0.05, 0.4), "weight_decay": (1e-4, 1e-3)}


def sample_hyperparameters(hp: kt.HyperParameters) -> dict:
    """Registers every hyperparameter (defaults from DEFAULT_HP) and returns their values."""
    values = {}
    for name, choices in SEARCH_SPACE.items():
        values[name] = hp.Choice(name, choices, default=DEFAULT_HP[name])
    for name, (lo, hi) in INT_RANGES.items():
        values[name] = hp.Int(name, lo, hi, default=DEFAULT_HP[name])
    values["squeeze_excite"] = hp.Boolean("squeeze_excite", default=DEFAULT_HP["squeeze_excite"])
    for name, (lo, hi) in LOG_RANGES.items():
        values[name] = hp.Float(name, lo, hi, sampling="log", default=DEFAULT_HP[name])
    return values


class SepNetHyperModel(kt.HyperModel):
    """Builds a sepnet per trial and trains it on the proxy budget given to `search()`."""

    def __init__(self, epochs: int, batch_size: int, train_images: int, seed: int = 0):
        super().__init__(name="sepnet")
        self.epochs = epochs
        self.batch_size = batch_size
        self.total_steps = steps_per_epoch(train_images, batch_size) * epochs
        self.seed = seed

    def build(self, hp):
        values = sample_hyperparameters(hp)
        params = count_params_from_config("sepnet", values)  # before building: no weights allocated
        if not within_param_limit(params):
            # A failed trial, not a crash: KerasTuner records it and samples the next point.
            raise kt.errors.FailedTrialError(f"{params:,} parameters, not under {MAX_PARAMS:,}")
        return compile_classifier(build_sepnet(values), values, self.total_steps)

    def fit(self, hp, model, x, y, validation_data, callbacks=None, verbose=2, **kwargs):
        start = time.perf_counter()
        history = model.fit(
            train_dataset(x, y, self.batch_size, self.seed),
            validation_data=eval_dataset(*validation_data),
            epochs=self.epochs, callbacks=callbacks, verbose=verbose)
        val_acc = history.history["val_accuracy"]
        # Report the last epoch: with a one-cycle schedule it is the one a full run would keep.
        return {
            "val_accuracy": float(val_acc[-1]),
            "accuracy": float(history.history["accuracy"][-1]),
            "params": float(model.count_params()),
            "macs": float(count_macs(model)),
            "seconds": time.perf_counter() - start,
        }
