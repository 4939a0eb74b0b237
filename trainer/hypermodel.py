"""The KerasTuner search space: airbench-style separable nets and the recipe settings that moved
results, with the < 1M parameter rule checked before anything is built.

Every default is the hand-designed shipped classifier (airnet_sep_cutout8), so the space's
default point is the model the search has to beat.
"""

from __future__ import annotations

import keras_tuner as kt

from trainer.architectures import count_params_from_config
from trainer.constants import MAX_PARAMS, within_param_limit
from trainer.models import build_airnet
from trainer.training import compile_classifier, steps_per_epoch

BLOCKS = (1, 2, 3)
# Recipe settings a trial trains with; everything else in a trial's values is the network's.
RECIPE_SETTINGS = ("cutout",)


class AirNetHyperModel(kt.HyperModel):
    """Builds one airnet per trial and trains it on the proxy budget given to `search()`."""

    def __init__(self, epochs: int, batch_size: int, train_images: int, seed: int = 0):
        super().__init__(name="airnet")
        self.epochs = epochs
        self.batch_size = batch_size
        self.total_steps = steps_per_epoch(train_images, batch_size) * epochs
        self.seed = seed

    def build(self, hp):
        widths = {1: [32, 48, 64, 96], 2: [128, 192, 256, 320], 3: [256, 384, 512, 640]}
        default_width, default_convs = {1: 64, 2: 256, 3: 512}, {1: 2, 2: 3, 3: 3}
        default_type = {1: "conv", 2: "separable", 3: "separable"}
        net = {
            "stem_width": hp.Choice("stem_width", [16, 24, 32], default=24),
            "widths": [hp.Choice(f"width_{b}", widths[b], default=default_width[b]) for b in BLOCKS],
            "convs": [hp.Int(f"convs_{b}", 1, 3, default=default_convs[b]) for b in BLOCKS],
            "block_types": [hp.Choice(f"type_{b}", ["conv", "separable"], default=default_type[b])
                            for b in BLOCKS],
            "kernel_size": hp.Choice("kernel_size", [3, 5], default=3),
            "pool": hp.Choice("pool", ["max", "avg"], default="max"),
            "bn_scale": hp.Boolean("bn_scale", default=False),
            "learning_rate": hp.Float("learning_rate", 0.05, 0.4, sampling="log", default=0.2),
            "weight_decay": hp.Float("weight_decay", 1e-4, 1e-3, sampling="log", default=5e-4),
            "label_smoothing": hp.Choice("label_smoothing", [0.0, 0.1, 0.2], default=0.1),
        }
        hp.Choice("cutout", [0, 8, 12, 16], default=8)  # used by fit()
        params = count_params_from_config("airnet", net)  # arithmetic: no weights allocated yet
        if not within_param_limit(params):
            # A failed trial, not a crash: KerasTuner records it and samples the next point.
            raise kt.errors.FailedTrialError(f"{params:,} parameters, not under {MAX_PARAMS:,}")
        return compile_classifier(build_airnet(net), net, self.total_steps)

    def fit(self, hp, model, x, y, validation_data, callbacks=None, verbose=2, **kwargs):
        from trainer.proxy import ProxyData, fit_and_score

        data = ProxyData(x, y, *validation_data, source="")
        # KerasTuner's own callback saves each trial's weights (3-4 MB a trial); the search keeps
        # only the scores, so the oracle's folder stays small enough to commit and resume from.
        kept = [c for c in callbacks or [] if type(c).__name__ != "SaveBestEpoch"]
        return fit_and_score(model, data, self.epochs, self.batch_size, hp.get("cutout"), self.seed,
                             callbacks=kept, verbose=verbose)


def within_limit(values: dict) -> bool:
    """Whether a point of the space builds a network under the parameter limit (arithmetic only)."""
    return within_param_limit(count_params_from_config("airnet", recipe_from_values(values)["hyperparameters"]))


def recipe_from_values(values: dict) -> dict:
    """A trial's values as a recipe's "hyperparameters" (airnet's lists) and its cutout."""
    hp = {k: v for k, v in values.items() if not k.startswith("tuner/") and k not in RECIPE_SETTINGS}
    net = {k: v for k, v in hp.items() if not k.split("_")[0] in ("width", "convs", "type")}
    net["widths"] = [hp[f"width_{b}"] for b in BLOCKS]
    net["convs"] = [hp[f"convs_{b}"] for b in BLOCKS]
    net["block_types"] = [hp[f"type_{b}"] for b in BLOCKS]
    return {"arch": "airnet", "hyperparameters": net, "cutout": values.get("cutout", 0)}
