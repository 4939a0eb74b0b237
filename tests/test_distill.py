"""Online distillation: saved classifiers, averaged, give each training batch its targets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_module


def _save_member(folder, seed, conv=False):
    """A small saved classifier (the real loader checks a 32x32x3 -> 10 model)."""
    import keras

    keras.utils.set_random_seed(seed)
    body = [keras.layers.Conv2D(10, 3)] if conv else []
    member = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255), *body,
                               keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    folder.mkdir()
    member.save(folder / "model.keras")
    return member


def test_mix_targets_blends_the_tempered_teacher_with_the_one_hot_label():
    from trainer.distillation import mix_targets

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=8).astype(np.float32)
    one_hot = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=8)]
    np.testing.assert_allclose(np.asarray(mix_targets(probs, one_hot, 0.0)), one_hot, atol=1e-6)
    np.testing.assert_allclose(np.asarray(mix_targets(probs, one_hot, 1.0)), probs, atol=1e-5)
    # Temperature T: softmax(log(p) / T), i.e. p^(1/T) renormalised, then mixed by weight.
    warm = probs ** (1 / 3.0)
    warm /= warm.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(mix_targets(probs, one_hot, 0.5, 3.0)), 0.5 * warm + 0.5 * one_hot,
                               atol=1e-5)


def test_ensemble_teacher_averages_its_members(tmp_path):
    from trainer.distillation import ensemble_teacher

    a, b = _save_member(tmp_path / "a", 0), _save_member(tmp_path / "b", 1, conv=True)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    teacher = ensemble_teacher([tmp_path / "a", tmp_path / "b"])
    np.testing.assert_allclose(teacher(x).numpy(), (a(x).numpy() + b(x).numpy()) / 2, atol=1e-6)
    assert not teacher.trainable_weights
    with pytest.raises(FileNotFoundError, match="not a saved classifier"):
        ensemble_teacher([tmp_path / "a", tmp_path / "nowhere"])


def test_online_distiller_pulls_the_student_to_the_teacher_not_the_labels():
    import keras

    from trainer.distillation import OnlineDistiller

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))  # a teacher that always says class 3, whatever the image
    teacher = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", kernel_initializer="zeros",
                                                     bias_initializer=keras.initializers.Constant(
                                                         np.eye(10)[3] * 20))(keras.layers.Flatten()(inputs)))
    student = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                                keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    model = OnlineDistiller(student, teacher, weight=1.0)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    x = np.random.default_rng(0).uniform(0, 255, (64, 32, 32, 3)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[np.zeros(64, int)]  # every label is class 0
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert (student.predict(x, verbose=0).argmax(axis=1) == 3).all()
    assert history.history["accuracy"][-1] == 0.0  # the metric still scores the true labels
    assert not teacher.trainable_weights and len(model.trainable_weights) == len(student.trainable_weights)


def test_train_with_online_teacher_resumes_and_saves_only_the_student(tmp_path):
    _save_member(tmp_path / "m", 0)
    common = ["--recipe", "default", "--epochs", 2, "--subset", 200, "--batch-size", 64, "--out", tmp_path / "out",
              "--checkpoints", tmp_path / "ckpt", "--name", "online", "--verbose", 0, "--cutout", 8,
              "--teacher-models", tmp_path / "m", "--teacher-weight", 0.8]
    first = run_module("trainer.train", *common, env={"TRAINER_STOP_AFTER_EPOCH": "1"})
    assert first.returncode == 130, first.stderr[-3000:]
    first_loss = json.loads((tmp_path / "ckpt" / "online" / "epochs.json").read_text())[0]["loss"]
    second = run_module("trainer.train", *common)
    assert second.returncode == 0, second.stderr[-3000:]
    d = tmp_path / "out" / "online"
    config = json.loads((d / "config.json").read_text())
    assert (config["teacher_models"], config["teacher_weight"], config["teacher_temperature"]) == \
        ([str(tmp_path / "m")], 0.8, 1.0)
    training = json.loads((d / "training.json").read_text())
    assert training["epochs_run"] == 2 and training["history"]["loss"][0] == round(first_loss, 5)  # resumed
    from trainer.models import load_classifier

    assert load_classifier(d / "model.keras").count_params() == config["params"]  # no teacher inside
    missing = run_module("trainer.train", *common[:-4], "--name", "nowhere", "--teacher-models", tmp_path / "nowhere")
    assert missing.returncode == 2 and "is not a saved classifier" in missing.stderr
    assert not (tmp_path / "out" / "nowhere").exists()


def test_online_distiller_refuses_bad_settings():
    import keras

    from trainer.distillation import OnlineDistiller

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10, activation="softmax")])
    for weight, temperature in ((1.5, 1.0), (0.5, 0.0)):
        with pytest.raises(ValueError):
            OnlineDistiller(model, model, weight, temperature)
