"""Same .tflite file, two interpreters: tf.lite.Interpreter (deprecated) against LiteRT (ai-edge-litert).

    .venv/bin/python docs/tools/compare_tflite_runtimes.py airnet_sep_cutout8 resnet20
    .venv/bin/python docs/tools/compare_tflite_runtimes.py $(ls saved_models/*/model_int8.tflite | cut -d/ -f2)

The check behind the switch (experiment 44) of `trainer.export` to LiteRT: for each model folder
named (under saved_models/) and each of its two exports (float32, int8) it prints the largest difference of
the two runtimes' outputs on 10 random images (0 = bit for bit) and their median batch-1 latency on
one thread, 3 x 500 timed calls each, interleaved so that drift on the machine hits both alike.
Writes docs/tools/tflite_runtimes_measured.json. Run it on an idle machine.
"""

from __future__ import annotations

import json
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _tf_lite_call(path):
    """trainer.latency's timed call, built on the old runtime: image -> probabilities, one thread."""
    from trainer.timing import interpreter_call
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter_call(interpreter)


def main(names):
    warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation warning, once per interpreter
    import tensorflow as tf

    from trainer.artifacts import cpu_name
    from trainer.export import TFLITE_RUNTIME
    from trainer.runtime import configure
    from trainer.timing import tflite_call, time_calls  # the project's own timed call and timer

    configure(threads=1)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (10, 1, 32, 32, 3)).astype(np.float32)
    results = {}
    for name in names:
        for filename in ("model.tflite", "model_int8.tflite"):
            path = REPO / "saved_models" / name / filename
            old, new = _tf_lite_call(path), tflite_call(path)
            diff = max(float(np.abs(old(x).astype(float) - new(x).astype(float)).max()) for x in images)
            old_ms, new_ms = [], []
            for _ in range(3):
                old_ms += time_calls(lambda: old(images[0]), runs=500, warmup=50)
                new_ms += time_calls(lambda: new(images[0]), runs=500, warmup=50)
            key = f"{name}/{filename}"
            results[key] = {"max_output_difference": diff, "tf.lite_median_ms": round(float(np.median(old_ms)), 4),
                            "litert_median_ms": round(float(np.median(new_ms)), 4)}
            print(key, results[key], flush=True)
    record = {"runtimes": ["tf.lite.Interpreter (TF " + tf.__version__ + ")", TFLITE_RUNTIME],
              "threads": 1, "batch_size": 1, "cpu": cpu_name(),
              "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "results": results}
    out = Path(__file__).with_name("tflite_runtimes_measured.json")
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
