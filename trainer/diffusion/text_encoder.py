"""A small CLIP-style text encoder from KerasCV's own layers.

Same design as `keras_cv.models.stable_diffusion.TextEncoder` (token + position embedding,
pre-norm causal transformer layers with quick-GELU, final LayerNorm) with the width, depth, head
count, vocabulary and length taken from the config instead of 768 / 12 / 12 / 49,408 / 77.
It is trained jointly with the UNet (Stable Diffusion keeps its CLIP encoder frozen; there is
no pretrained encoder to freeze here).
"""

from __future__ import annotations

import keras
from keras_cv.src.models.stable_diffusion.text_encoder import (
    CLIPEmbedding,
    CLIPEncoderLayer,
    quick_gelu,
)


def build_text_encoder(vocab_size: int, max_length: int, dim: int, layers: int, heads: int):
    tokens = keras.layers.Input((max_length,), dtype="int32", name="tokens")
    positions = keras.layers.Input((max_length,), dtype="int32", name="positions")
    x = CLIPEmbedding(vocab_size, dim, max_length)([tokens, positions])
    for _ in range(layers):
        x = CLIPEncoderLayer(dim, heads, activation=quick_gelu)(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    return keras.Model([tokens, positions], x, name="text_encoder")
