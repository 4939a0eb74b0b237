"""Captions for CIFAR-10 images: the label plus the dominant colour of the object.

The colour is read from the central 16x16 pixels (CIFAR objects are roughly centred, so the
centre says more about the object than the border, which is mostly background). Every pixel
there is named with a small HSV rule set and the most frequent name wins. A caption such as
"a photo of a red truck" lets a prompt steer something besides the class.
"""

from __future__ import annotations

import numpy as np

from trainer.data import CLASS_NAMES

COLOURS = ("black", "white", "gray", "red", "orange", "yellow", "brown",
           "green", "blue", "purple", "pink")
# Share of the centre that must be chromatic before a hue names the image (else black/white/gray).
CHROMATIC_SHARE = 0.3


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees [0, 360), saturation and value in [0, 1]; rgb is float in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    c = v - rgb.min(-1)
    s = np.where(v > 0, c / np.maximum(v, 1e-8), 0.0)
    safe = np.maximum(c, 1e-8)
    h = np.where(v == r, ((g - b) / safe) % 6,
                 np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    return np.where(c > 0, h, 0.0), s, v


def pixel_colour_ids(rgb: np.ndarray) -> np.ndarray:
    """Index into COLOURS for every pixel of a uint8 (..., 3) array."""
    h, s, v = _hsv(rgb.astype(np.float32) / 255.0)
    ids = np.full(h.shape, COLOURS.index("gray"), np.int64)
    chroma = (s >= 0.2) & (v >= 0.2)
    hue_bins = [  # (upper hue bound, colour); red wraps round 360
        (15, "red"), (40, "orange"), (70, "yellow"), (165, "green"),
        (255, "blue"), (290, "purple"), (340, "pink"), (361, "red")]
    lower = 0.0
    for upper, name in hue_bins:
        ids = np.where(chroma & (h >= lower) & (h < upper), COLOURS.index(name), ids)
        lower = upper
    # Dark oranges and reds read as brown to people.
    brownish = chroma & (h >= 10) & (h < 45) & (v < 0.6)
    ids = np.where(brownish, COLOURS.index("brown"), ids)
    ids = np.where(v < 0.2, COLOURS.index("black"), ids)
    ids = np.where((s < 0.2) & (v >= 0.75), COLOURS.index("white"), ids)
    return ids


def dominant_colours(images: np.ndarray, batch: int = 5000) -> np.ndarray:
    """Index into COLOURS of the commonest colour in each image's centre; images uint8 (N,H,W,3)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images of shape (N, H, W, 3), got {images.shape}")
    n, hgt, wid, _ = images.shape
    top, left = hgt // 4, wid // 4
    out = np.empty(n, np.int64)
    for start in range(0, n, batch):
        centre = images[start:start + batch, top:hgt - top, left:wid - left]
        ids = pixel_colour_ids(centre).reshape(len(centre), -1)
        counts = np.stack([(ids == k).sum(1) for k in range(len(COLOURS))], 1)
        chromatic = counts.copy()
        chromatic[:, :3] = 0  # black, white, gray
        # Muted photos are mostly gray-ish pixels; a clear hue on a third of the centre wins.
        use_hue = chromatic.sum(1) >= CHROMATIC_SHARE * ids.shape[1]
        out[start:start + batch] = np.where(use_hue, chromatic.argmax(1), counts.argmax(1))
    return out


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(label: int, colour: str | None = None) -> str:
    """"a photo of a red truck", or "a photo of a truck" without a colour."""
    noun = CLASS_NAMES[label] if colour is None else f"{colour} {CLASS_NAMES[label]}"
    return f"a photo of {_article(noun)} {noun}"


def make_captions(images: np.ndarray, labels: np.ndarray) -> list[str]:
    """One "a photo of a <colour> <class>" caption per image."""
    colours = dominant_colours(images)
    return [caption(int(y), COLOURS[c]) for c, y in zip(colours, np.asarray(labels))]


def drop_colour(text: str) -> str:
    """"a photo of a red truck" -> "a photo of a truck" (trains the class-only prompts too)."""
    words = text.split()
    if len(words) >= 3 and words[-2] in COLOURS:
        words.pop(-2)
        words[-2] = _article(words[-1])
    return " ".join(words)
