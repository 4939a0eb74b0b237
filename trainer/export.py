"""TFLite export: through a SavedModel, the path that works for Keras 3 models."""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
# LiteRT: the runtime that replaces tf.lite.Interpreter (which warns it is deprecated); same outputs
# as tf.lite, bit for bit, on all 44 committed .tflite files (float32 and int8) when it was adopted.
from ai_edge_litert.interpreter import Interpreter

TFLITE_RUNTIME = f"ai-edge-litert {version('ai-edge-litert')}"  # recorded beside every TFLite timing



def _convert(model: keras.Model, configure=None) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if configure is not None:
            configure(converter)
        return converter.convert()


def to_tflite(model: keras.Model) -> bytes:
    """float32 TFLite flatbuffer with the model's own input/output (no quantisation)."""
    return _convert(model)


def to_tflite_int8(model: keras.Model, calibration_images) -> bytes:
    """Full-integer post-training quantisation: int8 weights and activations, every op in int8
    (conversion fails rather than silently falling back to float). Input and output stay float32,
    so callers feed raw 0-255 pixels exactly as for the float model. Activation ranges come from
    `calibration_images`: take them from the training split, never the test split."""
    images = np.asarray(calibration_images, np.float32)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) == 0:
        raise ValueError(f"calibration images must have shape (N, 32, 32, 3) with N >= 1, got {images.shape}")

    def representative_data():
        for image in images:
            yield [image[None]]

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

    return _convert(model, configure)


def tflite_interpreter(path, threads: int = 1):
    """A ready interpreter with a fixed batch-1 input; one thread by default, as our latency target is measured."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no TFLite model at {path}")
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"cannot load {path}: {exc}") from exc
    return interpreter


def tflite_predict(interpreter, images) -> np.ndarray:
    """Runs a batch through the interpreter one image at a time (its input is batch 1)."""
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    if list(inp["shape"]) != [1, 32, 32, 3]:
        interpreter.resize_tensor_input(inp["index"], [1, 32, 32, 3])
        interpreter.allocate_tensors()
    result = []
    for image in np.asarray(images, np.float32):
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        result.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(result)
