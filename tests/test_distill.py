"""Distillation: the teacher file, the soft labels built from it, and training on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_module
from trainer.distill import load_teacher, soft_labels, teacher_probs
from trainer.training import train_dataset


def _teacher(n=6, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(10), size=n).astype(np.float32)
    return probs, rng.integers(0, 10, size=n)


def test_soft_labels_mix_teacher_and_one_hot_by_weight():
    probs, labels = _teacher()
    np.testing.assert_allclose(soft_labels(probs, labels, 0.0), np.eye(10)[labels], atol=1e-6)
    np.testing.assert_allclose(soft_labels(probs, labels, 1.0), probs, atol=1e-5)
    half = soft_labels(probs, labels, 0.5)
    np.testing.assert_allclose(half, 0.5 * probs + 0.5 * np.eye(10)[labels], atol=1e-5)
    np.testing.assert_allclose(half.sum(axis=1), 1.0, atol=1e-5)


def test_temperature_spreads_the_teachers_mass_without_reordering_it():
    probs, labels = _teacher()
    warm = soft_labels(probs, labels, 1.0, temperature=4.0)
    def entropy(p):
        return -(p * np.log(p)).sum(axis=1)

    assert np.all(entropy(warm) > entropy(probs))
    np.testing.assert_array_equal(warm.argsort(axis=1), probs.argsort(axis=1))


@pytest.mark.parametrize("kwargs", [{"weight": 1.5}, {"weight": -0.1}, {"weight": 0.5, "temperature": 0.0}])
def test_soft_labels_reject_bad_settings(kwargs):
    probs, labels = _teacher()
    with pytest.raises(ValueError):
        soft_labels(probs, labels, **kwargs)


def test_soft_labels_reject_a_teacher_for_other_images():
    probs, labels = _teacher()
    with pytest.raises(ValueError, match="shape"):
        soft_labels(probs[:-1], labels, 0.5)


def test_load_teacher_checks_file_and_labels(tmp_path):
    probs, labels = _teacher()
    with pytest.raises(FileNotFoundError, match="trainer.distill"):
        load_teacher(tmp_path / "missing.npz", labels)
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a teacher file"):
        load_teacher(tmp_path / "corrupt.npz", labels)
    np.savez(tmp_path / "t.npz", probs=probs, labels=labels)
    np.testing.assert_allclose(load_teacher(tmp_path / "t.npz", labels), probs)
    with pytest.raises(ValueError, match="other training labels"):
        load_teacher(tmp_path / "t.npz", (labels + 1) % 10)


def test_teacher_probs_average_members_over_image_and_mirror():
    def member(scale):  # its class-0 probability is `scale` x the brightness of the image's left half
        def predict(x):
            p = np.zeros((len(x), 10))
            p[:, 0] = scale * x[:, :, :16].mean(axis=(1, 2, 3)) / 255
            p[:, 1] = 1 - p[:, 0]
            return p
        return predict

    x = np.zeros((2, 32, 32, 3), np.uint8)
    x[:, :, :16] = 255  # left half white: the mirror image has it on the right
    probs = teacher_probs([member(1.0), member(0.5)], x)
    # member 1: (1 + 0) / 2 = 0.5 on class 0; member 2: (0.5 + 0) / 2 = 0.25; average 0.375
    np.testing.assert_allclose(probs[:, 0], 0.375, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_batched_predict_matches_the_model_on_uneven_slices():
    import keras

    from trainer.distill import PREDICT_BATCH, batched_predict

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10, activation="softmax")])
    x = np.random.default_rng(0).integers(0, 255, (PREDICT_BATCH + 7, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(batched_predict(model)(x), model(x.astype(np.float32)).numpy(), atol=1e-5)


def test_train_dataset_carries_soft_targets_through_augmentation():
    probs, labels = _teacher(n=8)
    x = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    batch_x, batch_y = next(iter(train_dataset(x, labels, 8, seed=0, cutout=8, targets=probs)))
    assert batch_x.shape == (8, 32, 32, 3)
    # Shuffled, so match rows as a set: each target row is one of the teacher's rows, unchanged.
    got = sorted(map(tuple, np.round(batch_y.numpy(), 5)))
    np.testing.assert_allclose(got, sorted(map(tuple, np.round(probs, 5))))
    with pytest.raises(ValueError, match="targets"):
        train_dataset(x, labels, 8, seed=0, targets=probs[:4])


def test_train_with_a_teacher_records_it_and_rejects_a_mismatched_one(cifar, tmp_path):
    # Lookahead and alternating flips ride along: the same short run exercises their callbacks in a real fit.
    rng = np.random.default_rng(0)
    teacher = tmp_path / "teacher.npz"
    np.savez(teacher, probs=rng.dirichlet(np.ones(10), size=len(cifar.y_train)).astype(np.float16),
             labels=cifar.y_train)
    common = ["--epochs", 1, "--subset", 200, "--batch-size", 64, "--out", tmp_path / "out",
              "--checkpoints", tmp_path / "ckpt", "--config", "resnet20", "--verbose", 0]
    ok = run_module("trainer.train", *common, "--name", "kd", "--teacher", teacher,
                    "--teacher-weight", 0.7, "--teacher-temperature", 2, "--lookahead", "--alternating-flip")
    assert ok.returncode == 0, ok.stderr[-3000:]
    config = json.loads((tmp_path / "out" / "kd" / "config.json").read_text())
    assert config["teacher"] == {"file": str(teacher), "weight": 0.7, "temperature": 2.0}
    assert config["lookahead"] is True and config["alternating_flip"] is True

    np.savez(tmp_path / "short.npz", probs=np.zeros((10, 10)), labels=np.zeros(10, np.int64))
    bad = run_module("trainer.train", *common, "--name", "kd_bad", "--teacher", tmp_path / "short.npz")
    assert bad.returncode == 2
    assert "other training labels" in bad.stderr
    assert not (tmp_path / "out" / "kd_bad").exists()


def test_distill_cli_writes_a_teacher_file_that_train_accepts(cifar, tmp_path):
    import keras

    for name, seed in (("a", 0), ("b", 1)):  # two small members, enough for the averaging path
        keras.utils.set_random_seed(seed)
        member = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                                   keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
        (tmp_path / name).mkdir()
        member.save(tmp_path / name / "model.keras")
    out = tmp_path / "teacher.npz"
    done = run_module("trainer.distill", tmp_path / "a", tmp_path / "b", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "teacher of 2 models on 50,000 training images" in done.stdout
    probs = load_teacher(out, cifar.y_train)
    assert probs.shape == (50_000, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-2)  # stored as float16

    missing = run_module("trainer.distill", tmp_path / "a", tmp_path / "nowhere", "--out", tmp_path / "x.npz")
    assert missing.returncode == 2 and "not a saved classifier" in missing.stderr
    assert not (tmp_path / "x.npz").exists()
