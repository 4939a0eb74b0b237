"""The deliverables manifest: which committed model plays which role.

`saved_models/DELIVERABLES.json` is the one place that names the shipped models; the dashboard,
the diffusion judge, the serving API, the tests and the README read it instead of hard-coding a
model name.

    from trainer.deliverables import deliverable_dir
    deliverable_dir("classifier")      # Path('.../saved_models/airnet_sep_cutout8')
"""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_ROOT = REPO_ROOT / "saved_models"
MANIFEST = MODELS_ROOT / "DELIVERABLES.json"
ROLES = ("classifier", "most_accurate", "peer", "text_to_image")


def load_manifest(path=MANIFEST) -> dict:
    """{role: {"name": ..., "role": ...}}; a clear error if the file is missing or incomplete."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing deliverables manifest {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"deliverables manifest {path} is not valid JSON: {exc}") from exc
    missing = [r for r in ROLES if not isinstance(data.get(r), dict) or not data[r].get("name")]
    if missing:
        raise ValueError(f"deliverables manifest {path} names no model for: {', '.join(missing)}")
    return data


def deliverable_name(role: str, path=MANIFEST) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown deliverable role {role!r}; known: {', '.join(ROLES)}")
    return load_manifest(path)[role]["name"]


def deliverable_dir(role: str, path=MANIFEST) -> Path:
    """The model folder of a role, beside the manifest (absolute, works from any directory)."""
    return Path(path).resolve().parent / deliverable_name(role, path)
