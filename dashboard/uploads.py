"""Turning an uploaded file into a picture, with bounded memory.

Limits, each refused with a one-line message before the expensive step:
- the file size: MAX_UPLOAD_MB, read from dashboard/.streamlit/config.toml (server.maxUploadSize),
  so Streamlit's own limit in the browser and this check say the same number;
- the decoded size: the header's width and height are read (PIL opens lazily) and anything over
  MAX_SIDE pixels a side or MAX_PIXELS in all is refused before a pixel is decoded (PIL's own
  decompression-bomb guard stays on behind it); a JPEG is decoded at a reduced scale;
- concurrent decodes: at most MAX_CONCURRENT_DECODES at once in this server process, so several
  viewers uploading large pictures at the same moment cannot add up past a fixed amount of memory.
"""

from __future__ import annotations

import io
import threading
import tomllib
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from trainer.images import to_rgb8

CONFIG_FILE = Path(__file__).resolve().parent / ".streamlit" / "config.toml"


def _configured_upload_mb(path: Path = CONFIG_FILE, default: int = 20) -> int:
    try:
        return int(tomllib.loads(path.read_text())["server"]["maxUploadSize"])
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError):
        return default


MAX_UPLOAD_MB = _configured_upload_mb()
MAX_SIDE = 4096
MAX_PIXELS = MAX_SIDE * MAX_SIDE  # 16.8 megapixels: at most ~67 MB decoded (RGBA)
MAX_CONCURRENT_DECODES = 2
DECODE_WAIT_S = 30.0
SHOWN_SIDE = 512  # what is kept after decoding: enough to display and to shrink to 32x32

_DECODES = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)


class BadImage(ValueError):
    """The upload is not a usable picture; the message says why."""


def too_large_message(mb: int = MAX_UPLOAD_MB) -> str:
    return f"This file is larger than {mb} MB. Please use a smaller image."


def check_size(n_bytes: int) -> None:
    if n_bytes == 0:
        raise BadImage("The file is empty.")
    if n_bytes > MAX_UPLOAD_MB * 1024 * 1024:  # Streamlit's maxUploadSize counts MiB too
        raise BadImage(too_large_message())


def check_dimensions(w: int, h: int) -> None:
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise BadImage(f"The image is {w:,}×{h:,} pixels; this page takes at most {MAX_SIDE:,}×{MAX_SIDE:,} "
                       f"({MAX_PIXELS / 1e6:.1f} megapixels). Please use a smaller image.")


def decode_upload(data: bytes) -> tuple[Image.Image, tuple[int, int]]:
    """(RGB picture at most SHOWN_SIDE a side, original (width, height)), or BadImage."""
    check_size(len(data))
    if not _DECODES.acquire(timeout=DECODE_WAIT_S):
        raise BadImage("The server is busy reading other pictures. Please try again in a moment.")
    try:
        return _decode(data)
    finally:
        _DECODES.release()


def _decode(data: bytes) -> tuple[Image.Image, tuple[int, int]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # reads the header only
            size = img.size
            check_dimensions(*size)
            if img.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF rotation by 90 degrees
                size = size[::-1]
            img.draft("RGB", (SHOWN_SIDE, SHOWN_SIDE))  # JPEG: decode at a reduced scale
            img.load()
            img = ImageOps.exif_transpose(img)
            if max(img.size) > SHOWN_SIDE:
                img.thumbnail((SHOWN_SIDE, SHOWN_SIDE), Image.Resampling.LANCZOS)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage("The image is far too large to open safely. Please use a smaller image.") from None
    except UnidentifiedImageError:
        raise BadImage("This file is not an image we can read. Please upload a PNG, JPEG, WebP, "
                       "BMP, GIF or TIFF picture.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImage(f"The image file seems damaged or truncated ({exc}).") from None
    return to_rgb8(img), size


def to_model_input(img: Image.Image, crop: bool) -> Image.Image:
    if crop:
        return ImageOps.fit(img, (32, 32), Image.Resampling.LANCZOS)
    return img.resize((32, 32), Image.Resampling.LANCZOS)
