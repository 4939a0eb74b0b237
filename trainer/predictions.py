"""test_predictions.npz: an evaluated classifier's softmax outputs on the test split.

`python -m trainer.evaluate` writes it once; the paired comparisons, the ensembles, the committed-model
tests and the dashboard's confusion explorer read it, so none of them runs the model again.
Numpy only, so the dashboard can read it without importing Keras.

    probs       (N, 10) float32   softmax on the test images
    probs_flip  (N, 10) float32   softmax on the same images mirrored left-right
    labels      (N,)    int       true classes, in test-split order

Older committed files hold float16, which rounded a near-tie the wrong way for
an image or two per model (so they may disagree with metrics.json by that much); readers take either.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from trainer.constants import PREDICTIONS_FILENAME
from trainer.data import NUM_CLASSES

FILENAME = PREDICTIONS_FILENAME  # the name other modules import from here


def predictions_bytes(probs: np.ndarray, probs_flip: np.ndarray, labels: np.ndarray) -> bytes:
    """The file's contents, float32 so that arg-maxes match the evaluation's (about 0.7 MB compressed)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, probs=probs.astype(np.float32), probs_flip=probs_flip.astype(np.float32),
                        labels=np.asarray(labels))
    return buffer.getvalue()


def load_predictions(model_dir: Path, need_flip: bool = True) -> dict[str, np.ndarray]:
    """{"probs", "labels"} and, when the file has it, "probs_flip"; probabilities as float64, so that
    sums over models round far less than the stored values. Raises FileNotFoundError or ValueError with the command that mends it."""
    model_dir = Path(model_dir)
    path = model_dir / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {model_dir} an evaluated classifier? "
                                f"(python -m trainer.evaluate {model_dir} writes it)")
    redo = f"re-run python -m trainer.evaluate {model_dir}"
    with np.load(path, allow_pickle=False) as data:
        wanted = {"probs", "labels"} | ({"probs_flip"} if need_flip else set())
        missing = wanted - set(data.files)
        if missing:
            raise ValueError(f"{path} lacks {', '.join(sorted(missing))}: {redo}")
        pred = {k: data[k] for k in ("probs", "probs_flip", "labels") if k in data.files}
    labels = pred["labels"] = np.asarray(pred["labels"]).reshape(-1).astype(np.int64)
    expected = (labels.size, NUM_CLASSES)
    for key in ("probs", "probs_flip"):
        if key in pred:
            if pred[key].shape != expected:
                raise ValueError(f"{path} holds {key} of shape {pred[key].shape} for {labels.size} labels: {redo}")
            pred[key] = pred[key].astype(np.float64)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{path} has labels outside 0-{NUM_CLASSES - 1}: {redo}")
    return pred
