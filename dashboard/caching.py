"""Data and models shared by every session of this server (cached), and the locks that run heavy
jobs one at a time.

TensorFlow is imported lazily (only by the pages that run a model), so the overview renders
without paying for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import streamlit as st

from dashboard.discovery import ModelEntry, check_keras_file, display_path
from trainer.constants import KERAS_FILENAME, PREDICTIONS_FILENAME
from trainer.predictions import load_predictions


class DashboardDataError(Exception):
    """Test images or predictions are unavailable; the message says what to do."""


# --------------------------------------------------------------------------------------------
# The test images: a plain module-level cache, so a background thread can fill it at start-up
# (see prefetch_test_set) as well as a page.

_TEST_SETS: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
_TEST_LOCK = threading.Lock()
_PREFETCH_STARTED = False


def _load_test_set(path: str) -> tuple[np.ndarray, np.ndarray, str]:
    with _TEST_LOCK:
        if path not in _TEST_SETS:
            from trainer.data import load_cifar10

            data = load_cifar10(path, splits=("test",))
            _TEST_SETS[path] = (data.x_test, data.y_test, data.source)
        return _TEST_SETS[path]


def prefetch_test_set() -> None:
    """Starts reading the test images in the background, once per server, so the first visit to
    the confusion explorer does not wait for it. Faults are left for the page to report."""
    global _PREFETCH_STARTED
    if _PREFETCH_STARTED:
        return
    _PREFETCH_STARTED = True
    from trainer.data import resolve_archive

    path = resolve_archive()
    if path is None or not Path(path).is_file():
        return

    def work():
        time.sleep(3.0)  # let the first page render first
        with contextlib.suppress(Exception):
            _load_test_set(str(path))

    threading.Thread(target=work, name="prefetch-cifar10-test", daemon=True).start()


def test_set() -> tuple[np.ndarray, np.ndarray, str]:
    """(x_test uint8 (10000,32,32,3), y_test, source) from the local archive.

    Never downloads (the dashboard must work offline): raises DashboardDataError with the fix.
    """
    from trainer.data import ARCHIVE_ENV, DataError, resolve_archive

    path = resolve_archive()
    if path is None:
        raise DashboardDataError(
            "The CIFAR-10 test images are not available offline. Set the "
            f"`{ARCHIVE_ENV}` environment variable to the path of `cifar-10-python.tar.gz`.")
    try:
        if str(path) in _TEST_SETS:
            return _TEST_SETS[str(path)]
        with st.spinner("Loading the CIFAR-10 test images…"):
            return _load_test_set(str(path))
    except DataError as exc:
        raise DashboardDataError(str(exc)) from exc


# --------------------------------------------------------------------------------------------
# Saved predictions and models


@st.cache_data(show_spinner=False, max_entries=16)
def _predictions_cached(model_dir: str, mtime: int) -> tuple[np.ndarray, np.ndarray]:
    pred = load_predictions(Path(model_dir), need_flip=False)  # the pages show plain predictions only
    return pred["probs"].astype(np.float32), pred["labels"]


def predictions(entry: ModelEntry) -> tuple[np.ndarray, np.ndarray]:
    """(probs float32 (N,10), labels) from test_predictions.npz, or DashboardDataError."""
    f = entry.path / PREDICTIONS_FILENAME
    if not f.is_file():
        raise DashboardDataError(
            f"{entry.name} has no saved test predictions yet. Run "
            f"`python -m trainer.evaluate {display_path(entry.path)}` to create them.")
    try:
        return _predictions_cached(str(entry.path), f.stat().st_mtime_ns)
    except Exception as exc:  # zip/npz faults come in many types
        raise DashboardDataError(
            f"The saved test predictions of {entry.name} could not be read ({exc}). "
            f"Re-run `python -m trainer.evaluate {display_path(entry.path)}`.") from exc


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _classifier_cached(path: str, mtime: int):
    from trainer.models import load_classifier

    return load_classifier(path)


def classifier(entry: ModelEntry):
    """The Keras model (cached per server), or DashboardDataError with a friendly reason."""
    f = entry.path / KERAS_FILENAME
    problem = check_keras_file(f)
    if problem:
        raise DashboardDataError(f"{entry.name}: {problem}.")
    try:
        return _classifier_cached(str(f), f.stat().st_mtime_ns)
    except Exception as exc:
        raise DashboardDataError(
            f"{entry.name} could not be loaded ({exc.__class__.__name__}: {str(exc)[:300]}).") from exc


def predict(model, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities for uint8 or float images (N,32,32,3), values 0-255."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    return np.asarray(model(x, training=False), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Serialising heavy work across sessions (and across processes on this machine)


@st.cache_resource
def _thread_locks() -> dict[str, threading.Lock]:
    return {"latency": threading.Lock(), "generation": threading.Lock()}


def lock_busy(name: str) -> bool:
    return _thread_locks()[name].locked()


@contextlib.contextmanager
def exclusive(name: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Runs one `name` job at a time: a lock shared by all sessions of this server plus a file
    lock shared by every dashboard process on this machine. Raises TimeoutError if it waits
    longer than `timeout_s`."""
    lock = _thread_locks()[name]
    if not lock.acquire(timeout=timeout_s):
        raise TimeoutError(f"another {name} job is still running")
    try:
        path = Path(tempfile.gettempdir()) / f"cifar-dashboard-{name}.lock"
        with open(path, "a") as fh:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"another {name} job is still running") from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        lock.release()
