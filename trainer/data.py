"""CIFAR-10 loading: a local `cifar-10-python.tar.gz` first, Keras' download otherwise.

Where the archive comes from, in order:
1. the `archive` argument (the commands' `--data` flag),
2. the `CIFAR10_ARCHIVE` environment variable,
3. `../shared/data/cifar-10-python.tar.gz` beside the repository (an offline copy),
4. `keras.datasets.cifar10.load_data()`, which downloads the official archive.

The batches are pickles. They are read with a restricted unpickler that builds only the
plain containers the format needs, so a tampered archive cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.constants import REPO_ROOT

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
NUM_CLASSES = len(CLASS_NAMES)
ARCHIVE_ENV = "CIFAR10_ARCHIVE"
SHARED_ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
MAX_BATCH_BYTES = 64 * 2**20  # one batch pickle is 31 MB; a larger member is refused unread
# Per-channel statistics of the training split, in 0-255 pixel units; baked into every model.
TRAIN_MEAN = (125.307, 122.950, 113.865)
TRAIN_STD = (62.993, 62.089, 66.705)


class DataError(Exception):
    """The dataset could not be read; the message says which file and what to do."""


@dataclass(frozen=True)
class Cifar10:
    x_train: np.ndarray  # (50000, 32, 32, 3) uint8
    y_train: np.ndarray  # (50000,) int64
    x_test: np.ndarray   # (10000, 32, 32, 3) uint8
    y_test: np.ndarray   # (10000,) int64
    source: str          # where the pixels came from, for reports


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR batch holds: dicts, lists, str/bytes, ints and numpy arrays."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR batch")


def unpickle_batch(data: bytes) -> dict:
    """Unpickles one CIFAR batch with the restricted unpickler; keys come back as str."""
    batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    if not isinstance(batch, dict):
        raise pickle.UnpicklingError("a CIFAR batch must be a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _batch_arrays(batch: dict, member: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{member} lacks 'data' or 'labels'")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{member}: expected uint8 rows of 3072 pixels, got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{member}: {labels.shape[0]} labels for {data.shape[0]} images")
    # Rows are channel-planar (R plane, G plane, B plane); models want NHWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_archive(path: str | os.PathLike, splits=("train", "test")) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads the requested splits from a `cifar-10-python.tar.gz`, raising DataError on any fault."""
    path = Path(path)
    hint = ("download it from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
            f"or point --data / {ARCHIVE_ENV} at a good copy")
    if not path.is_file():
        raise DataError(f"CIFAR-10 archive not found: {path} ({hint})")
    wanted = {"train": TRAIN_BATCHES, "test": (TEST_BATCH,)}
    members = {name: None for split in splits for name in wanted[split]}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                base = os.path.basename(info.name)
                if base in members and info.isfile():
                    if info.size > MAX_BATCH_BYTES:  # the header's size, read before decompressing
                        raise DataError(f"CIFAR-10 archive member {info.name} claims {info.size:,} bytes; a batch "
                                        f"is about 31 MB (limit {MAX_BATCH_BYTES:,}): {path} is not CIFAR-10; {hint}")
                    members[base] = _batch_arrays(unpickle_batch(tar.extractfile(info).read()), base)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"CIFAR-10 archive is corrupt or truncated: {path} ({exc}); {hint}") from exc
    except pickle.UnpicklingError as exc:
        raise DataError(f"CIFAR-10 archive holds an unsafe or broken batch: {path} ({exc}); {hint}") from exc
    missing = [name for name, value in members.items() if value is None]
    if missing:
        raise DataError(f"CIFAR-10 archive {path} lacks {', '.join(missing)}; {hint}")
    out = {}
    for split in splits:
        parts = [members[name] for name in wanted[split]]
        out[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return out


def validate_split(name: str, x: np.ndarray, y: np.ndarray, per_class: int | None) -> None:
    """Checks shape, dtype, label range and (for full splits) the class balance."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DataError(f"{name} images: expected uint8 (N, 32, 32, 3), got {x.dtype} {x.shape}")
    if y.shape != (x.shape[0],):
        raise DataError(f"{name} labels: expected shape ({x.shape[0]},), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{name} labels must lie in 0-9, found {y.min()}..{y.max()}")
    if per_class is not None:
        counts = np.bincount(y, minlength=NUM_CLASSES)
        if not np.all(counts == per_class):
            raise DataError(f"{name} split: expected {per_class} images per class, got {counts.tolist()}")


def resolve_archive(archive: str | os.PathLike | None = None) -> Path | None:
    """The archive to read (flag, env, shared copy), or None to fall back to Keras' download."""
    if archive:
        return Path(archive)
    if os.environ.get(ARCHIVE_ENV):
        return Path(os.environ[ARCHIVE_ENV])
    if SHARED_ARCHIVE.is_file():
        return SHARED_ARCHIVE
    return None


def load_cifar10(archive: str | os.PathLike | None = None, splits=("train", "test")) -> Cifar10:
    """Loads and validates CIFAR-10; splits not asked for come back empty."""
    path = resolve_archive(archive)
    if path is not None:
        arrays = read_archive(path, splits)
        source = str(path)
    else:
        arrays = _download(splits)
        source = "keras.datasets.cifar10 (official archive)"
    empty = (np.zeros((0, 32, 32, 3), np.uint8), np.zeros((0,), np.int64))
    x_train, y_train = arrays.get("train", empty)
    x_test, y_test = arrays.get("test", empty)
    validate_split("train", x_train, y_train, 5000 if "train" in splits else None)
    validate_split("test", x_test, y_test, 1000 if "test" in splits else None)
    return Cifar10(x_train, y_train, x_test, y_test, source)


def _download(splits) -> dict:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as exc:  # network errors come in many types
        raise DataError(
            f"no local CIFAR-10 archive and the download failed ({exc.__class__.__name__}: {exc}); "
            f"pass --data PATH or set {ARCHIVE_ENV} to a cifar-10-python.tar.gz") from exc
    full = {"train": (x_train, y_train.reshape(-1).astype(np.int64)),
            "test": (x_test, y_test.reshape(-1).astype(np.int64))}
    return {s: full[s] for s in splits}


def holdout_split(x: np.ndarray, y: np.ndarray, fraction: float = 0.1, seed: int = 0):
    """Carves a seeded, class-balanced hold-out from the training split for model selection.

    Returns (x_fit, y_fit, x_val, y_val). The test split is never used for selection.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"hold-out fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(y == c)
        take = int(round(len(idx) * fraction))
        val_idx.append(rng.choice(idx, size=take, replace=False))
    val_idx = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(y), bool)
    mask[val_idx] = False
    return x[mask], y[mask], x[val_idx], y[val_idx]


def balanced_subset(x: np.ndarray, y: np.ndarray, size: int | None, seed: int = 0):
    """A seeded class-balanced subset of `size` images (all of them when size is None)."""
    if size is None or size >= len(y):
        return x, y
    if size < NUM_CLASSES:
        raise ValueError(f"subset must hold at least {NUM_CLASSES} images, got {size}")
    rng = np.random.default_rng(seed)
    per = size // NUM_CLASSES
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in range(NUM_CLASSES)])
    rng.shuffle(idx)
    return x[idx], y[idx]
