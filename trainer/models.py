"""Classifier architectures: the depthwise-separable search space, an airbench-style separable net
and the ResNet-20 peer.

Every model takes raw RGB pixels, float32 (N, 32, 32, 3) in 0-255, normalises them itself,
and ends in softmax probabilities. Only built-in Keras layers are used, so `.keras` files load
with `safe_mode=True` and no custom objects.

The separable net ("sepnet") is built for CPU training speed: one cheap stem takes 32x32 to 16x16 so no layer runs at full resolution, then
three stages at 16/8/4. A block is ConvNeXt-like (Liu et al. 2022) with MobileNetV2's inverted
bottleneck (Sandler et al. 2018): depthwise kxk -> BN -> 1x1 expand -> activation [-> SE] ->
1x1 project -> BN, plus the identity. Two BN and one activation per block keep it fast.

The airbench-style net ("airnet") is the committed best separable model: airbench94's plain
conv -> pool -> BN -> GELU stack (Jordan 2024), no residuals, with its wide blocks separable.
"""

from __future__ import annotations

import keras
from keras import layers

from trainer.architectures import AIRNET_HP, DEFAULT_HP, FEATURES_LAYER, INPUT_SHAPE, too_large
from trainer.constants import KERAS_FILENAME, within_param_limit
from trainer.data import NUM_CLASSES, TRAIN_MEAN, TRAIN_STD


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


def _airnet_conv(x, channels: int, kind: str, name: str, kernel_size: int = 3):
    if kind == "conv":
        return layers.Conv2D(channels, kernel_size, padding="same", use_bias=False, name=f"{name}_conv")(x)
    if kind == "separable":
        x = layers.DepthwiseConv2D(kernel_size, padding="same", use_bias=False, name=f"{name}_dw")(x)
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
    pools = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}
    if hp["pool"] not in pools:
        raise ValueError(f"unknown pool {hp['pool']!r}: use max or avg")
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = normalization()(inputs)
    x = layers.Conv2D(int(hp["stem_width"]), 2, padding="valid", name="stem_conv")(x)
    x = layers.Activation("gelu", name="stem_act")(x)
    for b, (width, convs, kind) in enumerate(zip(hp["widths"], hp["convs"], hp["block_types"]), start=1):
        for c in range(int(convs)):
            n = f"b{b}c{c + 1}"
            x = _airnet_conv(x, int(width), kind, n, int(hp["kernel_size"]))
            if c == 0:
                x = pools[hp["pool"]](2, name=f"{n}_pool")(x)
            x = _bn(f"{n}_bn", scale=bool(hp["bn_scale"]))(x)
            x = layers.Activation("gelu", name=f"{n}_act")(x)
    x = layers.GlobalMaxPooling2D(name=FEATURES_LAYER)(x)
    outputs = probabilities(x)
    return keras.Model(inputs, outputs, name=name)


ARCHITECTURES = {"sepnet": build_sepnet, "airnet": build_airnet,
                 "resnet20": lambda hp=None, name="resnet20": build_resnet20(name)}


def build_model(arch: str, hp: dict | None = None, name: str | None = None) -> keras.Model:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](hp, name=name or arch)


def check_param_limit(model: keras.Model) -> int:
    params = model.count_params()
    if not within_param_limit(params):
        raise too_large(model.name, params)
    return params


def load_classifier(path) -> keras.Model:
    """Loads a saved classifier safely, with a clear error for missing, truncated or corrupt files."""
    import zipfile
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        path = path / KERAS_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}; train one with `python -m trainer.train`")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"cannot load {path}: not a complete .keras file (truncated or corrupt, "
                         f"{path.stat().st_size:,} bytes); export it again")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises several types for a bad zip or config
        raise ValueError(f"cannot load {path}: {exc.__class__.__name__}: {exc}") from exc
    if tuple(model.input_shape[1:]) != INPUT_SHAPE or model.output_shape[-1] != NUM_CLASSES:
        raise ValueError(f"{path} is not a CIFAR-10 classifier: input {model.input_shape}, "
                         f"output {model.output_shape}")
    return model
