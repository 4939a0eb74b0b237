"""Shared fixtures: the real CIFAR-10 archive (loaded once) and a tiny trained model folder.

The project is installed (`pip install -e .`, a line of requirements.txt), so `trainer` imports
from anywhere; `run_module` is imported by the test files from this folder, which pytest's
rootdir-based collection puts on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_configure(config):
    # Keras 3.15 converts tensors with np.array(x) inside its own backend, and numpy 2 warns about
    # that on every call (about 1,800 lines per run); ours to read are the others.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras")


def run_module(module: str, *args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python -m module args` from the repo root, as a user would."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def cifar():
    from trainer.data import load_cifar10

    return load_cifar10()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """search -> train -> quantize -> evaluate on a few hundred images: the real commands, end to end."""
    root = tmp_path_factory.mktemp("e2e")
    tuning, out = root / "tuning", root / "saved_models"
    search = run_module("trainer.search", "--max-trials", 2, "--subset", 200, "--val-size", 100,
                        "--epochs", 1, "--batch-size", 64, "--tuning-dir", tuning, "--verbose", 0)
    assert search.returncode == 0, search.stderr[-3000:]
    train = run_module("trainer.train", "--recipe", "best", "--epochs", 1, "--subset", 300, "--batch-size", 64,
                       "--tuning-dir", tuning, "--out", out, "--checkpoints", root / "ckpt",
                       "--name", "tiny", "--verbose", 0)
    assert train.returncode == 0, train.stderr[-3000:]
    model_dir = out / "tiny"
    quantize = run_module("trainer.quantize", model_dir, "--calibration", 20)
    assert quantize.returncode == 0, quantize.stderr[-3000:]
    # A smoke evaluation on part of the test split: its files go to a folder of their own.
    results = root / "evaluation"
    results.mkdir()
    evaluate = run_module("trainer.evaluate", model_dir, "--runs", 5, "--warmup", 1, "--limit", 600, "--out", results)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    return {"dir": model_dir, "results": results, "tuning": tuning, "search": search, "train": train,
            "quantize": quantize, "evaluate": evaluate}
