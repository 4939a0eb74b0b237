"""Shared helpers for the dashboard pages: where things live, reading artifacts, caching, locks.

Everything here reads the files described in docs/ARTIFACTS.md. Nothing raises to the page for
an expected fault (missing folder, broken JSON, bad model file): callers get a value plus a
human-readable problem string and show it as a friendly message.

TensorFlow is imported lazily (only by the pages that run a model), so the Overview page
renders without paying for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import streamlit as st

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

MODELS_ENV = "SAVED_MODELS_DIR"
TUNING_ENV = "TUNING_DIR"
TEXT2IMAGE_NAME = "text2image"

# The brief's limits for a deployable classifier.
PARAM_LIMIT = 1_000_000
LATENCY_LIMIT_MS = 20.0

from trainer.artifacts import cpu_name as cpu_model  # noqa: E402,F401  (needs REPO_ROOT on sys.path)
from trainer.data import CLASS_NAMES  # noqa: E402,F401
from trainer.predictions import FILENAME as PREDICTIONS_FILE  # noqa: E402
from trainer.predictions import load_predictions  # noqa: E402

# Uploads: anything bigger is refused with a message, before decoding.
MAX_UPLOAD_MB = 20
MAX_IMAGE_PIXELS = 40_000_000  # 40 megapixels


# --------------------------------------------------------------------------------------------
# Paths


def models_root() -> Path:
    return Path(os.environ.get(MODELS_ENV) or REPO_ROOT / "saved_models")


def tuning_root() -> Path:
    return Path(os.environ.get(TUNING_ENV) or REPO_ROOT / "tuning")


def text2image_dir() -> Path:
    return models_root() / TEXT2IMAGE_NAME


def display_path(path: Path) -> str:
    """A path relative to the repository when it lies inside it (shorter on screen)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# Reading artifacts


