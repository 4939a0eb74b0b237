"""Machine facts and the live latency measurement for the Live latency page."""

from __future__ import annotations

import os
from pathlib import Path

from trainer.artifacts import cpu_name  # noqa: F401  (the page shows it)
from trainer.timing import measure_in_subprocess


def measure_latency(model_dir: Path, runs: int = 200, warmup: int = 20, timeout_s: float = 600) -> dict:
    """Latency on ONE CPU thread, measured by trainer.timing in a child process (so this server's
    threads and caches neither skew it nor are disturbed by it). Callers hold
    `caching.exclusive("latency")`. Returns {"keras": {"median", "p90", "samples_ms"}, "tflite":
    {...}, "tflite_int8": {...} (when the model has one), "cpu", "threads"}."""
    return measure_in_subprocess(str(model_dir), runs=runs, warmup=warmup, flip_tta=False,
                                 timeout=timeout_s)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
