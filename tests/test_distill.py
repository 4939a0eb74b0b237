"""Distillation: the teacher file, the soft labels built from it, and training on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_module
from trainer.distill import load_teacher, soft_labels, teacher_probs
from trainer.training import VIEW_FIELDS, apply_view, draw_views, train_dataset


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


def test_soft_labels_give_each_view_its_own_target():
    probs, labels = _teacher(n=12)
    per_view = probs.reshape(6, 2, 10)
    mixed = soft_labels(per_view, labels[:6], 0.5)
    np.testing.assert_allclose(mixed, 0.5 * per_view + 0.5 * np.eye(10)[labels[:6]][:, None], atol=1e-5)


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
    teacher = load_teacher(tmp_path / "t.npz", labels)
    np.testing.assert_allclose(teacher.probs, probs)
    assert teacher.views is None
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
    assert config["teacher"] == {"file": str(teacher), "weight": 0.7, "temperature": 2.0, "views": 0}
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
    assert "teacher of 2 models on the whole of 50,000 training images" in done.stdout
    probs = load_teacher(out, cifar.y_train).probs
    assert probs.shape == (50_000, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-2)  # stored as float16

    missing = run_module("trainer.distill", tmp_path / "a", tmp_path / "nowhere", "--out", tmp_path / "x.npz")
    assert missing.returncode == 2 and "not a saved classifier" in missing.stderr
    assert not (tmp_path / "x.npz").exists()


def test_load_teacher_rejects_views_that_do_not_fit_the_probabilities(tmp_path):
    labels = np.arange(6) % 10
    views = draw_views(12, np.random.default_rng(0)).reshape(6, 2, VIEW_FIELDS)
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=(6, 2)).astype(np.float16)
    np.savez(tmp_path / "ok.npz", probs=probs, labels=labels, views=views, cutout=np.array(8))
    teacher = load_teacher(tmp_path / "ok.npz", labels)
    assert teacher.probs.shape == (6, 2, 10) and teacher.cutout == 8
    np.testing.assert_array_equal(teacher.views, views)
    np.savez(tmp_path / "bad.npz", probs=probs, labels=labels, views=views[:, :1], cutout=np.array(8))
    with pytest.raises(ValueError, match="do not fit"):
        load_teacher(tmp_path / "bad.npz", labels)


def test_apply_view_crops_mirrors_and_cuts_out_as_told():
    image = np.random.default_rng(0).integers(1, 255, (32, 32, 3)).astype(np.float32)
    def view(dy, dx, flip=0, cy=0, cx=0, cutout=0):
        return apply_view(image, np.array([dy, dx, flip, cy, cx], np.uint8), cutout).numpy()

    np.testing.assert_array_equal(view(4, 4), image)  # the centred crop of the padded image is the image
    np.testing.assert_array_equal(view(4, 4, flip=1), image[:, ::-1])
    np.testing.assert_array_equal(view(8, 0)[:28, 4:], image[4:, :28])  # shifted by (4, -4)
    np.testing.assert_array_equal(view(0, 4)[0], image[4])  # reflect padding: row -4 mirrors row 4
    cut = view(4, 4, cy=10, cx=0, cutout=8)
    assert np.all(cut[6:15, :5] == 0) and (cut == 0).all(-1).sum() == 9 * 5  # a 9x9 square clipped at the edge
    np.testing.assert_array_equal(cut[15:], image[15:])
    views = draw_views(1000, np.random.default_rng(0))
    assert views.shape == (1000, VIEW_FIELDS) and views.dtype == np.uint8
    assert views[:, :2].max() == 8 and views[:, 2].max() == 1 and views[:, 3:].max() == 31 and views.min() == 0


def test_train_dataset_replays_stored_views_with_their_own_targets():
    n, k = 16, 3
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    views = draw_views(n * k, rng).reshape(n, k, VIEW_FIELDS)
    targets = np.zeros((n, k, 10), np.float32)  # not distributions: columns 0 and 1 name the image and view
    targets[..., 0] = np.arange(n)[:, None]
    targets[..., 1] = np.arange(k)
    ds = train_dataset(x, np.arange(n) % 10, n, seed=0, cutout=8, targets=targets, views=views)
    seen = set()
    for images, labels in list(ds) + list(ds) + list(ds):
        for image, (i, v) in zip(images.numpy(), labels.numpy()[:, :2].astype(int)):
            np.testing.assert_array_equal(image, apply_view(x[i].astype(np.float32), views[i, v], 8).numpy())
            seen.add(v)
    assert seen == set(range(k))  # views are picked at random, not always the first
    with pytest.raises(ValueError, match="targets"):
        train_dataset(x, np.arange(n) % 10, n, seed=0, targets=targets[:, 0], views=views)


def test_distill_views_cli_and_training_on_its_views(cifar, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    member = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                               keras.layers.Conv2D(10, 3), keras.layers.GlobalAveragePooling2D(),
                               keras.layers.Softmax()])
    (tmp_path / "m").mkdir()
    member.save(tmp_path / "m" / "model.keras")
    out = tmp_path / "views.npz"
    done = run_module("trainer.distill", tmp_path / "m", "--views", 2, "--cutout", 8, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 views (cutout 8) of each of 50,000 training images" in done.stdout
    teacher = load_teacher(out, cifar.y_train)
    assert teacher.probs.shape == (50_000, 2, 10) and teacher.cutout == 8
    # The stored target of a view is the member's output on exactly that view.
    for i, v in ((0, 0), (123, 1)):
        image = apply_view(cifar.x_train[i].astype(np.float32), teacher.views[i, v], 8).numpy()
        np.testing.assert_allclose(teacher.probs[i, v], member(image[None]).numpy()[0], atol=2e-3)

    common = ["--epochs", 1, "--subset", 200, "--batch-size", 64, "--out", tmp_path / "out",
              "--checkpoints", tmp_path / "ckpt", "--config", "resnet20", "--verbose", 0, "--teacher", out]
    ok = run_module("trainer.train", *common, "--cutout", 8, "--name", "kd_views")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "kd_views" / "config.json").read_text())["teacher"]["views"] == 2
    wrong = run_module("trainer.train", *common, "--cutout", 4, "--name", "kd_wrong")
    assert wrong.returncode == 2 and "--cutout 8" in wrong.stderr
    assert not (tmp_path / "out" / "kd_wrong").exists()
    no_cutout = run_module("trainer.distill", tmp_path / "m", "--cutout", 8, "--out", tmp_path / "x.npz")
    assert no_cutout.returncode == 2 and "--cutout needs --views" in no_cutout.stderr


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


def test_mix_targets_is_soft_labels_on_tensors():
    from trainer.distill import mix_targets

    probs, labels = _teacher(n=8)
    for weight, temperature in ((0.9, 1.0), (0.5, 3.0), (0.0, 1.0)):
        online = np.asarray(mix_targets(probs, np.eye(10, dtype=np.float32)[labels], weight, temperature))
        np.testing.assert_allclose(online, soft_labels(probs, labels, weight, temperature), atol=1e-5)


def test_ensemble_teacher_averages_its_members(tmp_path):
    from trainer.distill import ensemble_teacher

    a, b = _save_member(tmp_path / "a", 0), _save_member(tmp_path / "b", 1, conv=True)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    teacher = ensemble_teacher([tmp_path / "a", tmp_path / "b"])
    np.testing.assert_allclose(teacher(x).numpy(), (a(x).numpy() + b(x).numpy()) / 2, atol=1e-6)
    assert not teacher.trainable_weights
    with pytest.raises(FileNotFoundError, match="not a saved classifier"):
        ensemble_teacher([tmp_path / "a", tmp_path / "nowhere"])


def test_online_distiller_pulls_the_student_to_the_teacher_not_the_labels():
    import keras

    from trainer.distill import OnlineDistiller

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
    common = ["--config", "default", "--epochs", 2, "--subset", 200, "--batch-size", 64, "--out", tmp_path / "out",
              "--checkpoints", tmp_path / "ckpt", "--name", "online", "--verbose", 0, "--cutout", 8,
              "--teacher-models", tmp_path / "m", "--teacher-weight", 0.8]
    first = run_module("trainer.train", *common, env={"TRAINER_STOP_AFTER_EPOCH": "1"})
    assert first.returncode == 130, first.stderr[-3000:]
    first_loss = json.loads((tmp_path / "ckpt" / "online" / "epochs.json").read_text())[0]["loss"]
    second = run_module("trainer.train", *common)
    assert second.returncode == 0, second.stderr[-3000:]
    d = tmp_path / "out" / "online"
    config = json.loads((d / "config.json").read_text())
    assert config["teacher"] == {"models": [str(tmp_path / "m")], "online": True, "weight": 0.8, "temperature": 1.0}
    training = json.loads((d / "training.json").read_text())
    assert training["epochs_run"] == 2 and training["history"]["loss"][0] == round(first_loss, 5)  # resumed
    from trainer.models import load_classifier

    assert load_classifier(d / "model.keras").count_params() == config["params"]  # no teacher inside
    both = run_module("trainer.train", *common[:-4], "--teacher", tmp_path / "x.npz",
                      "--teacher-models", tmp_path / "m")
    assert both.returncode == 2 and "exclude each other" in both.stderr
