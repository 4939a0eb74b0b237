"""The real commands end to end on a tiny budget: search -> train -> quantize -> evaluate."""

import json

import numpy as np
import pytest

from conftest import run_module
from trainer.data import CLASS_NAMES


def test_search_writes_a_summary_with_every_trial(tiny_model_dir):
    summary = json.loads((tiny_model_dir["tuning"] / "summary.json").read_text())
    assert len(summary["trials"]) == 2
    best = next(t for t in summary["trials"] if t["trial_id"] == summary["best_trial_id"])
    assert best["status"] == "COMPLETED" and 0 <= best["val_accuracy"] <= 1
    assert 0 < best["params"] < 1_000_000 and best["macs"] > 0
    header = (tiny_model_dir["tuning"] / "summary.csv").read_text().splitlines()[0]
    assert header.startswith("trial_id,status,val_accuracy") and "hp_width_1" in header


def test_train_writes_the_model_folder(tiny_model_dir):
    d = tiny_model_dir["dir"]
    for name in ("model.keras", "model.tflite", "config.json", "training.json"):
        assert (d / name).is_file(), name
    config = json.loads((d / "config.json").read_text())
    summary = json.loads((tiny_model_dir["tuning"] / "summary.json").read_text())
    assert config["trial_id"] == summary["best_trial_id"]  # trained the best trial's config
    training = json.loads((d / "training.json").read_text())
    assert training["epochs_run"] == 1 and training["training_time_s"] > 0
    assert not any(p.name.startswith(".") for p in d.parent.iterdir())  # no temp folders left


def test_evaluate_writes_every_metric(tiny_model_dir):
    d = tiny_model_dir["dir"]
    m = json.loads((d / "metrics.json").read_text())
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 600
    assert abs(np.trace(cm) / 600 - m["accuracy"]) < 1e-4
    assert [c["class"] for c in m["per_class"]] == list(CLASS_NAMES)
    for key in ("accuracy_flip_tta", "accuracy_multicrop_tta", "params", "macs", "throughput_img_s"):
        assert m[key] > 0, key
    for engine in ("keras", "tflite"):
        lat = m["latency_ms"][engine]
        assert 0 < lat["median"] <= lat["p90"] and lat["runs"] == 5
    assert m["file_size_bytes"]["tflite"] > 0 and m["threads"] == 1
    assert m["tflite_runtime"].startswith("ai-edge-litert ")  # which interpreter the TFLite timings ran on
    assert m["tflite_check"]["agreement"] > 0.95  # the export computes the same function
    preds = np.load(d / "test_predictions.npz")
    assert preds["probs"].shape == (600, 10)
    assert (d / "confusion_matrix.png").stat().st_size > 1000
    report = (d / "report.md").read_text()
    assert "top-1 accuracy" in report and "| cat |" in report
    assert f"TFLite through {m['tflite_runtime']}" in report
    assert "accuracy" in tiny_model_dir["evaluate"].stdout


def test_evaluate_scores_and_times_the_int8_export(tiny_model_dir):
    d = tiny_model_dir["dir"]
    assert "calibrated on 20 training images" in tiny_model_dir["quantize"].stdout
    m = json.loads((d / "metrics.json").read_text())
    q = m["int8"]
    assert q["images"] == 600 and 0 <= q["agreement_with_keras"] <= 1
    assert 0 <= q["accuracy"] <= 1 and 0 <= q["accuracy_flip_tta"] <= 1
    # int8 weights: about a quarter of the float file (plus fixed overhead on a tiny model)
    assert 0 < m["file_size_bytes"]["tflite_int8"] < 0.5 * m["file_size_bytes"]["tflite"]
    lat = m["latency_ms"]["tflite_int8"]
    assert 0 < lat["median"] <= lat["p90"] and lat["runs"] == 5
    assert m["latency_ms"]["tflite_int8_flip_tta"]["runs"] == 5
    assert 0 <= q["accuracy_multicrop_tta"] <= 1
    # six forward passes cost more than one (medians over 5 runs of a tiny net: a wide margin)
    assert m["latency_ms"]["tflite_int8_multicrop_tta"]["median"] > m["latency_ms"]["tflite_int8"]["median"]
    assert "6-view TTA" in (d / "report.md").read_text()
    assert "int8 TFLite: top-1 accuracy" in (d / "report.md").read_text()


def test_latency_cli_on_one_thread(tiny_model_dir):
    proc = run_module("trainer.latency", tiny_model_dir["dir"], "--runs", 3, "--warmup", 1, "--json", "--no-tta")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["threads"] == 1 and len(result["keras"]["samples_ms"]) == 3


