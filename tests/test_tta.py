"""Test-time augmentation views and weights (trainer/tta.py)."""

import numpy as np
import pytest

from trainer.tta import MULTICROP_VIEWS, flip_probs, mirror, multicrop_probs, translate


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)


def test_translate_moves_content_and_reflects_the_border(images):
    down_right = translate(images, 1, 1)
    assert down_right.shape == images.shape
    np.testing.assert_array_equal(down_right[:, 1:, 1:], images[:, :-1, :-1])
    np.testing.assert_array_equal(down_right[:, 0, 1:], images[:, 1, :-1])  # reflected, edge not repeated
    up_left = translate(images, -1, -1)
    np.testing.assert_array_equal(up_left[:, :-1, :-1], images[:, 1:, 1:])
    assert translate(images, 0, 0) is images


def test_multicrop_averages_six_views_with_airbench_weights(images):
    seen = []

    def predict(x):  # a "classifier" whose output identifies the view it was given
        seen.append(x.copy())
        return x.reshape(len(x), -1)

    probs = multicrop_probs(predict, images)
    assert len(seen) == MULTICROP_VIEWS
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    pair = lambda x: (flat(x) + flat(mirror(x))) / 2  # noqa: E731
    expected = 0.5 * pair(images) + 0.25 * pair(translate(images, 1, 1)) + 0.25 * pair(translate(images, -1, -1))
    np.testing.assert_allclose(probs, expected, rtol=1e-6)


def test_multicrop_reuses_a_given_flip_average(images):
    calls = []

    def predict(x):
        calls.append(1)
        return np.ones((len(x), 10)) / 10

    flip = flip_probs(predict, images)
    calls.clear()
    out = multicrop_probs(predict, images, flip=flip)
    assert len(calls) == MULTICROP_VIEWS - 2
    np.testing.assert_allclose(out.sum(1), 1.0)
