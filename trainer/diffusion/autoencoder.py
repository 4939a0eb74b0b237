"""The first stage of the LDM: a small KL-regularised autoencoder, 32x32x3 pixels <-> 8x8x4 latents.

Built from KerasCV's VAE building blocks (`ResnetBlock`, `AttentionBlock`, `PaddedConv2D`) in the
layout of its `ImageEncoder` / `Decoder`, with fewer and narrower levels: two 2x downsamplings
(f=4) instead of three, widths from the config instead of 128..512, and a trainable encoder
head that keeps the log-variance channels (KerasCV's encoder drops them because it is inference
only). The latent scale factor (KerasCV hard-codes 0.18215) is measured on the training latents.
"""

from __future__ import annotations

import keras
from keras import ops
from keras_cv.src.models.stable_diffusion.attention_block import AttentionBlock
from keras_cv.src.models.stable_diffusion.padded_conv2d import PaddedConv2D
from keras_cv.src.models.stable_diffusion.resnet_block import ResnetBlock


def build_encoder(image_size: int, widths: tuple, latent_channels: int, attention: bool = True):
    """Pixels in [-1, 1] -> (mean, log-variance), each (N, image_size/f, image_size/f, C)."""
    layers = [keras.layers.Input((image_size, image_size, 3)), PaddedConv2D(widths[0], 3, padding=1)]
    for i, width in enumerate(widths):
        layers += [ResnetBlock(width)]
        if i < len(widths) - 1:  # same asymmetric padding as KerasCV's ImageEncoder
            layers += [PaddedConv2D(width, 3, padding=((0, 1), (0, 1)), strides=2)]
    if attention:
        layers += [AttentionBlock(widths[-1])]
    layers += [ResnetBlock(widths[-1]),
               keras.layers.GroupNormalization(epsilon=1e-5),
               keras.layers.Activation("swish"),
               PaddedConv2D(2 * latent_channels, 3, padding=1),
               PaddedConv2D(2 * latent_channels, 1)]
    return keras.Sequential(layers, name="encoder")


def build_decoder(latent_size: int, widths: tuple, latent_channels: int, attention: bool = True):
    """Unscaled latents -> pixels in about [-1, 1]; the mirror image of the encoder."""
    rev = tuple(reversed(widths))
    layers = [keras.layers.Input((latent_size, latent_size, latent_channels)),
              PaddedConv2D(latent_channels, 1),
              PaddedConv2D(rev[0], 3, padding=1),
              ResnetBlock(rev[0])]
    if attention:
        layers += [AttentionBlock(rev[0])]
    for i, width in enumerate(rev):
        layers += [ResnetBlock(width)]
        if i < len(rev) - 1:
            layers += [keras.layers.UpSampling2D(2), PaddedConv2D(rev[i + 1], 3, padding=1)]
    layers += [keras.layers.GroupNormalization(epsilon=1e-5),
               keras.layers.Activation("swish"),
               PaddedConv2D(3, 3, padding=1)]
    return keras.Sequential(layers, name="decoder")


def split_moments(moments):
    """Encoder output -> (mean, log-variance), the latter clipped as in the LDM code."""
    mean, logvar = ops.split(moments, 2, axis=-1)
    return mean, ops.clip(logvar, -30.0, 20.0)


def sample_latent(mean, logvar, noise):
    return mean + ops.exp(0.5 * logvar) * noise


def kl_divergence(mean, logvar):
    """KL(q(z|x) || N(0, I)) summed over latent elements, averaged over the batch."""
    kl = 0.5 * (ops.square(mean) + ops.exp(logvar) - 1.0 - logvar)
    return ops.mean(ops.sum(kl, axis=(1, 2, 3)))
