"""The proxy budget the search scores its trials on, and how well it ranks like the full budget.

A proxy run trains a recipe's network for a few epochs on a class-balanced subset of the training
split and scores it on a hold-out carved from the same split (the test split is never touched).
It is only worth searching on if it orders models as full training does: `rank_correlation`
measures that against full-budget results, which are test accuracies used for this check alone.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

# Budgets, cheapest first: training images per run and epochs over them. The hold-out is the
# training split's last 10% in a seeded shuffle (5,000 images), the same for every budget.
PROXIES = {
    "5k_2ep": {"train_images": 5_000, "epochs": 2},
    "10k_3ep": {"train_images": 10_000, "epochs": 3},
    "20k_4ep": {"train_images": 20_000, "epochs": 4},
}
DEFAULT_PROXY = "5k_2ep"
HOLDOUT_FRACTION = 0.1
PROXY_BATCH_SIZE = 256  # every validated recipe trains at 256, so the check cannot speak for another batch
TARGET_RHO = 0.8
# The committed full-budget recipes the proxy is checked against: every architecture family and
# the recipe settings the search varies (cutout, BN scale, full vs separable blocks, widths).
VALIDATION_RECIPES = (
    "sepnet_best", "sepnet_hybrid", "resnet20", "airnet_sep", "airnet_sep_cutout8",
    "airnet_sep_bnscale_cutout8", "airnet_sep_dense3_cutout8", "airnet_hybrid_cutout8",
    "airnet_dense_cutout8", "airnet_dense_bf16_e60_cutout16",
)


class ProxyData(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    source: str


def proxy_data(train_images: int, val_images: int | None = None, seed: int = 0, archive=None) -> ProxyData:
    """A class-balanced training subset and the hold-out, both from the training split."""
    from trainer.data import balanced_subset, holdout_split, load_cifar10

    data = load_cifar10(archive, splits=("train",))
    x_fit, y_fit, x_val, y_val = holdout_split(data.x_train, data.y_train, HOLDOUT_FRACTION, seed=seed)
    x, y = balanced_subset(x_fit, y_fit, train_images, seed=seed)
    if val_images:
        x_val, y_val = balanced_subset(x_val, y_val, val_images, seed=seed)
    return ProxyData(x, y, x_val, y_val, data.source)


def fit_and_score(model, data: ProxyData, epochs: int, batch_size: int, cutout: int, seed: int,
                  callbacks=None, verbose: int = 0) -> dict:
    """Trains a compiled model on the proxy subset; hold-out accuracy of the last epoch, and cost.

    The last epoch, not the best one: with a one-cycle schedule it is the one a full run keeps.
    """
    from trainer.macs import count_macs
    from trainer.training import eval_dataset, train_dataset

    start = time.perf_counter()
    history = model.fit(train_dataset(data.x, data.y, batch_size, seed, cutout),
                        validation_data=eval_dataset(data.x_val, data.y_val),
                        epochs=epochs, callbacks=callbacks, verbose=verbose)
    return {
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "accuracy": float(history.history["accuracy"][-1]),
        "params": float(model.count_params()),
        "macs": float(count_macs(model)),
        "seconds": time.perf_counter() - start,
    }


def score_recipe(recipe: dict, data: ProxyData, epochs: int, verbose: int = 0) -> dict:
    """A recipe's network and settings (learning rate, decay, smoothing, cutout) at the proxy budget.

    Precision and epochs are the proxy's: float32, and `epochs` over `data`.
    """
    import keras

    from trainer.models import build_model, check_param_limit
    from trainer.runtime import set_precision
    from trainer.training import compile_classifier, steps_per_epoch

    keras.utils.set_random_seed(recipe["seed"])
    set_precision("float32")
    model = build_model(recipe["arch"], recipe["hyperparameters"], name=recipe["name"])
    check_param_limit(model)
    compile_classifier(model, recipe["hyperparameters"], steps_per_epoch(len(data.y), PROXY_BATCH_SIZE) * epochs)
    return fit_and_score(model, data, epochs, PROXY_BATCH_SIZE, recipe["cutout"], recipe["seed"], verbose=verbose)


def full_budget_accuracy(recipe_name: str) -> tuple[float, str]:
    """The test accuracy the recipe's committed full-budget model scored, and where it is recorded.

    Used only to validate the proxy's ranking, never to choose a model.
    """
    from pathlib import Path

    from trainer.artifacts import read_json
    from trainer.constants import METRICS_FILENAME, RECIPES_DIR, REPO_ROOT

    spec = read_json(RECIPES_DIR / f"{recipe_name}.json")
    if not spec.get("replays"):
        raise ValueError(f"recipe {recipe_name} names no committed model (no 'replays' key)")
    metrics = Path(spec["replays"]) / METRICS_FILENAME
    return float(read_json(REPO_ROOT / metrics)["accuracy"]), str(metrics)


def rank_correlation(proxy_scores, full_scores) -> float:
    """Spearman's rho between the proxy's and the full budget's scores (ties get mean ranks)."""
    from scipy.stats import spearmanr

    if len(proxy_scores) != len(full_scores) or len(proxy_scores) < 3:
        raise ValueError("rank correlation needs the same three or more models on both sides")
    return float(spearmanr(proxy_scores, full_scores).statistic)
