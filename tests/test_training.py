"""The input pipeline, the learning-rate schedule, precision, and the folders a run writes."""

import json

import numpy as np
import pytest

from trainer.training import OneCycle, train_dataset


def _first_batch(cutout: int):
    x = np.full((16, 32, 32, 3), 200, np.uint8)  # constant images: crop and flip leave them unchanged
    y = np.arange(16) % 10
    images, labels = next(iter(train_dataset(x, y, batch_size=16, seed=0, cutout=cutout)))
    return images.numpy(), labels.numpy()


def test_pipeline_shapes_one_hot_labels_and_no_cutout_by_default():
    images, labels = _first_batch(cutout=0)
    assert images.shape == (16, 32, 32, 3) and images.dtype == np.float32
    assert np.all(images == 200.0)
    assert labels.shape == (16, 10) and np.all(labels.sum(axis=1) == 1)


@pytest.mark.parametrize("side", [8, 12])
def test_cutout_zeroes_one_square_per_image(side):
    images, _ = _first_batch(cutout=side)
    zeroed = (images[..., 0] == 0).reshape(16, -1).sum(axis=1)
    half = side // 2
    # A square of side 2*half+1 centred anywhere in the image, clipped at the borders.
    assert np.all(zeroed >= (half + 1) ** 2) and np.all(zeroed <= (2 * half + 1) ** 2)
    assert np.all((images == 0).all(axis=-1) | (images == 200).all(axis=-1))  # all channels together


def test_one_cycle_warms_up_peaks_and_anneals_to_zero():
    schedule = OneCycle(peak=0.2, total_steps=100, warmup=0.25)
    lr = [float(schedule(step)) for step in (0, 25, 100)]
    assert lr == pytest.approx([0.02, 0.2, 0.0], abs=1e-6)
    assert OneCycle.from_config(schedule.get_config()).total_steps == 100


@pytest.fixture
def float32_after():
    yield
    from trainer.runtime import set_precision

    set_precision("float32")  # the policy is process-wide: later tests must build float32 models


def test_bfloat16_computes_in_bfloat16_keeps_float32_weights_and_a_float32_head(float32_after):
    from trainer.models import build_model
    from trainer.runtime import set_precision

    set_precision("bfloat16")
    model = build_model("airnet", None)
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert {w.dtype for w in model.weights} == {"float32"}
    assert model.get_layer("probs").compute_dtype == "float32"
    assert model(np.zeros((2, 32, 32, 3), np.float32)).dtype == "float32"
    with pytest.raises(ValueError, match="unknown precision"):
        set_precision("float16")


def test_cpu_has_bf16_reads_the_cpu_flags(tmp_path):
    from trainer.artifacts import cpu_has_bf16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse avx2 avx512f\n")  # AVX-512 without its BF16 extension
    assert not cpu_has_bf16(cpuinfo)
    assert not cpu_has_bf16(tmp_path / "missing")


def test_train_dataset_refuses_a_zero_batch():
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        train_dataset(np.zeros((4, 32, 32, 3), np.uint8), np.arange(4), batch_size=0, seed=0)


def _model_folder(path, marker=True):
    from trainer.constants import ARTIFACT_MARKER

    path.mkdir(parents=True)
    (path / ("model.keras" if not marker else ARTIFACT_MARKER)).write_text("ours")
    return path


