from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest

from trainer.data import REPO_ROOT
from trainer.hypermodel import SepNetHyperModel, sample_hyperparameters
from trainer.macs import count_macs
from trainer.models import (DEFAULT_HP, PARAM_LIMIT, ModelTooLargeError, build_airnet, build_model,
                            build_resnet20, build_sepnet, check_param_limit, load_classifier)


def test_defaults_build_a_valid_model_under_the_limit():
    hp = kt.HyperParameters()
    values = sample_hyperparameters(hp)
    assert values == {k: DEFAULT_HP[k] for k in values}  # every default is the DEFAULT_HP one
    model = SepNetHyperModel(epochs=1, batch_size=32, train_images=64).build(hp)
    assert model.count_params() < PARAM_LIMIT
    probs = model(np.full((2, 32, 32, 3), 128.0, np.float32))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)


def test_every_sampled_point_is_under_1m_or_a_failed_trial():
    hypermodel = SepNetHyperModel(epochs=1, batch_size=32, train_images=64)
    hp = kt.HyperParameters()
    sample_hyperparameters(hp)
    built = failed = 0
    for seed in range(24):
        point = kt.HyperParameters()
        point.merge(hp.space)
        for p in hp.space:
            point.values[p.name] = p.random_sample(seed * 101 + hash(p.name) % 97)
        try:
            model = hypermodel.build(point)
        except kt.errors.FailedTrialError as exc:
            assert "parameters >=" in str(exc)
            assert build_sepnet(point.values).count_params() >= PARAM_LIMIT
            failed += 1
        else:
            assert model.count_params() < PARAM_LIMIT
            built += 1
    assert built > 0  # the space is not all oversized


def test_resnet20_matches_the_paper():
    model = build_resnet20()
    # He et al. 2016: 0.27M parameters, ~41M MACs (40.8M counted layer by layer).
    assert 0.26e6 < model.count_params() < 0.28e6
    assert 40e6 < count_macs(model) < 42e6


def test_airnet_config_is_under_the_limit_and_mostly_separable(tmp_path):
    from trainer.train import resolve_config

    spec = resolve_config("tuning/airnet_sep.json", tmp_path)
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


def test_whitening_kernel_decorrelates_the_patches():
    from trainer.data import TRAIN_MEAN, TRAIN_STD
    from trainer.models import whitening_kernel

    images = _smooth_images()
    kernel = whitening_kernel(images)
    assert kernel.shape == (2, 2, 3, 24)
    x = (images - np.array(TRAIN_MEAN)) / np.array(TRAIN_STD)
    patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)
    out = patches @ kernel.reshape(12, 24)  # what the stem computes before its activation
    cov = out[:, :12].T @ out[:, :12] / len(out)
    np.testing.assert_allclose(cov, np.eye(12), atol=0.02)  # whitened: unit variance, uncorrelated
    np.testing.assert_allclose(out[:, 12:], -out[:, :12])  # the +/- pairs
    with pytest.raises(ValueError, match="NHWC RGB"):
        whitening_kernel(images[..., :2])


def test_whitened_stem_is_set_once_and_never_trained(tmp_path):
    import keras

    from trainer.models import init_whitening_stem, whitening_kernel

    hp = {"stem_width": 24, "widths": [8, 16, 16], "convs": [1, 1, 1], "whiten_stem": True}
    model = build_airnet(hp)
    images = _smooth_images(32).astype(np.float32)
    init_whitening_stem(model, images)
    stem = model.get_layer("stem_conv")
    np.testing.assert_allclose(stem.kernel.numpy(), whitening_kernel(images), rtol=1e-6)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    model.fit(images, np.arange(32) % 10, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_allclose(stem.kernel.numpy(), whitening_kernel(images), rtol=1e-6)
    model.save(tmp_path / "model.keras")
    assert not load_classifier(tmp_path).get_layer("stem_conv").trainable
    with pytest.raises(ValueError, match="24 filters"):
        init_whitening_stem(build_airnet({"stem_width": 16, "widths": [8, 8, 8], "convs": [1, 1, 1]}), images)


def test_airnet_rejects_mismatched_block_lists():
    with pytest.raises(ValueError, match="one entry per block"):
        build_airnet({"widths": [64, 128], "convs": [2, 2, 2]})
    with pytest.raises(ValueError, match="unknown block type"):
        build_airnet({"block_types": ["conv", "grouped", "separable"]})


COMMITTED_CONFIGS = sorted(str(p) for p in (REPO_ROOT / "tuning").rglob("*.json")
                           if '"arch"' in p.read_text())


@pytest.mark.parametrize("config", COMMITTED_CONFIGS, ids=lambda c: Path(c).stem)
def test_every_committed_config_builds_under_the_limit(config, tmp_path):
    from trainer.train import resolve_config

    assert len(COMMITTED_CONFIGS) >= 5  # sepnet_hybrid, airnet_sep and the airnet candidates
    spec = resolve_config(config, tmp_path)
    assert check_param_limit(build_model(spec["arch"], spec["hyperparameters"])) < PARAM_LIMIT


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
    with pytest.raises(ModelTooLargeError, match="limit is < 1,000,000"):
        check_param_limit(model)


def test_load_classifier_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_classifier(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot load"):
        load_classifier(tmp_path)


def test_identity_init_makes_block_convolutions_pass_channels_through():
    import keras

    from trainer.models import build_airnet

    hp = {"stem_width": 4, "widths": [8, 16], "convs": [2, 2], "block_types": ["conv", "separable"],
          "identity_init": True}
    model = build_airnet(hp)
    conv = keras.ops.convert_to_numpy(model.get_layer("b1c2_conv").kernel)   # 8 -> 8: all identities
    np.testing.assert_array_equal(conv[1, 1], np.eye(8))
    assert not conv[0].any() and not conv[2].any()
    widen = keras.ops.convert_to_numpy(model.get_layer("b1c1_conv").kernel)  # 4 -> 8: 4 identities
    np.testing.assert_array_equal(widen[..., :4], np.pad(np.eye(4)[None, None], ((1, 1), (1, 1), (0, 0), (0, 0))))
    assert widen[..., 4:].std() > 0  # the rest keep their random start
    dw = keras.ops.convert_to_numpy(model.get_layer("b2c1_dw").kernel)
    assert dw[1, 1].min() == 1.0 and dw.sum() == dw.shape[2]
    pw = keras.ops.convert_to_numpy(model.get_layer("b2c1_pw").kernel)          # 8 -> 16
    np.testing.assert_array_equal(pw[0, 0, :, :8], np.eye(8))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    stem = keras.Model(model.input, model.get_layer("stem_act").output)
    block = keras.Model(model.input, model.get_layer("b1c1_conv").output)
    # the first block conv copies the stem's 4 channels into its first 4 outputs
    np.testing.assert_allclose(block(x).numpy()[..., :4], stem(x).numpy(), atol=1e-5)
    plain = keras.ops.convert_to_numpy(build_airnet({**hp, "identity_init": False}).get_layer("b1c2_conv").kernel)
    assert not np.array_equal(plain[1, 1], np.eye(8))
