"""Test-time augmentation: average a classifier's probabilities over transformed copies of the input.

Two levels, both on NHWC uint8/float batches and any `predict(images) -> probabilities`:
- flip: the image and its mirror image (2 forward passes);
- multi-crop: airbench's level-2 TTA (Jordan 2024): the flip pair at weight 1/2, plus the flip pairs
  of the image moved one pixel down-right and one pixel up-left (border reflected), 1/4 each;
  6 forward passes. Training used flip + pad-and-crop, so these views are in-distribution.
"""

from __future__ import annotations

import numpy as np

MULTICROP_VIEWS = 6


def mirror(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[:, :, ::-1])


def translate(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """x moved by (dy, dx) pixels; the uncovered border is filled by reflection."""
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return x
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return np.ascontiguousarray(padded[:, pad - dy: pad - dy + h, pad - dx: pad - dx + w])


def flip_probs(predict, x: np.ndarray) -> np.ndarray:
    return (predict(x) + predict(mirror(x))) / 2


def multicrop_probs(predict, x: np.ndarray, flip: np.ndarray | None = None) -> np.ndarray:
    """The 6-view average; pass `flip` = flip_probs(predict, x) when it is already computed."""
    flip = flip_probs(predict, x) if flip is None else flip
    shifted = (flip_probs(predict, translate(x, 1, 1)) + flip_probs(predict, translate(x, -1, -1))) / 2
    return (flip + shifted) / 2
