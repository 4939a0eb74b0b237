"""Stand-in latency benchmark, used only while `trainer.latency` is not available.

    python -m dashboard.latency_worker saved_models/<name> --runs 200 --warmup 20 --json

Measures milliseconds per image (batch of one) on ONE CPU thread for the Keras model and its
TFLite export, in this fresh process, and prints the same JSON as `trainer.latency`:
{"keras": {"median", "p90", "samples_ms"}, "tflite": {...}, "cpu", "threads": 1}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One thread everywhere, set before TensorFlow is imported.
for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _summary(samples: list[float]) -> dict:
    import numpy as np

    arr = np.asarray(samples, dtype=np.float64)
    return {"median": float(np.median(arr)), "p90": float(np.percentile(arr, 90)),
            "samples_ms": [round(float(s), 4) for s in arr]}


def _time(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def measure(model_dir: str, runs: int, warmup: int) -> dict:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from dashboard.modelio import cpu_model, load_model_file

    model_dir = Path(model_dir)
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    result: dict = {"cpu": cpu_model(), "threads": 1}

    model = load_model_file(str(model_dir / "model.keras"))
    infer = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    xt = tf.constant(x)
    result["keras"] = _summary(_time(lambda: infer(xt).numpy(), runs, warmup))

    tfl = model_dir / "model.tflite"
    if tfl.is_file():
        interp = tf.lite.Interpreter(model_path=str(tfl), num_threads=1)
        inp = interp.get_input_details()[0]
        if list(inp["shape"]) != [1, 32, 32, 3]:
            interp.resize_tensor_input(inp["index"], [1, 32, 32, 3])
        interp.allocate_tensors()
        out_index = interp.get_output_details()[0]["index"]

        def run_tflite():
            interp.set_tensor(inp["index"], x)
            interp.invoke()
            return interp.get_tensor(out_index)

        result["tflite"] = _summary(_time(run_tflite, runs, warmup))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        res = measure(args.model_dir, max(1, args.runs), max(0, args.warmup))
    except Exception as exc:
        print(json.dumps({"error": f"{exc.__class__.__name__}: {exc}"}))
        return 1
    print(json.dumps(res) if args.json else
          "\n".join(f"{k}: median {v['median']:.2f} ms, p90 {v['p90']:.2f} ms"
                    for k, v in res.items() if isinstance(v, dict)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
