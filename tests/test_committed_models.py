"""The committed classifiers and tuning summaries agree with each other.

README.md and REPORT.md quote metrics.json and tuning/*.json; these checks catch a model committed
without its evaluation, a metrics.json left from older weights' predictions, or a comparison file
not rewritten after a model changed. The deliverables (saved_models/, named by DELIVERABLES.json)
keep their weights; the other experiments (tuning/experiments/) keep only their recipe, training
record, metrics and test predictions, which is all these checks need. Numpy only: no model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.deliverables import MANIFEST, load_manifest
from trainer.metrics import confusion_matrix, ensemble_accuracy, paired_comparison
from trainer.predictions import FILENAME as PREDICTIONS_FILE
from trainer.predictions import load_predictions

REPO_ROOT = Path(__file__).resolve().parents[1]
SAVED_MODELS = MANIFEST.parent
EXPERIMENTS = REPO_ROOT / "tuning" / "experiments"
CLASSIFIER_ROLES = ("classifier", "most_accurate", "peer")
DELIVERABLES = {role: entry["name"] for role, entry in load_manifest().items()}
CLASSIFIERS = [SAVED_MODELS / DELIVERABLES[role] for role in CLASSIFIER_ROLES]
EXPERIMENT_DIRS = sorted(p.parent for p in EXPERIMENTS.glob("*/metrics.json"))
# What `trainer.train`, `trainer.quantize` and `trainer.evaluate` leave in a model folder (docs/ARTIFACTS.md).
EXPECTED_FILES = ("model.keras", "model.tflite", "model_int8.tflite", "config.json", "training.json",
                  "metrics.json", "report.md", "confusion_matrix.png", "test_predictions.npz")
EXPERIMENT_FILES = ("config.json", "training.json", "metrics.json", "test_predictions.npz")
WEIGHT_SUFFIXES = (".keras", ".tflite", ".h5")


def model_folder(name: str) -> Path:
    """A committed classifier by name: a deliverable in saved_models/ or an experiment in tuning/experiments/."""
    for root in (SAVED_MODELS, EXPERIMENTS):
        if (root / name / PREDICTIONS_FILE).is_file():
            return root / name
    raise FileNotFoundError(f"no committed model named {name!r} in {SAVED_MODELS} or {EXPERIMENTS}")


def test_saved_models_holds_the_deliverables_and_no_experiment():
    missing = [name for name in DELIVERABLES.values() if not (SAVED_MODELS / name).is_dir()]
    assert not missing, f"DELIVERABLES.json names models that are not in saved_models/: {missing}"
    both = {p.name for p in EXPERIMENT_DIRS} & {p.name for p in SAVED_MODELS.iterdir()}
    assert not both, f"filed both as a deliverable and as an experiment: {sorted(both)}"
    size = sum(f.stat().st_size for name in DELIVERABLES.values() for f in (SAVED_MODELS / name).rglob("*"))
    assert size < 80e6, f"the deliverables take {size / 1e6:.0f} MB; experiments keep no weights"


@pytest.mark.parametrize("model_dir", EXPERIMENT_DIRS, ids=lambda p: p.name)
def test_experiments_keep_their_record_but_no_weights(model_dir):
    missing = [f for f in EXPERIMENT_FILES if not (model_dir / f).is_file()]
    assert not missing, f"{model_dir.name} lacks {missing}"
    weights = [p.name for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES]
    assert not weights, f"{model_dir.name}: weights belong in saved_models/ (deliverables only): {weights}"
    assert json.loads((model_dir / "config.json").read_text())["name"] == model_dir.name


def test_the_second_seed_of_the_shipped_recipe_stays_comparable():
    # The seed-to-seed spread of the shipped recipe is the yardstick for every paired comparison.
    seeds = [p for p in EXPERIMENT_DIRS if p.name == f"{DELIVERABLES['classifier']}_seed1"]
    assert seeds, "the shipped recipe's second seed is missing from tuning/experiments/"
    assert load_predictions(seeds[0])["labels"].shape == (10_000,)


@pytest.mark.parametrize("model_dir", CLASSIFIERS + EXPERIMENT_DIRS, ids=lambda p: p.name)
def test_metrics_match_the_saved_predictions(model_dir):
    expected = EXPECTED_FILES if model_dir.parent == SAVED_MODELS else EXPERIMENT_FILES
    missing = [f for f in expected if not (model_dir / f).is_file()]
    assert not missing, f"{model_dir.name} lacks {missing}"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["params"] < 1_000_000 and metrics["within_brief_limits"] is True
    assert metrics["latency_ms"]["keras"]["median"] <= 20 and metrics["latency_ms"]["tflite"]["median"] <= 20

    pred = load_predictions(model_dir)
    labels, plain = pred["labels"], pred["probs"].argmax(1)
    assert labels.shape == (10_000,) and np.bincount(labels).tolist() == [1000] * 10
    # Older files store float16, whose rounding can turn a near-tie between two classes (one image of
    # airnet_dense_viewdistill_cutout8), so those may miss by two images; float32 files must match
    # exactly. Other weights' predictions differ on 5-8% of the images, far more than this tolerance.
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
    baseline = load_predictions(model_folder(data["baseline"]))
    for row in data["results"]:
        fresh = paired_comparison(baseline, load_predictions(model_folder(row["model"])), row["flip_tta"])
        assert {**row, **fresh} == row, f"{summary.name}: {row['model']} is stale; re-run trainer.compare"


@pytest.mark.parametrize("summary", sorted((REPO_ROOT / "tuning").glob("ensemble*.json")), ids=lambda p: p.stem)
def test_ensemble_accuracies_are_current(summary):
    for row in json.loads(summary.read_text())["results"]:
        fresh = ensemble_accuracy([load_predictions(model_folder(name)) for name in row["models"]])
        assert fresh == pytest.approx({k: row[k] for k in fresh}, abs=1e-9), \
            f"{summary.name}: {row['models']} is stale; re-run trainer.ensemble"


def test_readme_results_table_quotes_the_deliverables():
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("## Results"):readme.index("## Findings")]
    rows = {line.split("|")[2].strip(" `"): line for line in table.splitlines() if line.startswith("| ") and "`" in line}
    assert set(rows) == set(DELIVERABLES.values()), "README's results table and DELIVERABLES.json disagree"
    for role in CLASSIFIER_ROLES:
        name = DELIVERABLES[role]
        metrics = json.loads((SAVED_MODELS / name / "metrics.json").read_text())
        quoted = f"{100 * metrics['accuracy']:.2f}% / {100 * metrics['accuracy_flip_tta']:.2f}%"
        assert quoted in rows[name], f"README quotes other figures for {name} than its metrics.json ({quoted})"
        assert f"{metrics['params']:,}" in rows[name]
