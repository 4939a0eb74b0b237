"""The input pipeline and the learning-rate schedule shared by search and train."""

import numpy as np
import pytest

from trainer.training import FlipEpoch, OneCycle, train_dataset


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


def _flipped_by_image(ds, n: int) -> np.ndarray:
    # Image i is i on its left half and 255 on its right: the value identifies it through any
    # shuffle, and a crop of at most 4 pixels keeps column 0 left-half unless the image is mirrored.
    flipped = np.zeros(n, bool)
    for images, _ in ds:
        images = images.numpy()[..., 0]
        ids = images.min(axis=(1, 2)).astype(int)
        flipped[ids] = images[:, :, 0].mean(axis=1) > images[:, :, -1].mean(axis=1)
    return flipped


def test_alternating_flip_mirrors_each_image_on_every_other_epoch():
    n = 64
    x = np.full((n, 32, 32, 3), 255, np.uint8)
    x[:, :, :16] = np.arange(n, dtype=np.uint8)[:, None, None, None]
    flip = FlipEpoch()
    ds = train_dataset(x, np.arange(n) % 10, batch_size=16, seed=0, flip_epoch=flip.epoch)
    by_epoch = []
    for epoch in range(3):
        flip.on_epoch_begin(epoch)
        by_epoch.append(_flipped_by_image(ds, n))
    assert 0 < by_epoch[0].sum() < n  # the first epoch's flips are coin tosses
    assert np.array_equal(by_epoch[1], ~by_epoch[0]) and np.array_equal(by_epoch[2], by_epoch[0])


def test_one_cycle_warms_up_peaks_and_anneals_to_zero():
    schedule = OneCycle(peak=0.2, total_steps=100, warmup=0.25)
    lr = [float(schedule(step)) for step in (0, 25, 100)]
    assert lr == pytest.approx([0.02, 0.2, 0.0], abs=1e-6)
    assert OneCycle.from_config(schedule.get_config()).total_steps == 100


def test_lookahead_pulls_fast_weights_to_the_slow_average_every_k_steps():
    import keras

    from trainer.training import Lookahead

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer="sgd", loss="mse")
    model.layers[0].kernel.assign([[0.0], [0.0]])
    la = Lookahead(total_steps=10, every=5, peak=0.5)
    la.set_model(model)
    la.on_train_begin()
    assert la.decay(0) == 0.0 and la.decay(10) == 0.5 and la.decay(5) == pytest.approx(0.5 / 8)
    for step in range(1, 11):
        model.layers[0].kernel.assign([[float(step)], [0.0]])  # stands in for an optimizer step
        la.on_train_batch_end(step - 1)
        if step == 4:  # between syncs the fast weights move freely
            assert float(model.layers[0].kernel[0, 0]) == 4.0
    # step 5: slow = (1/16) * 0 + (15/16) * 5; step 10: slow = 0.5 * slow + 0.5 * 10
    expected = 0.5 * (15 / 16 * 5) + 0.5 * 10
    assert float(model.layers[0].kernel[0, 0]) == pytest.approx(expected)
    model.layers[0].kernel.assign([[100.0], [0.0]])
    la.on_train_end()
    assert float(model.layers[0].kernel[0, 0]) == pytest.approx(expected)  # ends on the slow weights


@pytest.fixture
def float32_after():
    yield
    from trainer.training import set_precision

    set_precision("float32")  # the policy is process-wide: later tests must build float32 models


def test_bfloat16_computes_in_bfloat16_keeps_float32_weights_and_a_float32_head(float32_after):
    from trainer.models import build_model
    from trainer.training import set_precision

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
