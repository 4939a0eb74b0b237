"""The denoising UNet: KerasCV's Stable Diffusion `DiffusionModel`, scaled down and configurable.

Same blocks as `keras_cv.models.stable_diffusion.DiffusionModel` (ResBlock with the time
embedding, SpatialTransformer with self- and cross-attention to the text states, strided
PaddedConv2D to go down, Upsample to come up, skip connections, GroupNorm + swish + conv out).
Added: an optional pooled text embedding summed into the time embedding (Imagen, SDXL).
Changed: the number of levels, their widths and heads, and the blocks per level come from the
config (SD 1.x: 4 levels, 320/640/1280/1280 channels, 2 blocks, 8 heads); SD's 2 ResBlock +
3 up ResBlocks per level become `blocks` and `blocks + 1`; the sinusoidal time-step input is
`time_dim` wide instead of 320.
"""

from __future__ import annotations

import keras
from keras_cv.src.models.stable_diffusion.diffusion_model import (
    ResBlock,
    SpatialTransformer,
    Upsample,
)
from keras_cv.src.models.stable_diffusion.padded_conv2d import PaddedConv2D


def build_unet(latent_size: int, latent_channels: int, context_length: int, context_dim: int,
               widths: tuple, attention: tuple, heads: int, blocks: int, time_dim: int,
               pooled_text: bool = False):
    """widths[i] channels at level i (level 0 = full latent size); attention[i] says whether
    that level has SpatialTransformers (cross-attention to the text). pooled_text adds the mean
    text state to the time embedding, so every ResBlock is conditioned on the prompt."""
    if len(widths) != len(attention):
        raise ValueError("widths and attention need one entry per level")
    for w in widths:
        if w % heads or w % 32:
            raise ValueError(f"width {w} must divide by heads={heads} and by 32 (GroupNorm groups)")
    if latent_size % (2 ** (len(widths) - 1)):
        raise ValueError(f"latent size {latent_size} cannot be halved {len(widths) - 1} times")

    context = keras.layers.Input((context_length, context_dim), name="context")
    t_embed_input = keras.layers.Input((time_dim,), name="timestep_embedding")
    latent = keras.layers.Input((latent_size, latent_size, latent_channels), name="latent")

    t_emb = keras.layers.Dense(4 * time_dim)(t_embed_input)
    t_emb = keras.layers.Activation("swish")(t_emb)
    t_emb = keras.layers.Dense(4 * time_dim)(t_emb)
    if pooled_text:
        pooled = keras.layers.GlobalAveragePooling1D()(context)
        pooled = keras.layers.Dense(4 * time_dim)(pooled)
        t_emb = keras.layers.Add()([t_emb, pooled])

    def transformer(width):
        return SpatialTransformer(heads, width // heads, fully_connected=False)

    # Downsampling flow
    outputs = []
    x = PaddedConv2D(widths[0], kernel_size=3, padding=1)(latent)
    outputs.append(x)
    for level, width in enumerate(widths):
        for _ in range(blocks):
            x = ResBlock(width)([x, t_emb])
            if attention[level]:
                x = transformer(width)([x, context])
            outputs.append(x)
        if level < len(widths) - 1:
            x = PaddedConv2D(width, 3, strides=2, padding=1)(x)  # Downsample 2x
            outputs.append(x)

    # Middle flow
    x = ResBlock(widths[-1])([x, t_emb])
    x = transformer(widths[-1])([x, context])
    x = ResBlock(widths[-1])([x, t_emb])

    # Upsampling flow
    for level in reversed(range(len(widths))):
        width = widths[level]
        for _ in range(blocks + 1):
            x = keras.layers.Concatenate()([x, outputs.pop()])
            x = ResBlock(width)([x, t_emb])
            if attention[level]:
                x = transformer(width)([x, context])
        if level > 0:
            x = Upsample(width)(x)

    # Exit flow
    x = keras.layers.GroupNormalization(epsilon=1e-5)(x)
    x = keras.layers.Activation("swish")(x)
    output = PaddedConv2D(latent_channels, kernel_size=3, padding=1)(x)
    return keras.Model([latent, t_embed_input, context], output, name="unet")
