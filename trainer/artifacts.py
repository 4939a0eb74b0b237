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


@contextmanager
def atomic_dir(final: Path):
    """Yields a temp folder beside `final`; on success it replaces `final` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    return (Path(path) / "model.keras").is_file()
