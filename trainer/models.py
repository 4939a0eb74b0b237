"""Classifier architectures: the depthwise-separable search space, an airbench-style separable net
and the ResNet-20 peer.

Every model takes raw RGB pixels, float32 (N, 32, 32, 3) in 0-255, normalises them itself,
and ends in softmax probabilities. Only built-in Keras layers are used, so `.keras` files load
with `safe_mode=True` and no custom objects.

The separable net ("sepnet") is built for CPU training speed, after the measurements in
DEVELOPERS.md: one cheap stem takes 32x32 to 16x16 so no layer runs at full resolution, then
three stages at 16/8/4. A block is ConvNeXt-like (Liu et al. 2022) with MobileNetV2's inverted
bottleneck (Sandler et al. 2018): depthwise kxk -> BN -> 1x1 expand -> activation [-> SE] ->
1x1 project -> BN, plus the identity. Two BN and one activation per block keep it fast.

The airbench-style net ("airnet") is the committed best separable model: airbench94's plain
conv -> pool -> BN -> GELU stack (Jordan 2024), no residuals, with its wide blocks separable.
"""

from __future__ import annotations

import re

import keras
import numpy as np
from keras import layers

from trainer.data import NUM_CLASSES, TRAIN_MEAN, TRAIN_STD

PARAM_LIMIT = 1_000_000
INPUT_SHAPE = (32, 32, 3)
FEATURES_LAYER = "features"

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


def normalization() -> layers.Layer:
    """Fixed per-channel standardisation with the training split's statistics."""
    return layers.Normalization(
        mean=list(TRAIN_MEAN), variance=[s * s for s in TRAIN_STD], name="normalize")


def _bn(name: str, zero_init: bool = False, scale: bool = True) -> layers.Layer:
    # Zero-initialised last BN makes each residual block start as the identity: steadier
    # early training, which matters when the whole schedule is a few epochs.
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, scale=scale,
                                     gamma_initializer="zeros" if zero_init else "ones", name=name)


def _squeeze_excite(x, channels: int, name: str):
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = layers.Conv2D(max(8, channels // 8), 1, activation="relu", name=f"{name}_se_reduce")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
    return layers.Multiply(name=f"{name}_se_scale")([x, s])


def probabilities(x):
    """The classifier head. float32 even when training in bfloat16 (--precision): a softmax rounded
    to bfloat16's 8 bits would put its errors straight into the loss."""
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="probs")(x)


def separable_block(x, channels: int, kernel_size: int, expansion: int, activation: str,
                    squeeze_excite: bool, name: str):
    y = layers.DepthwiseConv2D(kernel_size, padding="same", use_bias=False, name=f"{name}_dw")(x)
    y = _bn(f"{name}_bn1")(y)
    y = layers.Conv2D(channels * expansion, 1, name=f"{name}_expand")(y)
    y = layers.Activation(activation, name=f"{name}_act")(y)
    if squeeze_excite:
        y = _squeeze_excite(y, channels * expansion, name)
    y = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_project")(y)
    y = _bn(f"{name}_bn2", zero_init=True)(y)
    return layers.Add(name=f"{name}_add")([x, y])


def conv_block(x, channels: int, activation: str, name: str):
    """A full 3x3 conv residual block, for the optional dense first stage."""
    y = layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    y = _bn(f"{name}_bn", zero_init=True)(y)
    y = layers.Activation(activation, name=f"{name}_act")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def downsample(x, channels: int, activation: str, name: str):
    # 1x1 widen, then max-pool before BN (as in airbench): the pool sees pre-normalised maxima.
    x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_conv")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = _bn(f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_act")(x)


def build_sepnet(hp: dict | None = None, name: str = "sepnet") -> keras.Model:
    """Builds the separable net from a hyperparameter dict (missing keys take DEFAULT_HP)."""
    hp = {**DEFAULT_HP, **(hp or {})}
    act = hp["activation"]
    widths = [int(hp[f"width_{i}"]) for i in (1, 2, 3)]
    blocks = [int(hp[f"blocks_{i}"]) for i in (1, 2, 3)]

    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = normalization()(inputs)
    if hp["stem"] == "patch2":
        x = layers.Conv2D(widths[0], 2, strides=2, use_bias=False, name="stem_conv")(x)
    elif hp["stem"] == "conv3s2":
        x = layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    else:
        raise ValueError(f"unknown stem {hp['stem']!r}: use patch2 or conv3s2")
    x = _bn("stem_bn")(x)
    x = layers.Activation(act, name="stem_act")(x)

    for stage, (width, count) in enumerate(zip(widths, blocks), start=1):
        if stage > 1:
            x = downsample(x, width, act, name=f"down{stage}")
        for b in range(count):
            block_name = f"s{stage}b{b + 1}"
            if stage == 1 and hp["first_stage"] == "conv":
                x = conv_block(x, width, act, block_name)
            else:
                x = separable_block(x, width, int(hp["kernel_size"]), int(hp["expansion"]), act,
                                    bool(hp["squeeze_excite"]), block_name)

    x = layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)
    if hp["dropout"] > 0:
        x = layers.Dropout(float(hp["dropout"]), name="dropout")(x)
    outputs = probabilities(x)
    return keras.Model(inputs, outputs, name=name)


