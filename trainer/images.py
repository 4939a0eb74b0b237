"""Pictures from outside (uploads to the dashboard or the API) turned into plain 8-bit RGB."""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_rgb8(img: Image.Image) -> Image.Image:
    """16-bit and float images stretched to 8 bits, transparency flattened onto white, then RGB."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        img = Image.fromarray(a.astype(np.uint8))
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")
