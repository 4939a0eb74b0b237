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
    assert best["status"] == "COMPLETED"
    assert best["val_accuracy"] == max(t["val_accuracy"] for t in summary["trials"] if t["status"] == "COMPLETED")
    assert 0 < best["params"] < 1_000_000 and best["macs"] > 0
    first = min(summary["trials"], key=lambda t: int(t["trial_id"]))  # the hand-designed net comes first
    assert (first["hp_width_2"], first["hp_type_2"], first["hp_cutout"]) == (256, "separable", 8)
    assert summary["best_recipe"]["arch"] == "airnet"
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


def test_evaluate_with_limit_writes_only_into_its_out_folder(tiny_model_dir, tmp_path):
    assert not (tiny_model_dir["dir"] / "metrics.json").exists()  # the smoke run left the model folder alone
    m = json.loads((tiny_model_dir["results"] / "metrics.json").read_text())
    assert m["test_images"] == 600
    # Without --out a smoke run writes nothing at all.
    before = sorted(p.name for p in tiny_model_dir["dir"].iterdir())
    proc = run_module("trainer.evaluate", tiny_model_dir["dir"], "--runs", 1, "--warmup", 0, "--limit", 50)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nothing written" in proc.stdout
    assert sorted(p.name for p in tiny_model_dir["dir"].iterdir()) == before


