"""The committed classifiers and tuning summaries agree with each other.

REPORT.md and README.md quote metrics.json and tuning/*.json; these checks catch a model committed
without its evaluation, a metrics.json left from older weights' predictions, or a comparison file
not rewritten after a model changed. Numpy only: no model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.compare import paired_comparison
from trainer.ensemble import ensemble_accuracy
from trainer.metrics import confusion_matrix
from trainer.predictions import FILENAME as PREDICTIONS_FILE
from trainer.predictions import load_predictions

REPO_ROOT = Path(__file__).resolve().parents[1]
SAVED_MODELS = REPO_ROOT / "saved_models"
MODELS = sorted(p.parent for p in SAVED_MODELS.glob("*/model.tflite"))
# What `trainer.train`, `trainer.quantize` and `trainer.evaluate` leave in a model folder (docs/ARTIFACTS.md).
EXPECTED_FILES = ("model.keras", "model.tflite", "model_int8.tflite", "config.json", "training.json",
                  "metrics.json", "report.md", "confusion_matrix.png", "test_predictions.npz")


def test_the_deliverable_and_its_peer_are_committed():
    names = {p.name for p in MODELS}
    assert {"airnet_sep_cutout8", "resnet20"} <= names, names


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_metrics_match_the_saved_predictions(model_dir):
    missing = [f for f in EXPECTED_FILES if not (model_dir / f).is_file()]
    assert not missing, f"{model_dir.name} lacks {missing}"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["params"] < 1_000_000 and metrics["within_brief_limits"] is True
    assert metrics["latency_ms"]["keras"]["median"] <= 20 and metrics["latency_ms"]["tflite"]["median"] <= 20

    pred = load_predictions(model_dir)
    labels, plain = pred["labels"], pred["probs"].argmax(1)
    assert labels.shape == (10_000,) and np.bincount(labels).tolist() == [1000] * 10
    # Files written before the fourteenth session store float16, whose rounding can turn a near-tie
    # between two classes (one image of airnet_dense_viewdistill_cutout8), so those may miss by two
    # images; float32 files must match exactly. Other weights' predictions differ on 5-8% of the images.
    with np.load(model_dir / PREDICTIONS_FILE) as raw:
        moved = 2 if raw["probs"].dtype == np.float16 else 0
    assert metrics["accuracy"] == pytest.approx((plain == labels).mean(), abs=moved / 1e4 + 1e-9)
    flip = (pred["probs"] + pred["probs_flip"]).argmax(1)
    assert metrics["accuracy_flip_tta"] == pytest.approx((flip == labels).mean(), abs=moved / 1e4 + 1e-9)
    cm, saved = confusion_matrix(labels, plain), np.array(metrics["confusion_matrix"])
    assert np.array_equal(saved.sum(1), cm.sum(1))
    assert np.abs(saved - cm).sum() <= 2 * moved, f"{model_dir.name}: confusion matrix from other predictions"


@pytest.mark.parametrize("summary", sorted((REPO_ROOT / "tuning").glob("paired_comparisons*.json")),
                         ids=lambda p: p.stem)
def test_paired_comparisons_are_current(summary):
    data = json.loads(summary.read_text())
    baseline = load_predictions(SAVED_MODELS / data["baseline"])
    for row in data["results"]:
        fresh = paired_comparison(baseline, load_predictions(SAVED_MODELS / row["model"]), row["flip_tta"])
        assert {**row, **fresh} == row, f"{summary.name}: {row['model']} is stale; re-run trainer.compare"


@pytest.mark.parametrize("summary", sorted((REPO_ROOT / "tuning").glob("ensemble*.json")), ids=lambda p: p.stem)
def test_ensemble_accuracies_are_current(summary):
    for row in json.loads(summary.read_text())["results"]:
        fresh = ensemble_accuracy([load_predictions(SAVED_MODELS / name) for name in row["models"]])
        assert fresh == pytest.approx({k: row[k] for k in fresh}, abs=1e-9), \
            f"{summary.name}: {row['models']} is stale; re-run trainer.ensemble"