def test_atomic_dir_replaces_a_folder_it_wrote_and_marks_the_new_one(tmp_path):
    from trainer.artifacts import atomic_dir
    from trainer.constants import ARTIFACT_MARKER

    for marker in (True, False):  # the marker, or a saved model written before markers existed
        target = tmp_path / f"model_{marker}"
        _model_folder(target, marker)
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
        assert sorted(p.name for p in target.iterdir()) == sorted([ARTIFACT_MARKER, "new.txt"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_atomic_dir_refuses_a_folder_that_is_not_a_model_and_leaves_it_alone(tmp_path):
    from trainer.artifacts import NotAnArtifactError, atomic_dir

    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_text("not ours")
    ran = []
    with pytest.raises(NotAnArtifactError, match="not a folder this project wrote"):
        with atomic_dir(target):
            ran.append(True)
    assert ran == [] and [p.name for p in tmp_path.iterdir()] == ["photos"]
    assert (target / "holiday.jpg").read_text() == "not ours"


@pytest.mark.parametrize("which", ["models_root", "models_root_dot", "repo_root", "repo_parent", "filesystem_root"])
def test_atomic_dir_never_replaces_the_models_root_or_a_folder_above_it(which):
    from trainer.artifacts import NotAnArtifactError, atomic_dir
    from trainer.constants import MODELS_ROOT, REPO_ROOT

    target = {"models_root": MODELS_ROOT, "models_root_dot": MODELS_ROOT / ".", "repo_root": REPO_ROOT,
              "repo_parent": REPO_ROOT / "..", "filesystem_root": REPO_ROOT.anchor}[which]
    with pytest.raises(NotAnArtifactError, match="refusing to replace"):
        with atomic_dir(target):
            pass


def test_a_killed_runs_leftovers_are_cleaned_at_the_next_run(tmp_path):
    from trainer.artifacts import atomic_dir, clean_stale

    target = _model_folder(tmp_path / "m")
    _model_folder(tmp_path / ".m.tmp-abc123")           # killed while writing
    _model_folder(tmp_path / ".m.old")                  # killed after the swap
    _model_folder(tmp_path / ".other.tmp-x")            # another model's: not ours to touch
    with atomic_dir(target) as tmp:
        (tmp / "fresh").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-x", "m"]
    # Killed between the two renames: the model is only in .NAME.old, and is put back.
    old = _model_folder(tmp_path / ".n.old")
    (old / "weights").write_text("w")
    clean_stale(tmp_path / "n")
    assert (tmp_path / "n" / "weights").read_text() == "w" and not old.exists()


def test_a_bare_run_uses_the_shipped_classifiers_recipe():
    from trainer import recipes
    from trainer.deliverables import deliverable_name

    shipped = deliverable_name("classifier")
    assert recipes.load(None) == recipes.load(shipped)
    assert recipes.load(None)["name"] == shipped


@pytest.mark.parametrize("role", ["classifier", "most_accurate", "peer"])
def test_every_saved_config_replays_as_its_recipe(role):
    """The deliverable's config.json and its recipe file give the same run, setting for setting."""
    from trainer import recipes
    from trainer.deliverables import deliverable_dir

    folder = deliverable_dir(role)
    from_config = recipes.load(str(folder / "config.json"))
    assert from_config == recipes.load(folder.name)
    saved = json.loads((folder / "config.json").read_text())
    for key in ("epochs", "batch_size", "cutout", "holdout", "seed"):  # the settings a replay once lost
        assert from_config[key] == saved[key], key
    assert from_config["precision"] == (saved.get("precision") or "float32")


def test_flags_override_a_recipe_one_by_one_and_names_are_checked():
    from trainer import recipes
    from trainer.paths import BadPathError

    base = recipes.load("resnet20")
    changed = recipes.with_overrides(base, epochs=1, cutout=None, name="smoke")
    assert changed["epochs"] == 1 and changed["cutout"] == base["cutout"] and changed["name"] == "smoke"
    assert {k: v for k, v in changed.items() if k not in ("epochs", "name")} == \
        {k: v for k, v in base.items() if k not in ("epochs", "name")}
    with pytest.raises(BadPathError):
        recipes.with_overrides(base, name="..")


def test_a_recipe_of_a_retired_experiment_names_the_tag(tmp_path):
    from trainer import recipes

    spec = tmp_path / "old.json"
    spec.write_text(json.dumps({"arch": "airnet", "alternating_flip": True}))
    with pytest.raises(recipes.RetiredRecipeError, match=recipes.RETIRED_TAG):
        recipes.load(str(spec))
    spec.write_text(json.dumps({"arch": "airnet", "hyperparameters": {"whiten_stem": True}}))
    with pytest.raises(recipes.RetiredRecipeError, match="whiten_stem"):
        recipes.load(str(spec))


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/abs", "a\\\\b", "x" * 101])
def test_check_name_refuses_anything_but_a_plain_name(name):
    from trainer.paths import BadPathError, check_name

    with pytest.raises(BadPathError):
        check_name(name)
    assert check_name("airnet_sep-2.v1") == "airnet_sep-2.v1"