def build_resnet20(name: str = "resnet20") -> keras.Model:
    """ResNet-20 for CIFAR (He et al. 2016, section 4.2): 3 stages x 3 basic blocks, 16/32/64."""
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = normalization()(inputs)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, width in enumerate((16, 32, 64), start=1):
        for b in range(3):
            strides = 2 if stage > 1 and b == 0 else 1
            n = f"s{stage}b{b + 1}"
            y = layers.Conv2D(width, 3, strides=strides, padding="same", use_bias=False, name=f"{n}_conv1")(x)
            y = _bn(f"{n}_bn1")(y)
            y = layers.ReLU(name=f"{n}_relu1")(y)
            y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{n}_conv2")(y)
            y = _bn(f"{n}_bn2")(y)
            if strides != 1:  # option B shortcut: 1x1 projection
                x = layers.Conv2D(width, 1, strides=2, use_bias=False, name=f"{n}_proj")(x)
                x = _bn(f"{n}_proj_bn")(x)
            x = layers.ReLU(name=f"{n}_relu2")(layers.Add(name=f"{n}_add")([x, y]))
    x = layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)
    outputs = probabilities(x)
    return keras.Model(inputs, outputs, name=name)


# An airbench-style net (Jordan 2024, arXiv:2404.00498) with its wide stages made separable.
AIRNET_HP = {
    "stem_width": 24,           # 2x2 stride-1 patch conv: 32x32 -> 31x31, as airbench's whitening layer
    "widths": [64, 256, 512],
    "convs": [2, 3, 3],          # convolutions per block; the first one is followed by the 2x2 max-pool
    "block_types": ["conv", "separable", "separable"],  # a full-conv first block, separable after
    "bn_scale": False,          # airbench: BN's scale frozen at 1, only its shift learned
    "whiten_stem": False,       # airbench: stem set from the data's patch whitening, then frozen
    "identity_init": False,     # airbench: block convolutions start as identities (dirac) where they can
    "learning_rate": 0.2,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
}


def _airnet_conv(x, channels: int, kind: str, name: str):
    if kind == "conv":
        return layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    if kind == "separable":
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
        return layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_pw")(x)
    raise ValueError(f"unknown block type {kind!r}: use conv or separable")


def build_airnet(hp: dict | None = None, name: str = "airnet") -> keras.Model:
    """Three blocks of conv -> max-pool -> BN -> GELU, then conv -> BN -> GELU, no residuals.

    As in airbench: the pool comes before BN (it sees pre-normalised maxima), BN has no learned
    scale by default (a fixed scale keeps the effective learning rate steady), and the head
    is a global max-pool of the last 3x3 map. What differs: the wide second and third blocks are
    depthwise-separable, which keeps them under 1M parameters at airbench's widths and beyond.
    """
    hp = {**AIRNET_HP, **(hp or {})}
    if not len(hp["widths"]) == len(hp["convs"]) == len(hp["block_types"]):
        raise ValueError("widths, convs and block_types must have one entry per block")
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = normalization()(inputs)
    # A whitened stem is set by init_whitening_stem before training and never trained.
    x = layers.Conv2D(int(hp["stem_width"]), 2, padding="valid", name="stem_conv",
                      trainable=not hp["whiten_stem"])(x)
    x = layers.Activation("gelu", name="stem_act")(x)
    for b, (width, convs, kind) in enumerate(zip(hp["widths"], hp["convs"], hp["block_types"]), start=1):
        for c in range(int(convs)):
            n = f"b{b}c{c + 1}"
            x = _airnet_conv(x, int(width), kind, n)
            if c == 0:
                x = layers.MaxPooling2D(2, name=f"{n}_pool")(x)
            x = _bn(f"{n}_bn", scale=bool(hp["bn_scale"]))(x)
            x = layers.Activation("gelu", name=f"{n}_act")(x)
    x = layers.GlobalMaxPooling2D(name=FEATURES_LAYER)(x)
    outputs = probabilities(x)
    model = keras.Model(inputs, outputs, name=name)
    if hp["identity_init"]:
        init_identity(model)
    return model


