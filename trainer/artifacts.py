"""Writing and finding saved artifacts: JSON files and atomically replaced model folders."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from trainer.constants import (ARTIFACT_MARKER, CONFIG_FILENAME, KERAS_FILENAME, MODELS_ROOT,
                               REPO_ROOT)


def _default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def atomic_write_bytes(path, data: bytes) -> None:
    """Writes via a temp file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared
    os.replace(tmp, path)


def write_json(path, data) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=_default) + "\n").encode())


def write_csv(path, rows: list[dict], columns: list[str]) -> None:
    """A header and one line a row, written atomically like the JSON files."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())


def read_json(path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


class NotAnArtifactError(ValueError):
    """atomic_dir was asked to replace a folder this project did not write."""


# What a folder written before the marker existed holds: any one of these marks it as ours
# (a classifier's model, any saved model's config, a diffusion training checkpoint's state).
_MODEL_FILES = (KERAS_FILENAME, CONFIG_FILENAME, "state.json")


def is_artifact_dir(path) -> bool:
    """A folder atomic_dir wrote (its marker) or a saved model folder (its model or config file)."""
    path = Path(path)
    return path.is_dir() and any((path / f).is_file() for f in (ARTIFACT_MARKER, *_MODEL_FILES))


def _protected(path: Path) -> bool:
    """The models root, the repository root, or a folder above either: never replaced."""
    resolved = path.resolve()
    for root in (MODELS_ROOT.resolve(), REPO_ROOT.resolve()):
        if resolved == root or resolved in root.parents:
            return True
    return False


def clean_stale(final: Path) -> list[Path]:
    """Removes what a killed atomic_dir left beside `final`: `.NAME.tmp-*` folders, and `.NAME.old`
    (put back as `final` when the kill came between the two renames and `final` is missing)."""
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    old = final.with_name(f".{final.name}.old")
    if old.is_dir() and not final.exists() and is_artifact_dir(old):
        os.replace(old, final)
    for stale in [*final.parent.glob(f".{final.name}.tmp-*"), old]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def check_replaceable(final: Path) -> Path:
    """Refuses (before any work is done) a target atomic_dir may not replace."""
    final = Path(final)
    if final.name in ("", ".", "..") or _protected(final):
        raise NotAnArtifactError(f"refusing to replace {final}: it is the models root, the repository "
                                 "or a folder above them")
    if final.exists() and not is_artifact_dir(final):
        raise NotAnArtifactError(f"refusing to replace {final}: it is not a folder this project wrote "
                                 f"(no {ARTIFACT_MARKER}, {' or '.join(_MODEL_FILES)}); choose another name or "
                                 "move it away")
    return final


@contextmanager
def atomic_dir(final: Path):
    """Yields a temp folder beside `final`; on success it replaces `final` in one rename.

    Only folders this project wrote are replaced (see check_replaceable), and each new one gets the
    marker that lets a later run replace it. Leftovers of a killed earlier run are cleaned first.
    """
    final = check_replaceable(Path(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        (tmp / ARTIFACT_MARKER).write_text("written by trainer.artifacts.atomic_dir\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    check_replaceable(final)  # the target may have changed while the body ran
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # without one, bfloat16 math is emulated


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bfloat16 instructions (False where /proc/cpuinfo cannot be read)."""
    try:
        flags = Path(cpuinfo).read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def machine_summary() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
            "bfloat16_instructions": cpu_has_bf16()}


def is_classifier_dir(path: Path) -> bool:
    return (Path(path) / KERAS_FILENAME).is_file()
