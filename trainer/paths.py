"""Validation of every name and output path a user gives, before any data is loaded.

A model name becomes a folder under the models root; `--name .` would replace the root itself and
`--name ../x` would write outside it. So a name is a plain file name, and an output path must not
be (or contain) the folders the project keeps its results in.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainer.constants import MODELS_ROOT, REPO_ROOT

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
MAX_NAME_LENGTH = 100


class BadPathError(ValueError):
    """A user-given name or path that could overwrite or escape the folder it belongs in."""


def check_name(name: str, what: str = "--name") -> str:
    """A plain name: letters, digits, '_', '-', '.'; not '.' or '..', no separators, not hidden."""
    if not isinstance(name, str) or not name:
        raise BadPathError(f"{what} must not be empty")
    if name in (".", "..") or not _NAME.fullmatch(name) or name.startswith(".") or len(name) > MAX_NAME_LENGTH:
        raise BadPathError(f"{what} {name!r} is not a plain name: use letters, digits, '_', '-' and '.' "
                           f"(not starting with '.', at most {MAX_NAME_LENGTH} characters)")
    return name


def check_inside(path, folder, what: str = "--out") -> Path:
    """`path` (relative to `folder` unless absolute) resolved, refused unless strictly inside `folder`."""
    folder = Path(folder).resolve()
    resolved = (folder / Path(path)).resolve()
    if resolved == folder or folder not in resolved.parents:
        raise BadPathError(f"{what} {str(path)!r} must name something inside {folder}")
    return resolved


def check_output_dir(path, what: str = "--out") -> Path:
    """A folder of results (e.g. the models root): refused if it is the repository root or a folder
    above it, where one model folder could shadow or replace the project's own folders."""
    if path is None or str(path) == "":
        raise BadPathError(f"{what} must not be empty")
    resolved = Path(path).resolve()
    repo = REPO_ROOT.resolve()
    if resolved == repo or resolved in repo.parents:
        raise BadPathError(f"{what} {str(path)!r} is the repository or a folder above it; "
                           f"give a folder for results, e.g. {MODELS_ROOT.relative_to(REPO_ROOT)}")
    return Path(path)


def check_model_folder(out, name: str, what: str = "--name") -> Path:
    """The folder a model called `name` is saved to under `out`, both checked."""
    return check_output_dir(out) / check_name(name, what)


def check_output_file(path, suffixes: tuple[str, ...], what: str = "--out") -> Path:
    """A file to write: it needs one of `suffixes`, a name (not a folder) and an existing parent folder."""
    if path is None or str(path) == "":
        raise BadPathError(f"{what} must not be empty")
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise BadPathError(f"{what} {str(path)!r} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise BadPathError(f"{what} {str(path)!r} is a folder; give a file name")
    if not path.resolve().parent.is_dir():
        raise BadPathError(f"{what} {str(path)!r}: folder {path.resolve().parent} does not exist")
    return path
