"""User mistakes end in one clear line and exit code 2, never a traceback."""

import pytest

from conftest import run_module


@pytest.mark.parametrize("module", ["trainer.search", "trainer.train", "trainer.ablate", "trainer.throughput",
                                    "trainer.evaluate", "trainer.latency", "trainer.quantize", "trainer.ensemble",
                                    "trainer.compare"])
def test_help(module):
    proc = run_module(module, "--help")
    assert proc.returncode == 0 and "usage: python -m " + module in proc.stdout


def _assert_user_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr


def test_train_with_a_missing_archive(tmp_path):
    proc = run_module("trainer.train", "--config", "default", "--data", tmp_path / "missing.tar.gz",
                      "--out", tmp_path, "--checkpoints", tmp_path / "ck")
    _assert_user_error(proc, "error: CIFAR-10 archive not found", "missing.tar.gz")


def test_train_with_a_corrupt_archive(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    proc = run_module("trainer.train", "--config", "default", "--data", bad, "--out", tmp_path,
                      "--checkpoints", tmp_path / "ck")
    _assert_user_error(proc, "corrupt or truncated", "bad.tar.gz")


def test_train_best_without_a_search(tmp_path):
    proc = run_module("trainer.train", "--tuning-dir", tmp_path, "--out", tmp_path)
    _assert_user_error(proc, "no search summary", "python -m trainer.search")


def test_train_rejects_bad_numbers(tmp_path):
    proc = run_module("trainer.train", "--epochs", 0)
    assert proc.returncode == 2 and "--epochs must be at least 1" in proc.stderr


def test_train_refuses_an_oversized_config(tmp_path):
    config = tmp_path / "big.json"
    config.write_text('{"arch": "sepnet", "hyperparameters": {"width_3": 320, "blocks_3": 3, "expansion": 4}}')
    proc = run_module("trainer.train", "--config", config, "--out", tmp_path, "--checkpoints", tmp_path / "ck",
                      "--subset", 100)
    _assert_user_error(proc, "parameters; the limit is < 1,000,000")


def test_ablate_with_a_missing_or_oversized_config(tmp_path):
    missing = run_module("trainer.ablate", "--config", tmp_path / "nope.json", "--tuning-dir", tmp_path)
    _assert_user_error(missing, "missing", "nope.json")
    big = tmp_path / "big.json"
    big.write_text('{"arch": "sepnet", "hyperparameters": {"width_3": 320, "blocks_3": 3, "expansion": 4}}')
    oversized = run_module("trainer.ablate", "--config", big, "--variants", "base", "--subset", 100,
                           "--tuning-dir", tmp_path)
    _assert_user_error(oversized, "limit is < 1,000,000", "variant base: trainer.train failed")


def test_ablate_refuses_a_variant_the_architecture_would_ignore(tmp_path):
    proc = run_module("trainer.ablate", "--config", "tuning/airnet_sep.json", "--variants", "base",
                      "separable_stage1", "--tuning-dir", tmp_path)
    _assert_user_error(proc, "variant separable_stage1 does not apply to arch 'airnet'", "first_stage")
    assert not (tmp_path / "ablations.json").exists()  # refused before anything was trained


def test_evaluate_a_missing_model(tmp_path):
    proc = run_module("trainer.evaluate", tmp_path / "nothing")
    _assert_user_error(proc, "no model file")


def test_evaluate_a_corrupt_model(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"junk")
    proc = run_module("trainer.evaluate", tmp_path)
    _assert_user_error(proc, "cannot load")


def test_quantize_a_missing_model_or_with_too_few_images(tmp_path):
    _assert_user_error(run_module("trainer.quantize", tmp_path / "nothing"), "no model file")
    few = run_module("trainer.quantize", tmp_path, "--calibration", 3)
    assert few.returncode == 2 and "--calibration must be at least 10" in few.stderr


def test_ensemble_of_a_folder_that_was_never_evaluated(tmp_path):
    (tmp_path / "a").mkdir()
    proc = run_module("trainer.ensemble", tmp_path / "a", tmp_path / "a")
    _assert_user_error(proc, "test_predictions.npz not found", "python -m trainer.evaluate")
    proc = run_module("trainer.ensemble", tmp_path / "a")
    assert proc.returncode == 2 and "at least two models" in proc.stderr
