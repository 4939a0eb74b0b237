"""TFLite exports compute the same function as the Keras model they came from (float), or nearly (int8)."""

import keras
import numpy as np
import pytest

from trainer.export import tflite_interpreter, tflite_predict, to_tflite, to_tflite_int8
from trainer.models import build_sepnet


def _interpreter(flatbuffer, tmp_path, name):
    """Through the project's own loader, as evaluate and latency load the files."""
    path = tmp_path / name
    path.write_bytes(flatbuffer)
    return tflite_interpreter(path)


def _coloured_images(rng, n):
    """One random colour per image plus noise: distinct pooled features, so distinct predictions."""
    colours = rng.uniform(0, 255, (n, 1, 1, 3))
    return np.clip(colours + rng.normal(0, 20, (n, 32, 32, 3)), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def peaked_model():
    """A small untrained sepnet with a scaled-up classifier, so its outputs are confident and
    differ from image to image: near-uniform outputs would hide quantisation errors."""
    keras.utils.set_random_seed(0)  # the untrained weights are the test input: keep them fixed
    model = build_sepnet({"width_1": 16, "width_2": 32, "width_3": 48})
    head = model.get_layer("probs")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 30, bias])
    return model


def test_int8_export_takes_raw_pixels_and_matches_float(peaked_model, tmp_path):
    rng = np.random.default_rng(0)
    calibration, images = _coloured_images(rng, 32), _coloured_images(rng, 16)  # same distribution, as in use
    float_probs = tflite_predict(_interpreter(to_tflite(peaked_model), tmp_path, "model.tflite"), images)
    int8_flatbuffer = to_tflite_int8(peaked_model, calibration)
    int8_interp = _interpreter(int8_flatbuffer, tmp_path, "model_int8.tflite")
    assert int8_interp.get_input_details()[0]["dtype"] == np.float32  # same interface as the float file
    int8_probs = tflite_predict(int8_interp, images)
    assert len(set(float_probs.argmax(1))) > 1, "the test model must not predict one class only"
    assert (int8_probs.argmax(1) == float_probs.argmax(1)).mean() >= 0.8
    assert np.abs(int8_probs - float_probs).max() < 0.25
    # every op runs in int8 (only the float input is quantised and the output dequantised)
    tensor_types = {t["dtype"] for t in int8_interp.get_tensor_details()}
    assert np.int8 in tensor_types


@pytest.mark.parametrize("shape", [(0, 32, 32, 3), (4, 28, 28, 3), (32, 32, 3)])
def test_int8_export_rejects_bad_calibration_images(peaked_model, shape):
    with pytest.raises(ValueError, match="calibration images must have shape"):
        to_tflite_int8(peaked_model, np.zeros(shape, np.float32))


def test_float_export_computes_the_keras_models_function(peaked_model, tmp_path):
    """The float TFLite file against the Keras model itself, image by image (int8 is compared above)."""
    images = _coloured_images(np.random.default_rng(1), 16)
    keras_probs = peaked_model.predict(images, verbose=0)
    tflite_probs = tflite_predict(_interpreter(to_tflite(peaked_model), tmp_path, "model.tflite"), images)
    assert len(set(keras_probs.argmax(1))) > 1, "the test model must not predict one class only"
    np.testing.assert_allclose(tflite_probs, keras_probs, atol=1e-4)
    assert (tflite_probs.argmax(1) == keras_probs.argmax(1)).all()
