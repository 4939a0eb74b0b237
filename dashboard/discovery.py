"""Where the dashboard's models live, and what their files say.

Two kinds of classifier folders (docs/ARTIFACTS.md):
- saved_models/<name>/ (SAVED_MODELS_DIR): models with weights. The ones named in
  saved_models/DELIVERABLES.json are the deliverables, shown first with their role; the manifest's
  "classifier" is every page's default model.
- tuning/experiments/<name>/ (TUNING_DIR): experiments kept for their figures only (metrics.json,
  training.json, config.json, test_predictions.npz; no weights), for the overview and the
  confusion explorer.

Nothing here raises to the page for an expected fault (missing folder, broken JSON, bad model
file): callers get a value plus a human-readable problem string.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from trainer.constants import (CONFIG_FILENAME, KERAS_FILENAME, METRICS_FILENAME, MODELS_ROOT,
                               PREDICTIONS_FILENAME, REPO_ROOT, TEST_IMAGES, TRAINING_FILENAME,
                               TUNING_ROOT)
from trainer.deliverables import ROLES, load_manifest

MODELS_ENV = "SAVED_MODELS_DIR"
TUNING_ENV = "TUNING_DIR"
MANIFEST_FILENAME = "DELIVERABLES.json"
EXPERIMENTS_DIRNAME = "experiments"
CLASSIFIER_ROLES = tuple(r for r in ROLES if r != "text_to_image")


# --------------------------------------------------------------------------------------------
# Paths


def models_root() -> Path:
    return Path(os.environ.get(MODELS_ENV) or MODELS_ROOT)


def tuning_root() -> Path:
    return Path(os.environ.get(TUNING_ENV) or TUNING_ROOT)


def experiments_root() -> Path:
    return tuning_root() / EXPERIMENTS_DIRNAME


def manifest() -> tuple[dict, str | None]:
    """The deliverables manifest beside the models ({} and a problem when absent or invalid)."""
    try:
        return load_manifest(models_root() / MANIFEST_FILENAME), None
    except (FileNotFoundError, ValueError) as exc:
        return {}, str(exc)


def text2image_dir() -> Path:
    data, _ = manifest()
    name = (data.get("text_to_image") or {}).get("name") or "text2image"
    return models_root() / name


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


def num(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def test_images_of(metrics: dict) -> int | None:
    """How many test images a metrics.json was computed on: its "test_images" field, or (files
    written before that field existed) the sum of its confusion matrix."""
    n = num(metrics.get("test_images"))
    if n is not None:
        return int(n)
    cm = metrics.get("confusion_matrix")
    try:
        total = int(np.asarray(cm, dtype=np.int64).sum()) if cm is not None else None
    except (TypeError, ValueError):
        return None
    return total or None


@dataclass
class ModelEntry:
    """One classifier folder, as far as its files could be read."""

    name: str
    path: Path
    kind: str = "model"          # "deliverable", "model" (other saved model) or "experiment"
    role: str | None = None      # the manifest's role key, for deliverables
    role_text: str = ""          # the manifest's description of that role
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
    def test_images(self) -> int | None:
        return test_images_of(self.metrics)

    @property
    def full_test(self) -> bool:
        """Whether the figures come from the whole test split (not a smoke run)."""
        n = self.test_images
        return n is not None and n >= TEST_IMAGES

    @property
    def accuracy(self) -> float | None:
        return num(self.metrics.get("accuracy"))

    @property
    def params(self) -> float | None:
        return num(self.metrics.get("params", self.config.get("params")))

    @property
    def macs(self) -> float | None:
        return num(self.metrics.get("macs", self.config.get("macs")))

    def size_bytes(self, kind: str = "tflite") -> float | None:
        sizes = self.metrics.get("file_size_bytes")
        if isinstance(sizes, dict) and num(sizes.get(kind)) is not None:
            return num(sizes.get(kind))
        f = self.path / ("model.tflite" if kind == "tflite" else KERAS_FILENAME)
        return float(f.stat().st_size) if f.is_file() else None

    def latency(self, kind: str = "keras", stat: str = "median") -> float | None:
        lat = self.metrics.get("latency_ms")
        if isinstance(lat, dict) and isinstance(lat.get(kind), dict):
            return num(lat[kind].get(stat))
        return None

    @property
    def training_time_s(self) -> float | None:
        return num(self.training.get("training_time_s", self.metrics.get("training_time_s")))

    @property
    def has_predictions(self) -> bool:
        return (self.path / PREDICTIONS_FILENAME).is_file()


def small_test_warning(entry: ModelEntry) -> str | None:
    """The flag for results computed on part of the test split (a smoke run), else None."""
    n = entry.test_images
    if n is None or n >= TEST_IMAGES:
        return None
    return (f"These figures come from only {n:,} test images (a smoke run), not the {TEST_IMAGES:,} "
            "of the test split: they are not results. Re-run `python -m trainer.evaluate` without "
            "--limit.")


def is_classifier_dir(path: Path) -> bool:
    if not path.is_dir() or path.name.startswith("."):
        return False
    cfg, _ = read_json(path / CONFIG_FILENAME)
    if (path / KERAS_FILENAME).exists():
        return True
    # a text-to-image folder has a config.json too, but no classifier architecture
    return bool(cfg.get("arch"))


def _read_entry(path: Path, kind: str) -> ModelEntry:
    entry = ModelEntry(name=path.name, path=path, kind=kind)
    entry.config, problem = read_json(path / CONFIG_FILENAME)
    if problem:
        entry.problems.append(problem)
    entry.name = str(entry.config.get("name") or path.name)
    entry.training, problem = read_json(path / TRAINING_FILENAME)
    if problem and "missing" not in problem:
        entry.problems.append(problem)
    entry.metrics, problem = read_json(path / METRICS_FILENAME)
    if problem:
        if "missing" in problem:
            entry.notes.append("not evaluated yet (no metrics.json)")
        else:
            entry.problems.append(problem)
    warning = small_test_warning(entry)
    if warning:
        entry.problems.append(warning)
    if kind != "experiment":
        problem = check_keras_file(path / KERAS_FILENAME)
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
            elif child.name == MANIFEST_FILENAME:
                sig.append((child.name, child.stat().st_mtime_ns))
    except OSError:
        pass
    return tuple(sig)


@st.cache_data(show_spinner=False, max_entries=8)
def _discover(models: str, experiments: str, signature: tuple) -> list[ModelEntry]:
    data, _ = manifest()
    roles = {v["name"]: (k, str(v.get("role") or "")) for k, v in data.items()
             if k in CLASSIFIER_ROLES and isinstance(v, dict) and v.get("name")}
    entries = []
    root = Path(models)
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if is_classifier_dir(p):
                e = _read_entry(p, "deliverable" if p.name in roles else "model")
                e.role, e.role_text = roles.get(p.name, (None, ""))
                entries.append(e)
    exp = Path(experiments)
    if exp.is_dir():
        entries += [_read_entry(p, "experiment") for p in sorted(exp.iterdir()) if is_classifier_dir(p)]
    return entries


def _order(e: ModelEntry) -> tuple:
    """Deliverables in the manifest's order, then other saved models, then experiments by name."""
    kind = {"deliverable": 0, "model": 1, "experiment": 2}[e.kind]
    role = CLASSIFIER_ROLES.index(e.role) if e.role in CLASSIFIER_ROLES else 0
    return (kind, role, e.name)


