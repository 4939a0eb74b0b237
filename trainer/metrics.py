"""Classification metrics from labels and predictions (numpy only, no sklearn needed)."""

from __future__ import annotations

import math

import numpy as np

from trainer.data import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def class_recall(cm: np.ndarray) -> np.ndarray:
    """Per-class accuracy: the share of each true class predicted right (0 for an empty class)."""
    support = cm.sum(1)
    return np.divide(np.diag(cm), support, out=np.zeros(len(cm)), where=support > 0)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names=CLASS_NAMES) -> dict:
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    tp = np.diag(cm).astype(float)
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = class_recall(cm)
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


def same_test_images(*labels: np.ndarray) -> bool:
    """Whether predictions were scored on the same test images, in the same order: the condition for
    comparing or averaging them image by image. Equal label sequences are the evidence available."""
    first = np.asarray(labels[0])
    return all(np.array_equal(np.asarray(other), first) for other in labels[1:])


def exact_mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided p-value of `only_a` vs `only_b` discordant images under a fair coin."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    # Exact integer arithmetic: n is at most the test-set size, so the sums stay cheap.
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_test(baseline_right: np.ndarray, model_right: np.ndarray) -> dict:
    """Exact McNemar test of two models on the same images, from per-image right/wrong flags.

    Only the images where exactly one model is right carry evidence; if the models were equally
    accurate, each would be a fair coin. Covers test-set sampling only, not training seeds.
    """
    baseline_right, model_right = np.asarray(baseline_right, bool), np.asarray(model_right, bool)
    if baseline_right.shape != model_right.shape:
        raise ValueError(f"the models were scored on different numbers of images "
                         f"({baseline_right.size} and {model_right.size})")
    only_model = int((model_right & ~baseline_right).sum())
    only_base = int((baseline_right & ~model_right).sum())
    return {"difference_points": round(100 * float(model_right.mean() - baseline_right.mean()), 2),
            "only_model_right": only_model, "only_baseline_right": only_base,
            "p_value": round(exact_mcnemar_p(only_model, only_base), 4)}


def require_same_test_set(preds: list[dict[str, np.ndarray]]) -> None:
    if not same_test_images(*(p["labels"] for p in preds)):
        raise ValueError("the models were evaluated on different test sets; re-evaluate them on the same data")


def ensemble_accuracy(preds: list[dict[str, np.ndarray]]) -> dict:
    """Accuracy of the averaged softmax outputs (test_predictions.npz contents), plain and with flip TTA."""
    require_same_test_set(preds)
    labels = preds[0]["labels"]
    plain = sum(p["probs"] for p in preds)
    flip = plain + sum(p["probs_flip"] for p in preds)
    return {"accuracy": float((plain.argmax(1) == labels).mean()),
            "accuracy_flip_tta": float((flip.argmax(1) == labels).mean())}


def paired_comparison(baseline: dict[str, np.ndarray], model: dict[str, np.ndarray], flip_tta: bool) -> dict:
    """paired_test of two evaluated models on the same test images, plus how often their answers differ."""
    require_same_test_set([baseline, model])

    def predicted(pred):
        return (pred["probs"] + pred["probs_flip"] if flip_tta else pred["probs"]).argmax(1)

    labels = baseline["labels"]
    base_pred, model_pred = predicted(baseline), predicted(model)
    # How often the two answer differently at all: between two seeds of one recipe, that is training noise.
    return {**paired_test(base_pred == labels, model_pred == labels),
            "answers_differ": round(float((base_pred != model_pred).mean()), 4)}