def test_train_resumes_after_interruption(tmp_path, tiny_model_dir):
    """A run killed after epoch 1 of 2 continues from its checkpoint instead of restarting."""
    ckpt = tmp_path / "ckpt"
    args = ["--config", "default", "--epochs", 2, "--subset", 200, "--batch-size", 64,
            "--out", tmp_path / "out", "--checkpoints", ckpt, "--name", "resume", "--verbose", 0]
    first = run_module("trainer.train", *args, env={"TRAINER_STOP_AFTER_EPOCH": "1"})
    assert first.returncode == 130 and "resume" in first.stderr
    assert not (tmp_path / "out" / "resume").exists()
    first_epochs = json.loads((ckpt / "resume" / "epochs.json").read_text())
    assert len(first_epochs) == 1
    second = run_module("trainer.train", *args)
    assert second.returncode == 0, second.stderr[-2000:]
    training = json.loads((tmp_path / "out" / "resume" / "training.json").read_text())
    assert training["epochs_run"] == 2
    # Epoch 1 was not trained again: its logged loss is the first run's.
    assert training["history"]["loss"][0] == round(first_epochs[0]["loss"], 5)
    assert not (ckpt / "resume").exists()  # checkpoints are cleared after a finished run


def test_train_in_bfloat16_saves_a_float32_model(tmp_path):
    proc = run_module("trainer.train", "--config", "default", "--epochs", 1, "--subset", 200, "--batch-size", 64,
                      "--precision", "bfloat16", "--out", tmp_path / "out", "--checkpoints", tmp_path / "ckpt",
                      "--name", "bf16", "--verbose", 0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import keras

    d = tmp_path / "out" / "bf16"
    model = keras.saving.load_model(d / "model.keras")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert json.loads((d / "config.json").read_text())["precision"] == "bfloat16"
    machine = json.loads((d / "training.json").read_text())["machine"]
    assert isinstance(machine["bfloat16_instructions"], bool)


def test_ablate_scores_variants_on_the_holdout_and_skips_measured_ones(tmp_path):
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"arch": "sepnet", "hyperparameters": {
        "width_1": 16, "width_2": 32, "width_3": 32, "blocks_1": 1, "blocks_2": 1, "blocks_3": 1}}))
    args = ["--config", config, "--subset", 100, "--epochs", 1, "--tuning-dir", tmp_path / "tuning"]
    first = run_module("trainer.ablate", *args, "--variants", "base", "cutout8")
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads((tmp_path / "tuning" / "ablations.json").read_text())
    assert result["budget"]["subset"] == 100
    rows = {r["variant"]: r for r in result["results"]}
    assert set(rows) == {"base", "cutout8"}
    for row in rows.values():
        assert 0.0 <= row["holdout_accuracy"] <= 1.0 and row["params"] > 0
    assert (tmp_path / "tuning" / "ablations.csv").read_text().startswith("variant,change,holdout_accuracy")
    again = run_module("trainer.ablate", *args, "--variants", "base")
    assert again.returncode == 0 and "base: already measured, skipped" in again.stdout
    other_budget = run_module("trainer.ablate", *args, "--epochs", 2, "--variants", "base")
    assert other_budget.returncode == 2 and "holds ablations at another budget" in other_budget.stderr
    assert json.loads((tmp_path / "tuning" / "ablations.json").read_text()) == result  # nothing lost


def test_ablation_variants_default_to_those_the_architecture_has():
    from trainer.ablate import variants_for

    sepnet, airnet = variants_for("sepnet", None), variants_for("airnet", None)
    assert "separable_stage1" in sepnet and "dense_blocks" not in sepnet
    assert "dense_blocks" in airnet and "separable_stage1" not in airnet
    assert sepnet[0] == airnet[0] == "base"