def read_json(path: Path) -> tuple[dict, str | None]:
    """(data, None) or ({}, problem). A missing file is a problem only for the caller to judge."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}, f"{path.name} is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"{path.name} could not be read ({exc.__class__.__name__})"
    if not isinstance(data, dict):
        return {}, f"{path.name} does not hold a JSON object"
    return data, None


def check_keras_file(path: Path) -> str | None:
    """A cheap sanity check of a .keras archive (a zip with config.json), without TensorFlow."""
    if not path.is_file():
        return "model.keras is missing"
    if path.stat().st_size == 0:
        return "model.keras is empty"
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return "model.keras is damaged (not a valid Keras archive)"
    if "config.json" not in names:
        return "model.keras is damaged (no model configuration inside)"
    return None


def _num(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


@dataclass
class ModelEntry:
    """One classifier folder, as far as its files could be read."""

    name: str
    path: Path
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)   # shown on the card
    notes: list[str] = field(default_factory=list)      # minor: e.g. "not evaluated yet"
    model_ok: bool = False                               # model.keras passed the cheap check

    @property
    def arch(self) -> str:
        return str(self.config.get("arch") or "")

    @property
    def accuracy(self) -> float | None:
        return _num(self.metrics.get("accuracy"))

    @property
    def params(self) -> float | None:
        return _num(self.metrics.get("params", self.config.get("params")))

    @property
    def macs(self) -> float | None:
        return _num(self.metrics.get("macs", self.config.get("macs")))

    def size_bytes(self, kind: str = "tflite") -> float | None:
        sizes = self.metrics.get("file_size_bytes")
        if isinstance(sizes, dict) and _num(sizes.get(kind)) is not None:
            return _num(sizes.get(kind))
        f = self.path / ("model.tflite" if kind == "tflite" else "model.keras")
        return float(f.stat().st_size) if f.is_file() else None

    def latency(self, kind: str = "keras", stat: str = "median") -> float | None:
        lat = self.metrics.get("latency_ms")
        if isinstance(lat, dict) and isinstance(lat.get(kind), dict):
            return _num(lat[kind].get(stat))
        return None

    @property
    def training_time_s(self) -> float | None:
        return _num(self.training.get("training_time_s", self.metrics.get("training_time_s")))

    @property
    def has_predictions(self) -> bool:
        return (self.path / PREDICTIONS_FILE).is_file()

    @property
    def has_tflite(self) -> bool:
        return (self.path / "model.tflite").is_file()


def text2image_summary() -> list[tuple[str, str, str]] | None:
    """Headline figures from saved_models/text2image/metrics.json (kpi_grid items), tolerant of
    missing keys; None when there is no such file."""
    metrics, problem = read_json(text2image_dir() / "metrics.json")
    if problem:
        return None

    def get(*keys):
        node = metrics
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return None
            node = node[k]
        return node

    items = []
    acc = _num(get("prompt_accuracy", "accuracy"))
    if acc is not None:
        items.append(("Prompt accuracy", pct(acc), "big"))
    fd = _num(get("frechet_distance", "generated_vs_test"))
    if fd is not None:
        items.append(("Fréchet distance", f"{fd:.1f}", ""))
    sec = _num(get("seconds_per_image", "median_s"))
    if sec is not None:
        steps = get("seconds_per_image", "steps")
        items.append(("Time per image", f"{sec:.2f} s" + (f" ({steps} steps)" if steps else ""), ""))
    params = get("params", "total") if isinstance(get("params"), dict) else get("params")
    if _num(params) is not None:
        items.append(("Parameters", count(_num(params)), ""))
    size = _num(get("model_size_bytes"))
    if size is not None:
        items.append(("Size", nbytes(size), ""))
    t = _num(get("training_time_s"))
    if t is not None:
        items.append(("Training time", duration(t), ""))
    return items


def is_classifier_dir(path: Path) -> bool:
    if not path.is_dir() or path.name == TEXT2IMAGE_NAME or path.name.startswith("."):
        return False
    if (path / "model.keras").exists():
        return True
    cfg, _ = read_json(path / "config.json")
    return bool(cfg.get("arch"))


def _read_entry(path: Path) -> ModelEntry:
    entry = ModelEntry(name=path.name, path=path)
    entry.config, problem = read_json(path / "config.json")
    if problem:
        entry.problems.append(problem)
    entry.name = str(entry.config.get("name") or path.name)
    entry.training, problem = read_json(path / "training.json")
    if problem and "missing" not in problem:
        entry.problems.append(problem)
    entry.metrics, problem = read_json(path / "metrics.json")
    if problem:
        if "missing" in problem:
            entry.notes.append("not evaluated yet (no metrics.json)")
        else:
            entry.problems.append(problem)
    problem = check_keras_file(path / "model.keras")
    entry.model_ok = problem is None
    if problem:
        entry.problems.append(problem)
    return entry


def _folder_signature(root: Path) -> tuple:
    """Changes whenever a model folder or one of its files changes, so caches refresh."""
    sig = []
    try:
        for child in sorted(root.iterdir()):
            if child.is_dir():
                files = []
                for f in sorted(child.iterdir()):
                    with contextlib.suppress(OSError):
                        st_ = f.stat()
                        files.append((f.name, st_.st_mtime_ns, st_.st_size))
                sig.append((child.name, tuple(files)))
    except OSError:
        pass
    return tuple(sig)


@st.cache_data(show_spinner=False, max_entries=8)
def _discover(root: str, signature: tuple) -> list[ModelEntry]:
    root_p = Path(root)
    return [_read_entry(p) for p in sorted(root_p.iterdir()) if is_classifier_dir(p)]


def discover_models() -> tuple[list[ModelEntry], str | None]:
    """Every classifier under the models root, best accuracy first; or ([], friendly problem)."""
    root = models_root()
    if not root.is_dir():
        return [], (f"No models folder found at `{display_path(root)}`. Train a model with "
                    "`python -m trainer.train` or set `SAVED_MODELS_DIR` to a folder of saved models.")
    entries = _discover(str(root), _folder_signature(root))
    if not entries:
        return [], (f"`{display_path(root)}` holds no classifiers yet. Train one with "
                    "`python -m trainer.train`.")
    return sorted(entries, key=lambda e: (-(e.accuracy or -1.0), e.name)), None


def usable_models(need: str = "model") -> list[ModelEntry]:
    """Classifiers that can serve a page: need="model" (a loadable model.keras) or
    need="predictions" (a test_predictions.npz)."""
    models, _ = discover_models()
    if need == "predictions":
        return [m for m in models if m.has_predictions]
    return [m for m in models if m.model_ok]


def model_picker(models: list[ModelEntry], key: str, label: str = "Model") -> ModelEntry:
    """A selectbox of models that keeps the choice across pages (session state)."""
    names = [m.path.name for m in models]
    shared = st.session_state.get("chosen_model")
    if key not in st.session_state and shared in names:
        st.session_state[key] = shared

    def fmt(n: str) -> str:
        m = models[names.index(n)]
        return f"{m.name}  ·  {pct(m.accuracy)}" if m.accuracy is not None else m.name

    choice = st.selectbox(label, names, key=key, format_func=fmt)
    st.session_state["chosen_model"] = choice
    return models[names.index(choice)]


# --------------------------------------------------------------------------------------------
# Formatting


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def count(x: float | None) -> str:
    if x is None:
        return "—"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g} {suffix}"
    return f"{x:.0f}"


def nbytes(x: float | None) -> str:
    """Decimal units (MB = 10^6 bytes), as the evaluation reports use."""
    if x is None:
        return "—"
    for div, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if x >= div:
            return f"{x / div:.3g} {suffix}"
    return f"{x:.0f} B"


def ms(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------------------------
# Data and models (cached for every session of this server)


class DashboardDataError(Exception):
    """Test images or predictions are unavailable; the message says what to do."""


# The test images are shared by every session of this server: a plain module-level cache, so
# a background thread can fill it at start-up (see prefetch_test_set) as well as a page.
_TEST_SETS: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
_TEST_LOCK = threading.Lock()
_PREFETCH_STARTED = False


def _load_test_set(path: str) -> tuple[np.ndarray, np.ndarray, str]:
    with _TEST_LOCK:
        if path not in _TEST_SETS:
            from trainer.data import load_cifar10

            data = load_cifar10(path, splits=("test",))
            _TEST_SETS[path] = (data.x_test, data.y_test, data.source)
        return _TEST_SETS[path]


def prefetch_test_set() -> None:
    """Starts reading the test images in the background, once per server, so the first visit to
    the confusion explorer does not wait for it. Faults are left for the page to report."""
    global _PREFETCH_STARTED
    if _PREFETCH_STARTED:
        return
    _PREFETCH_STARTED = True
    try:
        from trainer.data import resolve_archive

        path = resolve_archive()
    except Exception:
        return
    if path is None or not Path(path).is_file():
        return

    def work():
        time.sleep(3.0)  # let the first page render first
        with contextlib.suppress(Exception):
            _load_test_set(str(path))

    threading.Thread(target=work, name="prefetch-cifar10-test", daemon=True).start()


def test_set() -> tuple[np.ndarray, np.ndarray, str]:
    """(x_test uint8 (10000,32,32,3), y_test, source) from the local archive.

    Never downloads (the dashboard must work offline): raises DashboardDataError with the fix.
    """
    try:
        from trainer.data import DataError, resolve_archive
    except ImportError as exc:  # pragma: no cover - the package is part of the repo
        raise DashboardDataError(f"the trainer package could not be imported ({exc})") from exc
    path = resolve_archive()
    if path is None:
        raise DashboardDataError(
            "The CIFAR-10 test images are not available offline. Put `cifar-10-python.tar.gz` in "
            "`../shared/data/` or set the `CIFAR10_ARCHIVE` environment variable to its path.")
    try:
        if str(path) in _TEST_SETS:
            return _TEST_SETS[str(path)]
        with st.spinner("Loading the CIFAR-10 test images…"):
            return _load_test_set(str(path))
    except DataError as exc:
        raise DashboardDataError(str(exc)) from exc


@st.cache_data(show_spinner=False, max_entries=16)
def _predictions_cached(model_dir: str, mtime: int) -> tuple[np.ndarray, np.ndarray]:
    pred = load_predictions(Path(model_dir), need_flip=False)  # the page shows plain predictions only
    return pred["probs"].astype(np.float32), pred["labels"]


def predictions(entry: ModelEntry) -> tuple[np.ndarray, np.ndarray]:
    """(probs float32 (N,10), labels) from test_predictions.npz, or DashboardDataError."""
    f = entry.path / PREDICTIONS_FILE
    if not f.is_file():
        raise DashboardDataError(
            f"{entry.name} has no saved test predictions yet. Run "
            f"`python -m trainer.evaluate {display_path(entry.path)}` to create them.")
    try:
        return _predictions_cached(str(entry.path), f.stat().st_mtime_ns)
    except Exception as exc:  # zip/npz faults come in many types
        raise DashboardDataError(
            f"The saved test predictions of {entry.name} could not be read ({exc}). "
            f"Re-run `python -m trainer.evaluate {display_path(entry.path)}`.") from exc


def load_model_file(path: str):
    """A classifier's model.keras, loaded as docs/ARTIFACTS.md says (safe_mode=True)."""
    try:
        from trainer.models import load_classifier
    except ImportError:  # an older checkout: plain Keras, still safe_mode
        import keras

        return keras.saving.load_model(path, safe_mode=True, compile=False)
    return load_classifier(path)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _classifier_cached(path: str, mtime: int):
    return load_model_file(path)


