"""Uploaded bytes -> the 32x32 RGB picture a classifier sees, refusing what is not a safe image.

The same rules as the dashboard's Try-it page: the size is read from the header and checked
before any pixel is decoded (a 50,000 x 50,000 PNG is a few KB on disk and 7.5 GB in memory),
transparency is flattened onto white, 16-bit and float images are stretched to 8 bits, EXIF
rotation is applied, and the picture is cropped to its centre square (or squashed) and shrunk
with Lanczos to 32x32.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainer.images import to_rgb8

FORMATS = ("PNG", "JPEG", "WEBP")   # what the API accepts
MAX_IMAGE_PIXELS = 40_000_000      # 40 megapixels, as the dashboard
SIZE = 32


class BadImage(ValueError):
    """The upload is not a usable picture; the message says why, in one line."""


def decode(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS, formats=FORMATS) -> Image.Image:
    """RGB PIL image from PNG/JPEG/WebP bytes, or BadImage."""
    if not data:
        raise BadImage("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # reads the header only
            if img.format not in formats:
                raise BadImage(f"{img.format} images are not accepted; send "
                               + ", ".join(formats[:-1]) + f" or {formats[-1]}")
            w, h = img.size
            if w * h > max_pixels:
                raise BadImage(f"the image is {w}x{h} pixels, too large (at most {max_pixels:,}); "
                               "send a smaller image")
            img.load()
            img = ImageOps.exif_transpose(img)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage("the image is far too large to decode safely; send a smaller image") from None
    except UnidentifiedImageError:
        raise BadImage("the file is not an image; send " + ", ".join(formats[:-1])
                       + f" or {formats[-1]}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImage(f"the image file is damaged or truncated ({exc})") from None
    return to_rgb8(img)


def to_model_input(img: Image.Image, crop: bool = True) -> np.ndarray:
    """uint8 (32, 32, 3): centre square crop (or squash) and Lanczos shrink."""
    if crop:
        small = ImageOps.fit(img, (SIZE, SIZE), Image.Resampling.LANCZOS)
    else:
        small = img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)


def upload_to_array(data: bytes, crop: bool = True, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    return to_model_input(decode(data, max_pixels), crop)


def to_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