def test_evaluate_with_limit_never_overwrites_full_metrics(tiny_model_dir, tmp_path):
    """A model folder with whole-split results keeps them byte for byte through a --limit run."""
    import shutil

    d = tmp_path / "model"
    shutil.copytree(tiny_model_dir["dir"], d)
    for name in ("metrics.json", "report.md", "confusion_matrix.png", "test_predictions.npz"):
        shutil.copy(tiny_model_dir["results"] / name, d / name)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    proc = run_module("trainer.evaluate", d, "--runs", 1, "--warmup", 0, "--limit", 30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    refused = run_module("trainer.evaluate", d, "--limit", 30, "--out", d)
    assert refused.returncode == 2 and "cannot go into the model folder" in refused.stderr


def test_evaluate_writes_every_metric(tiny_model_dir):
    d = tiny_model_dir["results"]
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
    # The timing child's TensorFlow reports one intra-op thread (read from TF, not set by the caller).
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


def _is_count_of(fraction: float, images: int) -> bool:
    """A rounded share of `images` images, e.g. 0.31667 of 600: a count over the images, not a stray value."""
    return abs(fraction * images - round(fraction * images)) < 0.01 and 0 <= round(fraction * images) <= images


def test_evaluate_scores_and_times_the_int8_export(tiny_model_dir):
    d = tiny_model_dir["results"]
    assert "calibrated on 20 training images" in tiny_model_dir["quantize"].stdout
    assert (tiny_model_dir["dir"] / "model_int8.tflite").is_file()
    m = json.loads((d / "metrics.json").read_text())
    q = m["int8"]
    assert q["images"] == 600
    for key in ("accuracy", "accuracy_flip_tta", "accuracy_multicrop_tta"):
        assert _is_count_of(q[key], 600), key
    # int8 weights: about a quarter of the float file (plus fixed overhead on a tiny model)
    assert 0 < m["file_size_bytes"]["tflite_int8"] < 0.5 * m["file_size_bytes"]["tflite"]
    lat = m["latency_ms"]["tflite_int8"]
    assert 0 < lat["median"] <= lat["p90"] and lat["runs"] == 5
    assert m["latency_ms"]["tflite_int8_flip_tta"]["runs"] == 5
    # six forward passes cost more than one (medians over 5 runs of a tiny net: a wide margin)
    assert m["latency_ms"]["tflite_int8_multicrop_tta"]["median"] > m["latency_ms"]["tflite_int8"]["median"]
    assert "6-view TTA" in (d / "report.md").read_text()
    assert "int8 TFLite: top-1 accuracy" in (d / "report.md").read_text()


def test_latency_runs_in_a_child_with_one_intra_op_thread(tiny_model_dir):
    from trainer.timing import measure_in_subprocess

    # This process uses TF's default pools (all cores); the child must report its own single thread.
    result = measure_in_subprocess(tiny_model_dir["dir"], runs=3, warmup=1, flip_tta=False)
    assert result["threads"] == 1 and result["inter_op_threads"] == 1
    assert len(result["keras"]["samples_ms"]) == 3


def test_train_resumes_after_interruption(tmp_path, tiny_model_dir):
    """A run killed after epoch 1 of 2 continues from its checkpoint instead of restarting."""
    ckpt = tmp_path / "ckpt"
    args = ["--recipe", "default", "--epochs", 2, "--subset", 200, "--batch-size", 64,
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


def test_a_kill_between_fit_and_export_loses_no_epoch(tmp_path):
    """Killed after the last epoch but before the model folder exists: the rerun exports the
    checkpointed weights without training any epoch again."""
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    args = ["--recipe", "default", "--epochs", 2, "--subset", 100, "--batch-size", 50,
            "--out", out, "--checkpoints", ckpt, "--name", "window", "--verbose", 2]
    first = run_module("trainer.train", *args, env={"TRAINER_STOP_BEFORE_EXPORT": "1"})
    assert first.returncode == 130 and "run the same command again to resume" in first.stderr
    assert first.stdout.count("Epoch ") == 2 and not (out / "window").exists()
    assert (ckpt / "window" / "backup").is_dir()  # the checkpoint outlived fit
    second = run_module("trainer.train", *args)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Epoch " not in second.stdout  # nothing retrained
    training = json.loads((out / "window" / "training.json").read_text())
    assert training["epochs_run"] == 2
    assert not (ckpt / "window").exists()


def test_a_torn_checkpoint_gets_one_line_naming_the_folder_to_delete(tmp_path):
    ckpt = tmp_path / "ckpt"
    args = ["--recipe", "default", "--epochs", 2, "--subset", 100, "--batch-size", 50,
            "--out", tmp_path / "out", "--checkpoints", ckpt, "--name", "torn", "--verbose", 0]
    first = run_module("trainer.train", *args, env={"TRAINER_STOP_AFTER_EPOCH": "1"})
    assert first.returncode == 130
    for weights in (ckpt / "torn" / "backup").glob("*.h5*"):
        weights.write_bytes(weights.read_bytes()[:1000])  # as a kill in mid-write leaves it
    second = run_module("trainer.train", *args)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr[-2000:]
    assert lines[0].startswith("error: the checkpoint in") and f"delete {ckpt / 'torn'} " in lines[0]


def test_train_recipe_replays_the_shipped_recipe_with_explicit_overrides(tmp_path):
    from trainer import recipes
    from trainer.deliverables import deliverable_name

    shipped = deliverable_name("classifier")
    proc = run_module("trainer.train", "--recipe", shipped, "--epochs", 1, "--subset", 100, "--batch-size", 50,
                      "--name", "replay", "--out", tmp_path / "out", "--checkpoints", tmp_path / "ck", "--verbose", 0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "out" / "replay" / "config.json").read_text())
    recipe = recipes.load(shipped)
    overridden = {"name": "replay", "epochs": 1, "subset": 100, "batch_size": 50}
    assert {k: config[k] for k in recipes.RECIPE_KEYS} == {**recipe, **overridden}
    assert config["train_images"] == 100
    # The saved config is itself a recipe: replayed, it gives this very run back.
    assert recipes.load(str(tmp_path / "out" / "replay" / "config.json")) == {**recipe, **overridden}


def test_train_in_bfloat16_saves_a_float32_model(tmp_path):
    proc = run_module("trainer.train", "--recipe", "default", "--epochs", 1, "--subset", 200, "--batch-size", 64,
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
    for row in rows.values():  # scored on all 5,000 hold-out images
        assert _is_count_of(row["holdout_accuracy"], 5000) and row["params"] > 0
    assert (tmp_path / "tuning" / "ablations.csv").read_text().startswith("variant,change,holdout_accuracy")
    again = run_module("trainer.ablate", *args, "--variants", "base")
    assert again.returncode == 0 and "base: already measured, skipped" in again.stdout
    other_budget = run_module("trainer.ablate", *args, "--epochs", 2, "--variants", "base")
    assert other_budget.returncode == 2 and "holds ablations at another budget" in other_budget.stderr
    assert json.loads((tmp_path / "tuning" / "ablations.json").read_text()) == result  # nothing lost


def test_ablation_variants_default_to_those_the_architecture_has():
    from trainer.ablations import variants_for

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
