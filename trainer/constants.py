"""The project's limits, folders and file names: each spelled out once, here."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_ROOT = REPO_ROOT / "saved_models"
TUNING_ROOT = REPO_ROOT / "tuning"
RECIPES_DIR = TUNING_ROOT / "recipes"
CHECKPOINTS_ROOT = REPO_ROOT / "checkpoints"

# Our targets: a classifier under one million parameters that answers within 20 ms on one CPU thread.
MAX_PARAMS = 1_000_000
MAX_LATENCY_MS = 20.0

TEST_IMAGES = 10_000  # the whole CIFAR-10 test split: results on fewer are smoke runs, not results

KERAS_FILENAME = "model.keras"
FLOAT_FILENAME = "model.tflite"
INT8_FILENAME = "model_int8.tflite"  # written by `python -m trainer.quantize`
CONFIG_FILENAME = "config.json"
TRAINING_FILENAME = "training.json"
METRICS_FILENAME = "metrics.json"
REPORT_FILENAME = "report.md"
CONFUSION_FILENAME = "confusion_matrix.png"
PREDICTIONS_FILENAME = "test_predictions.npz"
# Written into every folder atomic_dir creates: only such folders (or ones holding a saved model)
# may be replaced by a later run.
ARTIFACT_MARKER = ".trainer-artifact"


def within_param_limit(params: int) -> bool:
    """The one comparison rule for the parameter target: strictly under MAX_PARAMS."""
    return params < MAX_PARAMS


def within_latency_limit(median_ms: float) -> bool:
    return median_ms <= MAX_LATENCY_MS
