"""trainer/predictions.py: the one writer and reader of test_predictions.npz (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.predictions import FILENAME, load_predictions, predictions_bytes


def _probs(n: int, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).random((n, 10))
    return p / p.sum(1, keepdims=True)


def test_round_trip_keeps_the_float32_values_and_labels(tmp_path):
    probs, flip, labels = _probs(7), _probs(7, 1), np.array([0, 9, 3, 3, 1, 2, 8])
    (tmp_path / FILENAME).write_bytes(predictions_bytes(probs, flip, labels))
    pred = load_predictions(tmp_path)
    assert pred["probs"].dtype == np.float64 and pred["labels"].dtype == np.int64
    np.testing.assert_array_equal(pred["probs"], probs.astype(np.float32))
    np.testing.assert_array_equal(pred["probs_flip"], flip.astype(np.float32))
    np.testing.assert_array_equal(pred["labels"], labels)


def test_flip_outputs_are_needed_only_when_asked_for(tmp_path):
    np.savez(tmp_path / FILENAME, probs=_probs(4), labels=np.arange(4))  # an older file: no probs_flip
    assert set(load_predictions(tmp_path, need_flip=False)) == {"probs", "labels"}
    with pytest.raises(ValueError, match="lacks probs_flip: re-run python -m trainer.evaluate"):
        load_predictions(tmp_path)


@pytest.mark.parametrize("contents, needle", [
    (dict(probs=_probs(3)[:, :9], labels=[0, 1, 2]), r"probs of shape \(3, 9\) for 3 labels"),
    (dict(probs=_probs(3), labels=[0, 1]), r"probs of shape \(3, 10\) for 2 labels"),
    (dict(probs=_probs(3), labels=[0, 1, 10]), "labels outside 0-9"),
    (dict(labels=[0, 1, 2]), "lacks probs")])
def test_malformed_files_are_refused_with_the_mending_command(tmp_path, contents, needle):
    np.savez(tmp_path / FILENAME, **contents)
    with pytest.raises(ValueError, match=needle):
        load_predictions(tmp_path, need_flip=False)


def test_missing_file_names_the_command_that_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m trainer.evaluate"):
        load_predictions(tmp_path)