def discover_models() -> tuple[list[ModelEntry], str | None]:
    """Every classifier (deliverables first, then other saved models, then experiments); or
    ([], friendly problem)."""
    root, exp = models_root(), experiments_root()
    if not root.is_dir() and not exp.is_dir():
        return [], (f"No models folder found at `{display_path(root)}`. Train a model with "
                    "`python -m trainer.train` or set `SAVED_MODELS_DIR` to a folder of saved models.")
    entries = _discover(str(root), str(exp), (_folder_signature(root), _folder_signature(exp)))
    if not entries:
        return [], (f"`{display_path(root)}` holds no classifiers yet. Train one with "
                    "`python -m trainer.train`.")
    return sorted(entries, key=_order), None


def usable_models(need: str = "model") -> list[ModelEntry]:
    """Classifiers that can serve a page: need="model" (a loadable model.keras: saved models only)
    or need="predictions" (a test_predictions.npz: experiments too)."""
    models, _ = discover_models()
    if need == "predictions":
        return [m for m in models if m.has_predictions]
    return [m for m in models if m.model_ok]


def default_model(models: list[ModelEntry]) -> ModelEntry | None:
    """The manifest's shipped classifier when it is among `models`, else the first one."""
    for m in models:
        if m.role == "classifier":
            return m
    return models[0] if models else None


# --------------------------------------------------------------------------------------------
# The text-to-image model's figures


def text2image_metrics() -> dict:
    metrics, problem = read_json(text2image_dir() / METRICS_FILENAME)
    return {} if problem else metrics


def judge() -> tuple[str, float | None] | None:
    """(name, test accuracy) of the classifier that judged the text-to-image model's pictures, from
    its metrics.json ("judge": {"name", "accuracy"}); None when the file does not say."""
    j = text2image_metrics().get("judge")
    if isinstance(j, dict) and j.get("name"):
        return str(j["name"]), num(j.get("accuracy"))
    return None


# --------------------------------------------------------------------------------------------
# Training luck, from the models themselves

_NOT_RECIPE = {"name", "seed", "trial_id", "data_source", "params", "macs", "train_images"}


def _recipe_key(config: dict) -> str | None:
    """The config without the seed and the bookkeeping, and without switches left off (older
    configs spell out `false`/`null` for options newer ones omit), as a comparable string."""
    def clean(node):
        if isinstance(node, dict):
            return {k: clean(v) for k, v in sorted(node.items()) if v not in (False, None, 0, 0.0, "")}
        return node

    if not config.get("arch"):
        return None
    return json.dumps(clean({k: v for k, v in config.items() if k not in _NOT_RECIPE}), sort_keys=True)


def seed_spread(models: list[ModelEntry]) -> tuple[float, ModelEntry, ModelEntry] | None:
    """The largest accuracy gap, in points, between two runs of one recipe that differ only in their
    seed (full test split only), and the two runs; None when no such pair was saved."""
    groups: dict[str, list[ModelEntry]] = {}
    for m in models:
        key = _recipe_key(m.config)
        if key and m.accuracy is not None and m.full_test and m.config.get("seed") is not None:
            groups.setdefault(key, []).append(m)
    best = None
    for runs in groups.values():
        for i, a in enumerate(runs):
            for b in runs[i + 1:]:
                if a.config.get("seed") != b.config.get("seed"):
                    gap = abs(a.accuracy - b.accuracy) * 100
                    if best is None or gap > best[0]:
                        best = (gap, a, b)
    return best