def test_throughput_measures_each_config(tmp_path):
    out = tmp_path / "throughput.json"
    proc = run_module("trainer.throughput", "default", "resnet20", "tuning/airnet_sep.json",
                      "--batches", 1, "--batch-size", 16, "--precision", "float32", "bfloat16", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    names = ("sepnet_default", "resnet20", "airnet_sep")
    assert [(r["name"], r["precision"]) for r in rows] == [
        (name, precision) for name in names for precision in ("float32", "bfloat16")]
    assert all(r["images_per_second"] > 0 and r["params"] < 1_000_000 for r in rows)


def _write_predictions(folder, probs, probs_flip, labels, params):
    folder.mkdir()
    np.savez(folder / "test_predictions.npz", probs=np.asarray(probs, np.float16),
             probs_flip=np.asarray(probs_flip, np.float16), labels=np.asarray(labels))
    (folder / "metrics.json").write_text(json.dumps({"params": params}))


def test_ensemble_averages_saved_predictions(tmp_path):
    # Three images of classes 0, 1, 2. Model a is right on images 0 and 2, model b on 0 and 1; only
    # their average is right on all three. The flipped outputs then overturn image 2.
    labels = [0, 1, 2]
    a = [[.9, .1, 0, *[0] * 7], [.6, .4, 0, *[0] * 7], [0, .3, .7, *[0] * 7]]
    b = [[.9, .1, 0, *[0] * 7], [0, .9, .1, *[0] * 7], [0, .6, .4, *[0] * 7]]
    flipped = [[.9, .1, 0, *[0] * 7], [0, 1, 0, *[0] * 7], [0, 1, 0, *[0] * 7]]
    _write_predictions(tmp_path / "a", a, flipped, labels, 100)
    _write_predictions(tmp_path / "b", b, flipped, labels, 20)
    out = tmp_path / "ensemble.json"
    proc = run_module("trainer.ensemble", tmp_path / "a", tmp_path / "b", "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())["results"]
    assert row == {"models": ["a", "b"], "params": 120, "accuracy": 1.0, "accuracy_flip_tta": 2 / 3}

    _write_predictions(tmp_path / "c", a, a, [0, 1, 1], 5)  # scored on other labels: refused
    proc = run_module("trainer.ensemble", tmp_path / "a", tmp_path / "c")
    assert proc.returncode == 2 and "different test sets" in proc.stderr

    _write_predictions(tmp_path / "d", [row[:9] for row in a], flipped, labels, 5)  # nine classes: refused
    proc = run_module("trainer.ensemble", tmp_path / "a", tmp_path / "d")
    assert proc.returncode == 2 and "shape (3, 9)" in proc.stderr


def test_same_test_images_needs_equal_labels_in_equal_order():
    from trainer.metrics import same_test_images

    assert same_test_images(np.array([3, 1, 4]), [3, 1, 4], (3, 1, 4))
    assert not same_test_images([3, 1, 4], [3, 4, 1])  # same images, other order: not pairable
    assert not same_test_images([3, 1, 4], [3, 1, 4, 1])


def test_exact_mcnemar_p_values():
    from trainer.metrics import exact_mcnemar_p

    assert exact_mcnemar_p(0, 0) == 1.0 and exact_mcnemar_p(5, 5) == 1.0
    assert exact_mcnemar_p(10, 0) == exact_mcnemar_p(0, 10) == 2 / 2**10
    assert exact_mcnemar_p(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 2**10)  # 0.109: not significant


def test_paired_test_counts_disagreements_and_refuses_unequal_sets():
    from trainer.metrics import paired_test

    base = np.array([1, 1, 0, 0, 1, 0], bool)
    new = np.array([1, 0, 1, 1, 1, 1], bool)
    assert paired_test(base, new) == {"difference_points": 33.33, "only_model_right": 3,
                                      "only_baseline_right": 1, "p_value": 0.625}
    with pytest.raises(ValueError, match="different numbers of images"):
        paired_test(base, new[:5])


def test_compare_counts_only_the_images_where_the_models_disagree(tmp_path):
    # Twelve images of class 0. Both models are right on images 0-1 and wrong on 2-3; on 4-11 only
    # the new model is right, so 8 discordant images all favour it. With flip TTA its image 11 turns
    # wrong and the baseline's flipped output turns its image 2 right: 7 to 1.
    labels = [0] * 12
    right, wrong = [1, 0, *[0] * 8], [0, 1, *[0] * 8]
    base = [right] * 2 + [wrong] * 10
    new = [right] * 2 + [wrong] * 2 + [right] * 8
    base_flip = [right] * 2 + [[3, 0, *[0] * 8]] + [wrong] * 9
    new_flip = [right] * 2 + [wrong] * 2 + [right] * 7 + [[0, 3, *[0] * 8]]
    _write_predictions(tmp_path / "base", base, base_flip, labels, 1)
    _write_predictions(tmp_path / "new", new, new_flip, labels, 1)
    out = tmp_path / "compare.json"
    proc = run_module("trainer.compare", tmp_path / "base", tmp_path / "new", "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain, flip = json.loads(out.read_text())["results"]
    assert plain == {"model": "new", "flip_tta": False, "difference_points": 66.67,
                     "only_model_right": 8, "only_baseline_right": 0, "p_value": round(2 / 2**8, 4),
                     "answers_differ": round(8 / 12, 4)}
    assert (flip["only_model_right"], flip["only_baseline_right"]) == (7, 1)
    assert flip["p_value"] == round(2 * (1 + 8) / 2**8, 4)

    _write_predictions(tmp_path / "other", base, base, [1] * 12, 1)  # scored on other labels: refused
    proc = run_module("trainer.compare", tmp_path / "base", tmp_path / "other")
    assert proc.returncode == 2 and "different test sets" in proc.stderr
