import json
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest

from trainer import recipes
from trainer.architectures import ModelTooLargeError, count_params_from_config
from trainer.constants import MAX_PARAMS as PARAM_LIMIT
from trainer.constants import REPO_ROOT
from trainer.macs import count_macs
from trainer.models import (DEFAULT_HP, build_airnet, build_model, build_resnet20, build_sepnet, check_param_limit,
                            load_classifier)


def test_resnet20_matches_the_paper():
    model = build_resnet20()
    # He et al. 2016: 0.27M parameters, ~41M MACs (40.8M counted layer by layer).
    assert 0.26e6 < model.count_params() < 0.28e6
    assert 40e6 < count_macs(model) < 42e6


def test_airnet_config_is_under_the_limit_and_mostly_separable(tmp_path):
    spec = recipes.load("tuning/airnet_sep.json", tmp_path)
    model = build_airnet(spec["hyperparameters"])
    assert 850_000 < model.count_params() < PARAM_LIMIT
    # Only the first block holds full 3x3 convolutions; blocks 2 and 3 are depthwise + pointwise.
    full = [layer.name for layer in model.layers
            if type(layer).__name__ == "Conv2D" and layer.kernel_size == (3, 3)]
    assert full == ["b1c1_conv", "b1c2_conv"]
    assert model.get_layer("features").output.shape[1:] == (512,)  # 31 -> 15 -> 7 -> 3, global max
    probs = model(np.full((2, 32, 32, 3), 128.0, np.float32))
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)


def test_airnet_saves_and_loads_without_custom_objects(tmp_path):
    model = build_airnet({"stem_width": 8, "widths": [8, 16, 16], "convs": [1, 2, 1]})
    model.save(tmp_path / "model.keras")
    loaded = load_classifier(tmp_path)  # safe_mode=True: only built-in layers
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)


def _smooth_images(n=64, seed=0):
    """Correlated neighbouring pixels and channels, like photographs, in the 0-255 range."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (n, 33, 33, 1)).cumsum(axis=1).cumsum(axis=2)[:, 1:, 1:]
    images = base + rng.normal(0, 10, (n, 32, 32, 3))
    return 128 + 50 * (images - images.mean()) / images.std()


def test_airnet_rejects_mismatched_block_lists():
    with pytest.raises(ValueError, match="one entry per block"):
        build_airnet({"widths": [64, 128], "convs": [2, 2, 2]})
    with pytest.raises(ValueError, match="unknown block type"):
        build_airnet({"block_types": ["conv", "grouped", "separable"]})


def _is_config(path: Path) -> bool:
    """A recipe or saved config: a JSON object with a top-level "arch" (not a record that names one)."""
    text = path.read_text()
    return '"arch"' in text and isinstance(data := json.loads(text), dict) and "arch" in data


COMMITTED_CONFIGS = sorted(str(p) for p in (REPO_ROOT / "tuning").rglob("*.json") if _is_config(p))


@pytest.mark.parametrize("config", COMMITTED_CONFIGS, ids=lambda c: str(Path(c).relative_to(REPO_ROOT)))
def test_every_committed_config_builds_under_the_limit_or_names_the_retired_tag(config, tmp_path):
    assert len(COMMITTED_CONFIGS) >= 20  # the architecture configs, the recipes, the experiments' configs
    try:
        spec = recipes.load(config, tmp_path)
    except recipes.RetiredRecipeError as exc:
        assert recipes.RETIRED_TAG in str(exc)
        return
    model = build_model(spec["arch"], spec["hyperparameters"])
    # The count from the config alone (what train checks before building) is the built model's.
    assert count_params_from_config(spec["arch"], spec["hyperparameters"]) == model.count_params()
    assert check_param_limit(model) < PARAM_LIMIT


@pytest.mark.parametrize("arch,hp", [
    ("sepnet", {"squeeze_excite": True, "first_stage": "conv", "stem": "conv3s2", "expansion": 3, "kernel_size": 5}),
    ("sepnet", {"width_3": 320, "blocks_3": 3, "expansion": 4}),
    ("airnet", {"bn_scale": True, "block_types": ["conv", "conv", "separable"], "widths": [32, 64, 96]}),
    ("airnet", {"kernel_size": 5, "pool": "avg", "block_types": ["separable", "conv", "separable"],
                "widths": [16, 32, 64], "convs": [1, 2, 3], "stem_width": 16}),
    ("resnet20", {}),
])
def test_parameter_count_from_the_config_matches_the_built_model(arch, hp):
    assert count_params_from_config(arch, hp) == build_model(arch, hp).count_params()


def test_macs_of_a_known_layer_stack():
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)          # 32*32*8*3*3*3 = 221,184
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)         # 32*32*8*9     =  73,728
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)                            # 80
    assert count_macs(keras.Model(inputs, outputs)) == 221_184 + 73_728 + 80


def test_oversized_model_is_refused():
    model = build_sepnet({"width_3": 320, "blocks_3": 3, "expansion": 4})
    with pytest.raises(ModelTooLargeError, match="our limit is under 1,000,000"):
        check_param_limit(model)


def test_load_classifier_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_classifier(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot load .*truncated or corrupt"):
        load_classifier(tmp_path)
