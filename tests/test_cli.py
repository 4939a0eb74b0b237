"""User mistakes end in one clear line and exit code 2, never a traceback, and cost no data."""

import hashlib
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_module


@pytest.mark.parametrize("module", ["trainer.search", "trainer.train", "trainer.ablate", "trainer.throughput",
                                    "trainer.evaluate", "trainer.latency", "trainer.quantize", "trainer.ensemble",
                                    "trainer.compare", "trainer.proxy_check"])
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
    proc = run_module("trainer.train", "--recipe", "best", "--tuning-dir", tmp_path, "--out", tmp_path)
    _assert_user_error(proc, "no search summary", "python -m trainer.search")


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size", "--subset"])
def test_train_rejects_bad_numbers_in_argparse(flag):
    proc = run_module("trainer.train", flag, 0)
    assert proc.returncode == 2 and f"argument {flag}: must be at least 1, got 0" in proc.stderr


def _tree_digest(folder):
    """Every path, size and byte under folder: equal digests mean nothing was touched."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", [".", "..", "a/b", "/abs", "", "../escape", ".hidden"])
def test_train_refuses_a_bad_name_before_anything_runs(tmp_path, name):
    models = tmp_path / "models"
    (models / "kept").mkdir(parents=True)
    (models / "kept" / "model.keras").write_bytes(b"a committed model")
    before = _tree_digest(tmp_path)
    start = time.perf_counter()
    proc = run_module("trainer.train", "--recipe", "default", "--name", name, "--epochs", 1, "--subset", 100,
                      "--out", models, "--checkpoints", tmp_path / "ck")
    assert proc.returncode == 2 and "--name" in proc.stderr and "Traceback" not in proc.stderr
    assert time.perf_counter() - start < 20  # refused at argument parsing, not after training
    assert "training images" not in proc.stdout
    assert _tree_digest(tmp_path) == before


@pytest.mark.parametrize("out", [".", "..", "/"])
def test_train_refuses_the_repository_or_a_folder_above_it_as_out(tmp_path, out):
    proc = run_module("trainer.train", "--recipe", "default", "--epochs", 1, "--subset", 100, "--out", out,
                      "--checkpoints", tmp_path / "ck")
    _assert_user_error(proc, "is the repository or a folder above it")


def test_train_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"not ours")
    before = _tree_digest(tmp_path)
    proc = run_module("trainer.train", "--recipe", "default", "--name", "photos", "--epochs", 1, "--subset", 100,
                      "--out", tmp_path, "--checkpoints", tmp_path / "ck")
    _assert_user_error(proc, "refusing to replace", "photos")
    assert _tree_digest(tmp_path) == before


def test_search_refuses_a_bad_project_name(tmp_path):
    proc = run_module("trainer.search", "--project", "..", "--tuning-dir", tmp_path)
    assert proc.returncode == 2 and "argument --project" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_huge_config_is_refused_in_seconds_without_building_it(tmp_path):
    config = tmp_path / "huge.json"
    config.write_text('{"arch": "airnet", "hyperparameters": {"widths": [100000000, 256, 512]}}')
    start = time.perf_counter()
    # A grandchild of its own, so RUSAGE_CHILDREN's peak is this command's and no earlier test's.
    script = ("import resource, subprocess, sys; p = subprocess.run([sys.executable, '-m', 'trainer.train', "
              f"'--recipe', {str(config)!r}, '--out', {str(tmp_path)!r}], capture_output=True, text=True); "
              "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
              "print(p.stderr, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    returncode, maxrss_kb = map(int, proc.stdout.split())
    assert returncode == 2 and "our limit is under 1,000,000" in proc.stderr, proc.stderr
    assert elapsed < 10
    assert maxrss_kb / 1024 < 300  # ru_maxrss is in kilobytes; TensorFlow alone would take more


def test_train_refuses_an_oversized_config(tmp_path):
    config = tmp_path / "big.json"
    config.write_text('{"arch": "sepnet", "hyperparameters": {"width_3": 320, "blocks_3": 3, "expansion": 4}}')
    proc = run_module("trainer.train", "--config", config, "--out", tmp_path, "--checkpoints", tmp_path / "ck",
                      "--subset", 100)
    _assert_user_error(proc, "parameters; our limit is under 1,000,000")


def test_a_cli_error_prints_no_tensorflow_log_line(tmp_path):
    """TensorFlow is imported (to load the model) before the error: still only our line on stderr."""
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 torn zip")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TRAINER_VERBOSE")}
    proc = subprocess.run([sys.executable, "-m", "trainer.evaluate", tmp_path], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: ")


def test_ablate_with_a_missing_or_oversized_config(tmp_path):
    missing = run_module("trainer.ablate", "--config", tmp_path / "nope.json", "--tuning-dir", tmp_path)
    _assert_user_error(missing, "is neither a recipe", "nope.json")
    big = tmp_path / "big.json"
    big.write_text('{"arch": "sepnet", "hyperparameters": {"width_3": 320, "blocks_3": 3, "expansion": 4}}')
    oversized = run_module("trainer.ablate", "--config", big, "--variants", "base", "--subset", 100,
                           "--tuning-dir", tmp_path)
    _assert_user_error(oversized, "our limit is under 1,000,000")
    assert not (tmp_path / "ablations.json").exists()  # refused before the first variant trained


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


def test_a_truncated_keras_file_is_called_truncated(tmp_path):
    shipped = REPO / "saved_models"
    source = next(shipped.glob("*/model.keras"))
    (tmp_path / "model.keras").write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    proc = run_module("trainer.evaluate", tmp_path)
    _assert_user_error(proc, "not a complete .keras file (truncated or corrupt")
    assert "not found" not in proc.stderr.lower()


def test_quantize_a_missing_model_or_with_too_few_images(tmp_path):
    _assert_user_error(run_module("trainer.quantize", tmp_path / "nothing"), "no model file")
    few = run_module("trainer.quantize", tmp_path, "--calibration", 3)
    assert few.returncode == 2 and "--calibration must be at least 10" in few.stderr
    zero = run_module("trainer.quantize", tmp_path, "--calibration", 0)
    assert zero.returncode == 2 and "argument --calibration: must be at least 1" in zero.stderr


def test_ensemble_of_a_folder_that_was_never_evaluated(tmp_path):
    (tmp_path / "a").mkdir()
    proc = run_module("trainer.ensemble", tmp_path / "a", tmp_path / "a")
    _assert_user_error(proc, "test_predictions.npz not found", "python -m trainer.evaluate")
    proc = run_module("trainer.ensemble", tmp_path / "a")
    assert proc.returncode == 2 and "at least two models" in proc.stderr
