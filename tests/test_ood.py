"""The "none of these" flag (trainer/ood.py): its threshold rule, its AUROC, and the committed
threshold on the shipped classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer import ood


def test_threshold_lets_95_percent_through():
    scores = np.random.default_rng(0).beta(8, 2, 4000)
    threshold = ood.choose_threshold(scores)
    assert 0.949 <= 1 - ood.flag_rate(scores, threshold) <= 0.951


def test_auroc_matches_scikit_learn_with_ties():
    roc_auc_score = pytest.importorskip("sklearn.metrics").roc_auc_score  # comes with keras-tuner[bayesian]

    rng = np.random.default_rng(1)
    inside = np.round(rng.beta(5, 2, 300), 2)   # rounded: many ties
    outside = np.round(rng.beta(2, 3, 200), 2)
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[inside, outside])
    assert ood.auroc(inside, outside) == pytest.approx(expected, abs=1e-12)


def test_flag_is_the_max_softmax_rule():
    assert ood.flag([0.5, 0.3, 0.2] + [0.0] * 7, threshold=0.6)
    assert not ood.flag([0.7, 0.3] + [0.0] * 8, threshold=0.6)
    with pytest.raises(ValueError, match="one image"):
        ood.flag(np.full((2, 10), 0.1), threshold=0.5)


def test_load_threshold_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="trainer.ood_calibrate"):
        ood.load_threshold(tmp_path / "missing.json")
    other = tmp_path / "energy.json"
    other.write_text(json.dumps({"score": "energy", "threshold": 0.5}))
    with pytest.raises(ValueError, match="energy"):
        ood.load_threshold(other)


@pytest.fixture(scope="module")
def shipped():
    """The shipped classifier's float TFLite model and the committed threshold."""
    from trainer.constants import FLOAT_FILENAME
    from trainer.deliverables import deliverable_dir
    from trainer.export import tflite_interpreter, tflite_predict

    interpreter = tflite_interpreter(deliverable_dir("classifier") / FLOAT_FILENAME)
    return (lambda images: tflite_predict(interpreter, images)), ood.load_threshold()


def test_noise_is_flagged_by_the_shipped_classifier(shipped):
    predict, threshold = shipped
    noise = ood.synthetic_images(per_kind=10, seed=0)
    assert all(ood.flag(p, threshold) for p in predict(noise["uniform_noise"][:5]))
    # gaussian noise sometimes looks like a texture the model knows; most of it is still flagged
    assert ood.flag_rate(ood.score(predict(noise["gaussian_noise"])), threshold) >= 0.8


def test_a_test_image_the_model_gets_right_is_not_flagged(shipped):
    from trainer.data import load_cifar10, resolve_archive

    if resolve_archive() is None:
        pytest.skip("needs the offline CIFAR-10 archive")
    predict, threshold = shipped
    data = load_cifar10(splits=("test",))
    probs = predict(data.x_test[:20])
    right = np.flatnonzero(probs.argmax(1) == data.y_test[:20])
    assert right.size
    best = right[np.argmax(probs[right].max(1))]  # the most confident right answer among them
    assert not ood.flag(probs[best], threshold)
    # and not merely because the threshold is low: the flag fires on most noise (above)
    assert threshold > 0.5