def dirac(kernel_shape, depthwise: bool = False) -> np.ndarray:
    """A conv kernel (H, W, in, out) whose first min(in, out) filters pass their input channel through,
    the rest zero; for a depthwise kernel (H, W, C, 1), every channel passes through. torch's dirac_."""
    h, w, cin, cout = kernel_shape
    kernel = np.zeros(kernel_shape, np.float32)
    if depthwise:
        kernel[h // 2, w // 2, :, :] = 1.0
    else:
        for i in range(min(cin, cout)):
            kernel[h // 2, w // 2, i, i] = 1.0
    return kernel


def init_identity(model: keras.Model) -> None:
    """airbench's identity initialisation of an airnet's block convolutions (not the stem or head):
    the filters that can be identities become identities, the others keep their random start."""
    for layer in model.layers:
        if not re.fullmatch(r"b\d+c\d+_(conv|dw|pw)", layer.name):
            continue
        depthwise = isinstance(layer, layers.DepthwiseConv2D)
        value = keras.ops.convert_to_numpy(layer.kernel.value).copy()  # depthwise: (H, W, C, 1)
        identities = value.shape[3] if depthwise else min(value.shape[2:])
        value[..., :identities] = dirac(value.shape, depthwise)[..., :identities]
        layer.kernel.assign(value)


def whitening_kernel(images, eps: float = 5e-4) -> np.ndarray:
    """airbench's stem: a 2x2 conv whose 24 filters whiten the 12-dim 2x2x3 patches of the data.

    The eigenvectors of the patch covariance, each scaled by 1/sqrt(eigenvalue + eps), in +/- pairs
    (so GELU passes both signs). Patches are taken after the model's own normalisation.
    Returns a Keras HWIO kernel of shape (2, 2, 3, 24).
    """
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[-1] != 3 or min(x.shape[1:3]) < 2:
        raise ValueError(f"whitening needs NHWC RGB images, got shape {x.shape}")
    x = (x - np.asarray(TRAIN_MEAN, np.float32)) / np.asarray(TRAIN_STD, np.float32)
    patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))  # N, 31, 31, 3, 2, 2
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)               # (dy, dx, c) order
    eigenvalues, eigenvectors = np.linalg.eigh(patches.T @ patches / len(patches))
    filters = eigenvectors.T / np.sqrt(eigenvalues + eps)[:, None]             # 12 x 12
    filters = np.concatenate([filters, -filters])                               # 24 x 12
    return filters.reshape(24, 2, 2, 3).transpose(1, 2, 3, 0).astype(np.float32)


def init_whitening_stem(model: keras.Model, images) -> None:
    """Sets an airnet's frozen stem from training images (airbench uses 5,000)."""
    stem = model.get_layer("stem_conv")
    kernel = whitening_kernel(images)
    if tuple(stem.kernel.shape) != kernel.shape:
        raise ValueError(f"a whitening stem needs a 2x2 conv with 24 filters, got {tuple(stem.kernel.shape)}")
    stem.kernel.assign(kernel)
    stem.bias.assign(keras.ops.zeros_like(stem.bias))


ARCHITECTURES = {"sepnet": build_sepnet, "airnet": build_airnet,
                 "resnet20": lambda hp=None, name="resnet20": build_resnet20(name)}


def build_model(arch: str, hp: dict | None = None, name: str | None = None) -> keras.Model:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](hp, name=name or arch)


class ModelTooLargeError(ValueError):
    """The model breaks the brief's parameter limit."""


def check_param_limit(model: keras.Model, limit: int = PARAM_LIMIT) -> int:
    params = model.count_params()
    if params >= limit:
        raise ModelTooLargeError(f"{model.name} has {params:,} parameters; the limit is < {limit:,}")
    return params


def load_classifier(path) -> keras.Model:
    """Loads a saved classifier safely, with a clear error for missing or corrupt files."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}; train one with `python -m trainer.train`")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises several types for a bad zip or config
        raise ValueError(f"cannot load {path}: {exc.__class__.__name__}: {exc}") from exc
    if tuple(model.input_shape[1:]) != INPUT_SHAPE or model.output_shape[-1] != NUM_CLASSES:
        raise ValueError(f"{path} is not a CIFAR-10 classifier: input {model.input_shape}, "
                         f"output {model.output_shape}")
    return model
