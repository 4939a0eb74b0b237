import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from trainer.data import (CLASS_NAMES, DataError, balanced_subset, holdout_split, load_cifar10,
                          read_archive, unpickle_batch)


def _batch_bytes(n=20, labels=None, data=None) -> bytes:
    labels = list(range(10)) * (n // 10) if labels is None else labels
    data = np.zeros((n, 3072), np.uint8) if data is None else data
    return pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"x"}, protocol=2)


def _make_archive(path, members: dict) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_real_archive_shapes_labels_and_balance(cifar):
    assert cifar.x_train.shape == (50000, 32, 32, 3) and cifar.x_train.dtype == np.uint8
    assert cifar.x_test.shape == (10000, 32, 32, 3)
    assert np.bincount(cifar.y_train).tolist() == [5000] * 10
    assert np.bincount(cifar.y_test).tolist() == [1000] * 10
    # Known facts of CIFAR-10: first training image is a frog, the test labels begin 3, 8, 8, 0.
    assert CLASS_NAMES[cifar.y_train[0]] == "frog"
    assert cifar.y_test[:4].tolist() == [3, 8, 8, 0]
    assert abs(cifar.x_train.mean() / 255 - 0.4734) < 0.002


def test_missing_archive_names_the_file(tmp_path):
    with pytest.raises(DataError, match="not found: .*nope.tar.gz"):
        load_cifar10(tmp_path / "nope.tar.gz")


def test_truncated_archive_is_a_clear_error(tmp_path):
    good = tmp_path / "good.tar.gz"
    _make_archive(good, {"test_batch": _batch_bytes()})
    bad = tmp_path / "truncated.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_archive(bad, splits=("test",))


def test_not_a_tarball(tmp_path):
    bad = tmp_path / "junk.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="corrupt"):
        read_archive(bad)


def test_archive_missing_batches(tmp_path):
    path = tmp_path / "partial.tar.gz"
    _make_archive(path, {"test_batch": _batch_bytes()})
    with pytest.raises(DataError, match="lacks data_batch_1"):
        read_archive(path, splits=("train",))


def test_wrong_class_balance_is_refused(tmp_path):
    path = tmp_path / "small.tar.gz"
    _make_archive(path, {"test_batch": _batch_bytes(20)})
    with pytest.raises(DataError, match="1000 images per class"):
        load_cifar10(path, splits=("test",))


def test_bad_pixel_rows_are_refused(tmp_path):
    path = tmp_path / "shape.tar.gz"
    _make_archive(path, {"test_batch": _batch_bytes(10, data=np.zeros((10, 100), np.uint8))})
    with pytest.raises(DataError, match="3072"):
        read_archive(path, splits=("test",))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/should_not_exist",))


def test_unpickler_refuses_code_execution(tmp_path):
    payload = pickle.dumps({b"data": _Evil(), b"labels": [0]})
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        unpickle_batch(payload)
    path = tmp_path / "evil.tar.gz"
    _make_archive(path, {"test_batch": payload})
    with pytest.raises(DataError, match="unsafe"):
        read_archive(path, splits=("test",))


def test_unpickler_reads_numpy_batches():
    batch = unpickle_batch(_batch_bytes(10))
    assert batch["data"].shape == (10, 3072) and batch["labels"] == list(range(10))


def test_holdout_is_balanced_seeded_and_disjoint(cifar):
    x_fit, y_fit, x_val, y_val = holdout_split(cifar.x_train, cifar.y_train, 0.1, seed=3)
    assert len(y_val) == 5000 and len(y_fit) == 45000
    assert np.bincount(y_val).tolist() == [500] * 10
    again = holdout_split(cifar.x_train, cifar.y_train, 0.1, seed=3)
    assert np.array_equal(again[3], y_val) and np.array_equal(again[2], x_val)
    other = holdout_split(cifar.x_train, cifar.y_train, 0.1, seed=4)
    assert not np.array_equal(other[2], x_val)
    # No hold-out image leaks into the fitting set (images are compared by content).
    fit_keys = {img.tobytes() for img in x_fit[:5000]}
    assert not any(img.tobytes() in fit_keys for img in x_val[:500])


def test_balanced_subset(cifar):
    x, y = balanced_subset(cifar.x_train, cifar.y_train, 300, seed=0)
    assert len(y) == 300 and np.bincount(y).tolist() == [30] * 10
    with pytest.raises(ValueError):
        balanced_subset(cifar.x_train, cifar.y_train, 5)


def test_an_oversized_member_is_refused_before_it_is_decompressed(tmp_path, monkeypatch):
    import trainer.data

    monkeypatch.setattr(trainer.data, "MAX_BATCH_BYTES", 4096)
    path = tmp_path / "bomb.tar.gz"
    _make_archive(path, {"data_batch_1": b"\0" * 10_000})  # compresses to a few dozen bytes

    def no_reading(*args, **kwargs):
        raise AssertionError("the member was opened for reading")

    monkeypatch.setattr(tarfile.TarFile, "extractfile", no_reading)
    with pytest.raises(DataError, match="claims 10,000 bytes"):
        load_cifar10(path, splits=("train",))