def classifier(entry: ModelEntry):
    """The Keras model (cached per server), or DashboardDataError with a friendly reason."""
    problem = check_keras_file(entry.path / "model.keras")
    if problem:
        raise DashboardDataError(f"{entry.name}: {problem}.")
    f = entry.path / "model.keras"
    try:
        return _classifier_cached(str(f), f.stat().st_mtime_ns)
    except Exception as exc:
        raise DashboardDataError(
            f"{entry.name} could not be loaded ({exc.__class__.__name__}: {str(exc)[:300]}).") from exc


def predict(model, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities for uint8 or float images (N,32,32,3), values 0-255."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    out = model(x, training=False)
    return np.asarray(out, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Serialising heavy work across sessions (and across processes on this machine)


@st.cache_resource
def _thread_locks() -> dict[str, threading.Lock]:
    return {"latency": threading.Lock(), "generation": threading.Lock()}


def lock_busy(name: str) -> bool:
    return _thread_locks()[name].locked()


@contextlib.contextmanager
def exclusive(name: str, timeout_s: float = 600.0) -> Iterator[None]:
    """Runs one `name` job at a time: a lock shared by all sessions of this server plus a file
    lock shared by every dashboard process on this machine. Raises TimeoutError if it waits
    longer than `timeout_s`."""
    lock = _thread_locks()[name]
    if not lock.acquire(timeout=timeout_s):
        raise TimeoutError(f"another {name} job is still running")
    try:
        path = Path(tempfile.gettempdir()) / f"cifar-dashboard-{name}.lock"
        with open(path, "a") as fh:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"another {name} job is still running") from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------
# Machine facts


def measure_latency(model_dir: Path, runs: int = 200, warmup: int = 20, timeout_s: float = 600) -> dict:
    """Latency on ONE CPU thread, measured by `trainer.latency` in a child process (so this
    server's threads and caches neither skew it nor are disturbed by it). Callers hold
    `exclusive("latency")`. Returns {"keras": {"median", "p90", "samples_ms"}, "tflite": {...},
    "tflite_int8": {...} (when the model has one), "cpu", "threads"}."""
    import inspect

    from trainer.latency import measure_in_subprocess

    kwargs = {"runs": runs, "warmup": warmup}
    params = inspect.signature(measure_in_subprocess).parameters
    if "flip_tta" in params:
        kwargs["flip_tta"] = False  # the page shows plain Keras and TFLite only
    if "timeout" in params:
        kwargs["timeout"] = timeout_s
    return measure_in_subprocess(str(model_dir), **kwargs)


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


# --------------------------------------------------------------------------------------------
# Look


CSS = """
<style>
.kpi-grid {display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 0.55rem 0.9rem;
           margin: 0.25rem 0 0.6rem 0;}
.kpi .l {font-size: 0.78rem; opacity: 0.65; white-space: nowrap; overflow: hidden;
         text-overflow: ellipsis;}
.kpi .v {font-size: 1.3rem; font-weight: 600; line-height: 1.25; white-space: nowrap;}
.kpi .v.big {font-size: 1.6rem;}
.kpi .v.good {color: #1a7f37;}
.kpi .v.bad {color: #cf222e;}
.card-title {font-size: 1.15rem; font-weight: 700; margin-bottom: 0;}
.card-sub {font-size: 0.85rem; opacity: 0.65; margin-top: -0.2rem;}
</style>
"""


def inject_css() -> None:
    st.html(CSS)


def kpi_grid(items: list[tuple[str, str, str]], columns: int = 3) -> str:
    """HTML for a compact grid of (label, value, css class) figures; values never truncate."""
    import html

    cells = "".join(
        f'<div class="kpi"><div class="l">{html.escape(label)}</div>'
        f'<div class="v {cls}">{html.escape(value)}</div></div>'
        for label, value, cls in items)
    style = f' style="grid-template-columns: repeat({columns}, minmax(0, 1fr));"'
    return f'<div class="kpi-grid"{style}>{cells}</div>'


def chart(fig, key: str, **kwargs):
    """st.plotly_chart with the dashboard's look: no mode bar, full width."""
    fig.update_layout(font=dict(size=13), hoverlabel=dict(font_size=13))
    kwargs.setdefault("width", "stretch")
    return st.plotly_chart(fig, key=key, config={"displayModeBar": False, "displaylogo": False},
                           **kwargs)


def page_header(title: str, subtitle: str) -> None:
    st.title(title)
    st.caption(subtitle)


def show_problem(message: str, icon: str = ":material/info:") -> None:
    st.info(message, icon=icon)


def fmt_any(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
