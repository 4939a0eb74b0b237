"""Single-thread CPU latency, ms per image at batch 1, for the Keras model and its TFLite exports
(float, and int8 when trainer.quantize wrote one).

TF fixes its thread pools when the first op runs, so a one-thread measurement needs a process of
its own: `measure_in_subprocess` starts `python -m trainer.latency` as a child. That also keeps the
dashboard and the evaluation (which use all cores) from skewing the numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from trainer.constants import REPO_ROOT


def stats(samples_ms: list[float]) -> dict:
    import numpy as np

    arr = np.asarray(samples_ms)
    return {"median": round(float(np.median(arr)), 4), "p90": round(float(np.percentile(arr, 90)), 4),
            "mean": round(float(arr.mean()), 4), "runs": len(samples_ms),
            "samples_ms": [round(float(s), 4) for s in arr]}


def time_calls(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def tflite_call(path: Path):
    """A one-thread interpreter as a function image -> probabilities, with nothing else per call."""
    from trainer.export import tflite_interpreter

    return interpreter_call(tflite_interpreter(path, threads=1))


def interpreter_call(interpreter):
    """An allocated TFLite interpreter as a function image -> probabilities."""
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def call(image):
        interpreter.set_tensor(inp, image)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return call


def measure(model_dir: Path, runs: int = 200, warmup: int = 20, flip_tta: bool = True) -> dict:
    """Times batch-1 inference in this process; call runtime.configure(1) before any TF op."""
    import numpy as np
    import tensorflow as tf

    from trainer.artifacts import cpu_name
    from trainer.constants import FLOAT_FILENAME, INT8_FILENAME
    from trainer.export import TFLITE_RUNTIME
    from trainer.models import load_classifier
    from trainer.tta import multicrop_probs

    model_dir = Path(model_dir)
    model = load_classifier(model_dir)
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)

    # A traced graph, not model.predict(): predict's per-call overhead dwarfs a 2 ms model.
    keras_fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    keras_tta = tf.function(lambda x: tf.reduce_mean(model(tf.concat([x, x[:, :, ::-1]], 0), training=False), 0))
    x = tf.constant(image)
    results = {"keras": stats(time_calls(lambda: keras_fn(x).numpy(), runs, warmup))}
    if flip_tta:
        results["keras_flip_tta"] = stats(time_calls(lambda: keras_tta(x).numpy(), runs, warmup))

    tflite = tflite_call(model_dir / FLOAT_FILENAME)
    flipped = np.ascontiguousarray(image[:, :, ::-1])
    results["tflite"] = stats(time_calls(lambda: tflite(image), runs, warmup))
    if flip_tta:
        results["tflite_flip_tta"] = stats(time_calls(
            lambda: (tflite(image) + tflite(flipped)) / 2, runs, warmup))
        # the views are built inside the timed call: a deployment pays for the shifts too
        results["tflite_multicrop_tta"] = stats(time_calls(
            lambda: multicrop_probs(tflite, image), runs, warmup))
    if (model_dir / INT8_FILENAME).is_file():  # optional: only models run through trainer.quantize have one
        int8 = tflite_call(model_dir / INT8_FILENAME)
        results["tflite_int8"] = stats(time_calls(lambda: int8(image), runs, warmup))
        if flip_tta:
            results["tflite_int8_flip_tta"] = stats(time_calls(
                lambda: (int8(image) + int8(flipped)) / 2, runs, warmup))
            results["tflite_int8_multicrop_tta"] = stats(time_calls(
                lambda: multicrop_probs(int8, image), runs, warmup))
    # Read back from TensorFlow, not echoed: what the timed process really ran with.
    results.update({"threads": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(), "batch_size": 1, "warmup": warmup, "cpu": cpu_name(),
                    "tflite_runtime": TFLITE_RUNTIME})
    return results


def measure_in_subprocess(model_dir, runs: int = 200, warmup: int = 20, flip_tta: bool = True,
                          timeout: float = 600) -> dict:
    """Runs `measure` in a fresh one-thread process and returns its result."""
    cmd = [sys.executable, "-m", "trainer.latency", str(model_dir), "--runs", str(runs),
           "--warmup", str(warmup), "--json"]
    if not flip_tta:
        cmd.append("--no-tta")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"latency measurement failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
