"""Model loading and machine facts without Streamlit (shared by the pages and the latency worker)."""

from __future__ import annotations

import contextlib
import platform


def load_model_file(path: str):
    """Loads a classifier's model.keras the way docs/ARTIFACTS.md says (safe_mode=True)."""
    try:
        from trainer.models import load_classifier
    except ImportError:
        load_classifier = None
    if load_classifier is not None:
        return load_classifier(path)
    import keras

    with contextlib.suppress(ImportError):
        import trainer.models  # noqa: F401  (registers custom layers when present)
    return keras.saving.load_model(path, safe_mode=True)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
