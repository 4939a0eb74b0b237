"""Recipes: everything one training run needs, as data.

A recipe is a JSON object: name, arch, hyperparameters, and the run's settings (epochs, batch size,
cutout, precision, hold-out, seed, subset, online teachers). `tuning/recipes/<name>.json` holds the
named ones; every config.json that `python -m trainer.train` saves is a complete recipe too, so a
saved model's folder says how to train it again. Settings a recipe leaves out take RUN_DEFAULTS;
command-line flags override a recipe's values one by one.
"""

from __future__ import annotations

from pathlib import Path

from trainer.architectures import AIRNET_HP, ARCHITECTURE_NAMES, DEFAULT_HP
from trainer.artifacts import read_json
from trainer.constants import KERAS_FILENAME, RECIPES_DIR
from trainer.paths import check_name

RUN_DEFAULTS = {
    "epochs": 15, "batch_size": 256, "subset": None, "holdout": 0.1, "cutout": 0,
    "precision": "float32", "seed": 0,
    "teacher_models": None, "teacher_weight": 0.9, "teacher_temperature": 1.0,
}
RECIPE_KEYS = ("name", "arch", "hyperparameters", *RUN_DEFAULTS)
# ResNet-20 trains with the same recipe as the searched nets, at its paper's peak LR.
RESNET20_HP = {"learning_rate": 0.2, "weight_decay": 5e-4, "label_smoothing": 0.1}
# Experiments that were dropped; their code lives on at this tag (git checkout RETIRED_TAG).
RETIRED_TAG = "dropped-experiments-2026-12"
RETIRED_SETTINGS = ("alternating_flip", "ema", "lookahead")
RETIRED_HYPERPARAMETERS = ("whiten_stem", "identity_init")


class RetiredRecipeError(ValueError):
    """A recipe that needs an experiment's code path this version no longer has."""


def default_hyperparameters(arch: str) -> dict:
    """What a recipe's "hyperparameters" are merged into, per architecture."""
    if arch not in ARCHITECTURE_NAMES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURE_NAMES)}")
    return dict({"sepnet": DEFAULT_HP, "airnet": AIRNET_HP}.get(arch, RESNET20_HP))


def best_trial(tuning_dir: Path) -> dict:
    """The best completed trial of a search summary: {"trial_id", "val_accuracy", "recipe"}, where
    recipe holds the trial's arch, hyperparameters and cutout."""
    path = Path(tuning_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no search summary at {path}; run `python -m trainer.search` "
                                "or train a named recipe with --recipe NAME")
    summary = read_json(path)
    by_id = {r["trial_id"]: r for r in summary.get("trials", [])}
    best = by_id.get(summary.get("best_trial_id"))
    if best is None:
        raise ValueError(f"{path} has no completed trial to train")
    recipe = summary.get("best_recipe") or {  # summaries of the earlier sepnet search
        "arch": "sepnet", "hyperparameters": {k[3:]: v for k, v in best.items() if k.startswith("hp_")}}
    return {"trial_id": best["trial_id"], "val_accuracy": best["val_accuracy"], "recipe": recipe}


def shipped_recipe_name() -> str:
    """The recipe of the classifier we ship (the deliverables manifest names it)."""
    from trainer.deliverables import deliverable_name

    return deliverable_name("classifier")


def available() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.json"))


def _retired(what: str, source) -> RetiredRecipeError:
    return RetiredRecipeError(f"{source} uses {what}, a dropped experiment this version no longer runs; "
                              f"its code is kept at the git tag {RETIRED_TAG}")


def from_spec(spec: dict, source) -> dict:
    """A complete recipe from a recipe file, a saved config.json or an architecture config."""
    if "arch" not in spec:
        raise ValueError(f"{source} must hold an 'arch' key (sepnet, airnet or resnet20)")
    for key in RETIRED_SETTINGS:
        if spec.get(key):
            raise _retired(f"{key}", source)
    hp_in = dict(spec.get("hyperparameters", {}))
    for key in RETIRED_HYPERPARAMETERS:
        if hp_in.pop(key, False):
            raise _retired(f"the hyperparameter {key}", source)
    recipe = {"name": spec.get("name") or Path(str(source)).stem, "arch": spec["arch"],
              "hyperparameters": {**default_hyperparameters(spec["arch"]), **hp_in}}
    for key, default in RUN_DEFAULTS.items():
        recipe[key] = spec[key] if spec.get(key) is not None else default
    teacher = spec.get("teacher")  # a saved config.json records its teacher this way
    if teacher:
        if not teacher.get("online"):
            raise _retired("a stored teacher file", source)
        recipe.update(teacher_models=list(teacher["models"]), teacher_weight=teacher.get("weight", 0.9),
                      teacher_temperature=teacher.get("temperature", 1.0))
    if spec.get("trial_id") is not None:
        recipe["trial_id"] = spec["trial_id"]
    return recipe


def load(recipe: str | None, tuning_dir: Path | None = None) -> dict:
    """--recipe: a name in tuning/recipes/, a JSON file (a recipe or a saved config.json), `best`
    (the search's best trial in tuning_dir) or `default`; None is the shipped classifier's recipe."""
    if recipe is None:
        recipe = shipped_recipe_name()
    if recipe == "best":
        # The best trial's network and settings, trained with the shipped classifier's budget.
        trial = best_trial(tuning_dir or RECIPES_DIR.parent)
        shipped = load(None)
        spec = {**{k: shipped[k] for k in RUN_DEFAULTS}, **trial["recipe"],
                "name": f"{trial['recipe']['arch']}_searched", "trial_id": trial["trial_id"]}
        return from_spec(spec, "the search's best trial")
    if recipe == "default":
        return from_spec({"name": "sepnet_default", "arch": "sepnet"}, "default")
    named = RECIPES_DIR / f"{recipe}.json"
    path = Path(recipe)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        if "/" in recipe or recipe.endswith(".json") or not named.is_file():
            raise FileNotFoundError(f"--recipe {recipe!r} is neither a recipe in {RECIPES_DIR} "
                                    f"({', '.join(available()) or 'none'}), best, default, nor a JSON file")
        path = named
    return from_spec(read_json(path), path)


def with_overrides(recipe: dict, **overrides) -> dict:
    """The recipe with each override that is not None put in; the name is checked as a folder name."""
    out = {**recipe, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(overrides) - set(RECIPE_KEYS)
    if unknown:
        raise ValueError(f"not recipe settings: {', '.join(sorted(unknown))}")
    check_name(out["name"], "the model name (--name or the recipe's name)")
    return out


def check_teachers(model_dirs) -> list[Path]:
    """Every online teacher folder checked before any model is loaded (or any data read)."""
    from trainer.artifacts import is_classifier_dir

    dirs = [Path(d) for d in model_dirs]
    for d in dirs:
        if not is_classifier_dir(d):
            raise FileNotFoundError(f"teacher {d} is not a saved classifier (no {KERAS_FILENAME})")
    return dirs
