"""The architectures' hyperparameters as data, and their parameter counts by arithmetic.

Kept apart from trainer.models (which needs Keras and TensorFlow) so a recipe can be checked
against the parameter target in milliseconds, before anything is built or allocated.
"""

from __future__ import annotations

from trainer.constants import MAX_PARAMS, within_param_limit
from trainer.data import NUM_CLASSES

INPUT_SHAPE = (32, 32, 3)
FEATURES_LAYER = "features"
ARCHITECTURE_NAMES = ("sepnet", "airnet", "resnet20")

# The defaults build a valid model well under the parameter limit (see tests/test_models.py).
DEFAULT_HP = {
    "stem": "patch2",          # patch2: 2x2 stride-2 conv; conv3s2: 3x3 stride-2 conv
    "first_stage": "separable",  # separable | conv (full 3x3 convs in the 16x16 stage)
    "width_1": 64, "width_2": 128, "width_3": 256,
    "blocks_1": 2, "blocks_2": 2, "blocks_3": 2,
    "kernel_size": 3,
    "expansion": 2,
    "activation": "gelu",
    "squeeze_excite": False,
    "dropout": 0.1,
    "learning_rate": 0.2,       # peak of the one-cycle schedule, SGD + Nesterov
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
}


# An airbench-style net (Jordan 2024, arXiv:2404.00498) with its wide stages made separable.
AIRNET_HP = {
    "stem_width": 24,           # 2x2 stride-1 patch conv: 32x32 -> 31x31, as airbench's whitening layer
    "widths": [64, 256, 512],
    "convs": [2, 3, 3],          # convolutions per block; the first one is followed by the 2x2 max-pool
    "block_types": ["conv", "separable", "separable"],  # a full-conv first block, separable after
    "bn_scale": False,          # airbench: BN's scale frozen at 1, only its shift learned
    "kernel_size": 3,           # of every block convolution (full or depthwise)
    "pool": "max",              # the 2x2 pool after each block's first convolution: max (airbench) or avg
    "learning_rate": 0.2,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
}


class ModelTooLargeError(ValueError):
    """The model breaks our parameter target."""


def too_large(name: str, params: int) -> ModelTooLargeError:
    return ModelTooLargeError(f"{name} has {params:,} parameters; our limit is under {MAX_PARAMS:,}")


_NORMALIZATION_PARAMS = 0  # the fixed Normalization layer stores its statistics outside count_params()


def _bn_params(channels: int, scale: bool = True) -> int:
    return channels * (4 if scale else 3)  # gamma (if learned), beta, moving mean and variance


def _sepnet_params(hp: dict) -> int:
    hp = {**DEFAULT_HP, **hp}
    widths = [int(hp[f"width_{i}"]) for i in (1, 2, 3)]
    blocks = [int(hp[f"blocks_{i}"]) for i in (1, 2, 3)]
    k, e = int(hp["kernel_size"]), int(hp["expansion"])
    stem_k = {"patch2": 2, "conv3s2": 3}.get(hp["stem"])
    if stem_k is None:
        raise ValueError(f"unknown stem {hp['stem']!r}: use patch2 or conv3s2")
    total = _NORMALIZATION_PARAMS + stem_k * stem_k * 3 * widths[0] + _bn_params(widths[0])
    for stage, (c, count) in enumerate(zip(widths, blocks), start=1):
        if stage > 1:
            total += widths[stage - 2] * c + _bn_params(c)
        for _ in range(count):
            if stage == 1 and hp["first_stage"] == "conv":
                total += 9 * c * c + _bn_params(c)
                continue
            wide = c * e
            total += k * k * c + _bn_params(c) + c * wide + wide + wide * c + _bn_params(c)
            if hp["squeeze_excite"]:
                r = max(8, wide // 8)
                total += wide * r + r + r * wide + wide
    return total + widths[-1] * NUM_CLASSES + NUM_CLASSES


def _airnet_params(hp: dict) -> int:
    hp = {**AIRNET_HP, **hp}
    if not len(hp["widths"]) == len(hp["convs"]) == len(hp["block_types"]):
        raise ValueError("widths, convs and block_types must have one entry per block")
    channels, taps = int(hp["stem_width"]), int(hp["kernel_size"]) ** 2
    total = _NORMALIZATION_PARAMS + 2 * 2 * 3 * channels + channels
    for width, convs, kind in zip(hp["widths"], hp["convs"], hp["block_types"]):
        width = int(width)
        for _ in range(int(convs)):
            if kind == "conv":
                total += taps * channels * width
            elif kind == "separable":
                total += taps * channels + channels * width
            else:
                raise ValueError(f"unknown block type {kind!r}: use conv or separable")
            total += _bn_params(width, bool(hp["bn_scale"]))
            channels = width
    return total + channels * NUM_CLASSES + NUM_CLASSES


RESNET20_PARAMS = 274_042  # fixed architecture; tests/test_models.py checks it against count_params


def count_params_from_config(arch: str, hp: dict | None = None) -> int:
    """What build_model(arch, hp).count_params() returns, from the config alone: arithmetic, no weights."""
    counters = {"sepnet": _sepnet_params, "airnet": _airnet_params, "resnet20": lambda hp: RESNET20_PARAMS}
    if arch not in counters:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(counters)}")
    return counters[arch](hp or {})


def check_config_param_limit(arch: str, hp: dict, name: str) -> int:
    """The parameter target, checked before anything is built (a huge width costs no memory here)."""
    params = count_params_from_config(arch, hp)
    if not within_param_limit(params):
        raise too_large(name, params)
    return params


