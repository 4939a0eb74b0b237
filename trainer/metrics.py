"""Classification metrics from labels and predictions (numpy only, no sklearn needed)."""

from __future__ import annotations

import numpy as np

from trainer.data import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names=CLASS_NAMES) -> dict:
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    tp = np.diag(cm).astype(float)
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    per_class = [
        # Per-class accuracy is the share of that class's images classified right: its recall.
        {"class": name, "accuracy": round(float(r), 4), "precision": round(float(p), 4),
         "recall": round(float(r), 4), "f1": round(float(f), 4), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    ]
    return {
        "accuracy": round(float(tp.sum() / max(cm.sum(), 1)), 5),
        "per_class": per_class,
        "macro_avg": {"precision": round(float(precision.mean()), 4), "recall": round(float(recall.mean()), 4),
                      "f1": round(float(f1.mean()), 4)},
        "confusion_matrix": cm.tolist(),
    }


def most_confused_pairs(cm, class_names=CLASS_NAMES, top: int = 5) -> list[dict]:
    """The off-diagonal cells with the most images: (true, predicted, count)."""
    cm = np.asarray(cm).copy()
    np.fill_diagonal(cm, 0)
    order = np.argsort(cm, axis=None)[::-1][:top]
    return [{"true": class_names[i // cm.shape[1]], "predicted": class_names[i % cm.shape[1]],
             "count": int(cm.flat[i])} for i in order if cm.flat[i] > 0]
