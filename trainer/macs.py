"""Multiply-accumulate count of one forward pass (batch 1), layer by layer.

Counts the layers that do the arithmetic: convolutions, depthwise convolutions and dense
layers (plus the small pointwise products of squeeze-excitation). BatchNorm folds into the
preceding convolution at inference and activations/pools are not MACs, as in the MobileNet
papers' convention.
"""

from __future__ import annotations

import math

import keras


def _spatial(shape) -> int:
    return math.prod(int(d) for d in shape[1:-1])


def layer_macs(layer) -> int:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        out = layer.output.shape
        k = math.prod(layer.kernel_size)
        return _spatial(out) * int(out[-1]) * k
    if isinstance(layer, keras.layers.Conv2D):  # also SeparableConv2D's parent, not used here
        out = layer.output.shape
        cin = int(layer.input.shape[-1])
        k = math.prod(layer.kernel_size)
        return _spatial(out) * int(out[-1]) * k * cin // layer.groups
    if isinstance(layer, keras.layers.Dense):
        return int(layer.input.shape[-1]) * int(layer.units)
    if isinstance(layer, keras.layers.Multiply):
        return math.prod(int(d) for d in layer.output.shape[1:])
    return 0


def count_macs(model: keras.Model) -> int:
    return sum(layer_macs(layer) for layer in model.layers)
