"""Single-thread CPU latency, ms per image at batch 1, for the Keras model and its TFLite exports
(float, and int8 when trainer.quantize wrote one).

    python -m trainer.latency saved_models/<name> --runs 200 --json

TF fixes its thread pools when the first op runs, so a one-thread measurement needs a process
of its own: `measure_in_subprocess` starts this module as a child. That also keeps the dashboard
and the evaluation (which use all cores) from skewing the numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from trainer import cli


def _stats(samples_ms: list[float]) -> dict:
    import numpy as np

    arr = np.asarray(samples_ms)
    return {"median": round(float(np.median(arr)), 4), "p90": round(float(np.percentile(arr, 90)), 4),
            "mean": round(float(arr.mean()), 4), "runs": len(samples_ms),
            "samples_ms": [round(float(s), 4) for s in arr]}


def _time_calls(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def _tflite_call(path: Path):
    """A one-thread interpreter as a function image -> probabilities, with nothing else per call."""
    from trainer.export import tflite_interpreter

    interpreter = tflite_interpreter(path, threads=1)
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def call(image):
        interpreter.set_tensor(inp, image)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return call


def measure(model_dir: Path, runs: int = 200, warmup: int = 20, flip_tta: bool = True) -> dict:
    """Times batch-1 inference in this process; call configure_threads(1) before any TF op."""
    import numpy as np
    import tensorflow as tf

    from trainer.artifacts import cpu_name
    from trainer.export import FLOAT_FILENAME, INT8_FILENAME, TFLITE_RUNTIME
    from trainer.models import load_classifier
    from trainer.tta import multicrop_probs

    model_dir = Path(model_dir)
    model = load_classifier(model_dir)
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)

    # A traced graph, not model.predict(): predict's per-call overhead dwarfs a 2 ms model.
    keras_fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    keras_tta = tf.function(lambda x: tf.reduce_mean(model(tf.concat([x, x[:, :, ::-1]], 0), training=False), 0))
    x = tf.constant(image)
    results = {"keras": _stats(_time_calls(lambda: keras_fn(x).numpy(), runs, warmup))}
    if flip_tta:
        results["keras_flip_tta"] = _stats(_time_calls(lambda: keras_tta(x).numpy(), runs, warmup))

    tflite = _tflite_call(model_dir / FLOAT_FILENAME)
    flipped = np.ascontiguousarray(image[:, :, ::-1])
    results["tflite"] = _stats(_time_calls(lambda: tflite(image), runs, warmup))
    if flip_tta:
        results["tflite_flip_tta"] = _stats(_time_calls(
            lambda: (tflite(image) + tflite(flipped)) / 2, runs, warmup))
        # the views are built inside the timed call: a deployment pays for the shifts too
        results["tflite_multicrop_tta"] = _stats(_time_calls(
            lambda: multicrop_probs(tflite, image), runs, warmup))
    if (model_dir / INT8_FILENAME).is_file():  # optional: only models run through trainer.quantize have one
        int8 = _tflite_call(model_dir / INT8_FILENAME)
        results["tflite_int8"] = _stats(_time_calls(lambda: int8(image), runs, warmup))
        if flip_tta:
            results["tflite_int8_flip_tta"] = _stats(_time_calls(
                lambda: (int8(image) + int8(flipped)) / 2, runs, warmup))
            results["tflite_int8_multicrop_tta"] = _stats(_time_calls(
                lambda: multicrop_probs(int8, image), runs, warmup))
    results.update({"threads": 1, "batch_size": 1, "warmup": warmup, "cpu": cpu_name(),
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
                          cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"latency measurement failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--no-tta", action="store_true", help="skip the test-time-augmentation timings (flip, 6-view)")
    p.add_argument("--json", action="store_true", help="print one JSON line (for other programs)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer.training import configure_threads

    configure_threads(1)  # before any TF op: the brief's one-thread measurement
    result = measure(args.model_dir, args.runs, args.warmup, flip_tta=not args.no_tta)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if isinstance(value, dict):
                print(f"{key:16s} median {value['median']:.3f} ms   p90 {value['p90']:.3f} ms   ({value['runs']} runs)")
        print(f"CPU: {result['cpu']}, 1 thread, batch 1")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
