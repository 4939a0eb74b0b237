"""The search space, its proxy and the step from a search summary to a training recipe."""

import json
import zlib

import keras_tuner as kt
import numpy as np
import pytest

from conftest import run_module
from trainer import recipes
from trainer.artifacts import write_json
from trainer.hypermodel import AirNetHyperModel, recipe_from_values
from trainer.models import build_airnet
from trainer.proxy import ProxyData, rank_correlation, score_recipe


def _defaults():
    hp = kt.HyperParameters()
    AirNetHyperModel(1, 64, 128).build(hp)
    return hp


def test_the_space_default_is_the_shipped_classifier():
    hp = _defaults()
    shipped = recipes.load(None)
    recipe = recipe_from_values(hp.values)
    assert recipe["cutout"] == shipped["cutout"]
    assert recipe["hyperparameters"] == shipped["hyperparameters"]
    model = AirNetHyperModel(1, 64, 128).build(hp)
    assert model.count_params() == 882_946


def test_every_sampled_point_is_under_1m_or_a_failed_trial():
    hypermodel = AirNetHyperModel(1, 64, 128)
    space = _defaults().space
    built = failed = 0
    for seed in range(16):
        point = kt.HyperParameters()
        point.merge(space)
        for p in space:
            # crc32, not hash(): str hashes change per process, and the sample must not
            point.values[p.name] = p.random_sample(seed * 101 + zlib.crc32(p.name.encode()) % 97)
        try:
            model = hypermodel.build(point)
        except kt.errors.FailedTrialError as exc:
            assert "parameters, not under 1,000,000" in str(exc)
            net = recipe_from_values(point.values)["hyperparameters"]
            assert build_airnet(net).count_params() >= 1_000_000
            failed += 1
        else:
            assert model.count_params() < 1_000_000
            probs = model(np.full((2, 32, 32, 3), 128.0, np.float32))
            np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)
            built += 1
    assert built > 0 and failed > 0  # the space straddles the limit


def test_an_oversized_point_fails_before_anything_is_built():
    hp = _defaults()
    hp.values.update(type_2="conv", type_3="conv", width_3=640, width_2=320)
    with pytest.raises(kt.errors.FailedTrialError, match="not under 1,000,000"):
        AirNetHyperModel(1, 64, 128).build(hp)


def test_rank_correlation():
    assert rank_correlation([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]) == pytest.approx(1.0)
    assert rank_correlation([0.4, 0.3, 0.2, 0.1], [0.5, 0.6, 0.7, 0.8]) == pytest.approx(-1.0)
    assert rank_correlation([0.1, 0.3, 0.2], [0.1, 0.2, 0.3]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        rank_correlation([0.1, 0.2], [0.1, 0.2])


def test_a_recipe_scored_at_a_proxy_budget_learns(cifar):
    data = ProxyData(cifar.x_train[:2048], cifar.y_train[:2048], cifar.x_train[-500:], cifar.y_train[-500:], "")
    tiny = {"name": "tiny", "arch": "airnet", "seed": 0, "cutout": 4,
            "hyperparameters": {**recipes.default_hyperparameters("airnet"), "stem_width": 8,
                                "widths": [16, 32, 32], "convs": [1, 1, 1]}}
    scored = score_recipe(tiny, data, epochs=3)
    assert scored["val_accuracy"] > 0.2  # well above chance after 24 steps of 256
    assert scored["params"] > 0 and scored["macs"] > 0 and scored["seconds"] > 0


def test_train_best_uses_the_trial_with_the_shipped_budget(tmp_path):
    hp = _defaults()
    values = {**hp.values, "width_3": 384, "cutout": 12}
    write_json(tmp_path / "summary.json", {
        "trials": [{"trial_id": "7", "status": "COMPLETED", "val_accuracy": 0.7}],
        "best_trial_id": "7", "best_recipe": recipe_from_values(values)})
    recipe = recipes.load("best", tmp_path)
    shipped = recipes.load(None)
    assert recipe["arch"] == "airnet" and recipe["trial_id"] == "7"
    assert recipe["hyperparameters"]["widths"] == [64, 256, 384] and recipe["cutout"] == 12
    assert (recipe["epochs"], recipe["batch_size"], recipe["holdout"]) == (
        shipped["epochs"], shipped["batch_size"], shipped["holdout"])


def test_proxy_check_refuses_unknown_recipes_before_training(tmp_path):
    proc = run_module("trainer.proxy_check", "--recipes", "resnet20", "airnet_sep", "nope",
                      "--tuning-dir", tmp_path)
    assert proc.returncode == 2 and "nope.json" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_committed_proxy_validation_is_consistent():
    from trainer.constants import TUNING_ROOT

    path = TUNING_ROOT / "proxy_validation.json"
    if not path.is_file():
        pytest.skip("no committed proxy validation")
    results = json.loads(path.read_text())
    for name, entry in results["proxies"].items():
        if "rho" not in entry:
            continue
        rows = entry["rows"]
        rho = rank_correlation([r["proxy_val_accuracy"] for r in rows], [r["full_test_accuracy"] for r in rows])
        assert rho == pytest.approx(entry["rho"], abs=1e-4), name
        for r in rows:  # the full-budget side is the committed model's own figure
            committed = json.loads((TUNING_ROOT.parent / r["full_source"]).read_text())["accuracy"]
            assert committed == r["full_test_accuracy"]


def test_a_finished_search_reloads_without_training_again(tmp_path):
    args = ("--max-trials", 2, "--subset", 100, "--val-size", 50, "--epochs", 1, "--batch-size", 50,
            "--threads", 1, "--tuning-dir", tmp_path, "--verbose", 0)
    first = run_module("trainer.search", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    before = json.loads((tmp_path / "summary.json").read_text())
    # A chief can save its state with a finished trial still listed as ongoing; KerasTuner would
    # retry it on reload.
    oracle_file = tmp_path / "runs" / "airnet" / "oracle.json"
    oracle = json.loads(oracle_file.read_text())
    oracle["ongoing_trials"] = {"tuner1": before["trials"][-1]["trial_id"]}
    oracle_file.write_text(json.dumps(oracle))
    again = run_module("trainer.search", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "COMPLETED" not in again.stdout  # no trial ran again
    after = json.loads((tmp_path / "summary.json").read_text())
    assert after["trials"] == before["trials"] and after["best_trial_id"] == before["best_trial_id"]
