"""Every metric of a saved classifier on the CIFAR-10 test split, and the files that record them.

`evaluate` computes; `write_results` writes metrics.json, report.md, confusion_matrix.png and
test_predictions.npz into a folder; `render_report` turns metrics into the report's markdown.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np

from trainer.constants import (CONFIG_FILENAME, CONFUSION_FILENAME, FLOAT_FILENAME, INT8_FILENAME, KERAS_FILENAME,
                               MAX_LATENCY_MS, MAX_PARAMS, METRICS_FILENAME, PREDICTIONS_FILENAME, REPORT_FILENAME,
                               TRAINING_FILENAME, within_latency_limit, within_param_limit)

TFLITE_CHECK_IMAGES = 500


def throughput(model, batch_size: int = 256, repeats: int = 5) -> float:
    """Images per second at a large batch with all cores, through a traced graph."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    x = tf.random.uniform((batch_size, 32, 32, 3), 0, 255)
    fn(x).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x).numpy()
    return batch_size * repeats / (time.perf_counter() - start)


def save_confusion_png(cm, class_names, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _int8_rows(m: dict) -> list[str]:
    if "int8" not in m:
        return []
    q, lat, tta = m["int8"], m["latency_ms"]["tflite_int8"], m["latency_ms"]["tflite_int8_flip_tta"]
    return [
        f"| int8 TFLite: top-1 accuracy (all {q['images']:,} images) | {q['accuracy'] * 100:.2f}% "
        f"({(q['accuracy'] - m['accuracy']) * 100:+.2f} points), agrees with Keras on {q['agreement_with_keras'] * 100:.1f}% |",
        f"| int8 TFLite: top-1 accuracy, flip TTA | {q['accuracy_flip_tta'] * 100:.2f}% |",
        f"| int8 TFLite: top-1 accuracy, 6-view TTA | {_pct(q['accuracy_multicrop_tta'])} |",
        f"| int8 TFLite: file size | {m['file_size_bytes']['tflite_int8'] / 1e6:.2f} MB |",
        f"| latency int8 TFLite, 1 thread | median {lat['median']:.3f} ms, p90 {lat['p90']:.3f} ms |",
        f"| latency int8 TFLite + flip TTA, 1 thread | median {tta['median']:.3f} ms, p90 {tta['p90']:.3f} ms |",
        f"| latency int8 TFLite + 6-view TTA, 1 thread | {_timing(m['latency_ms']['tflite_int8_multicrop_tta'])} |",
    ]


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _timing(t: dict) -> str:
    return f"median {t['median']:.3f} ms, p90 {t['p90']:.3f} ms"


def render_report(m: dict) -> str:
    lat = m["latency_ms"]
    training_time = "n/a" if m["training_time_s"] is None else f"{m['training_time_s'] / 60:.1f} min"
    lines = [
        f"# {m['name']}: evaluation report",
        "",
        f"Data: {m['dataset']}",
        f"Evaluated {m['evaluated_at']} on {m['cpu']}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| top-1 accuracy | {m['accuracy'] * 100:.2f}% |",
        f"| top-1 accuracy, flip TTA | {m['accuracy_flip_tta'] * 100:.2f}% |",
        f"| top-1 accuracy, 6-view TTA (flip pair + 1-pixel shifts) | {_pct(m['accuracy_multicrop_tta'])} |",
        f"| macro precision / recall / F1 | {m['macro_avg']['precision']:.4f} / {m['macro_avg']['recall']:.4f} / {m['macro_avg']['f1']:.4f} |",
        f"| parameters (`count_params()`) | {m['params']:,} |",
        f"| MACs per image | {m['macs'] / 1e6:.2f} M |",
        f"| file size `.keras` / `.tflite` | {m['file_size_bytes']['keras'] / 1e6:.2f} MB / {m['file_size_bytes']['tflite'] / 1e6:.2f} MB |",
        f"| latency Keras (tf.function), 1 thread | median {lat['keras']['median']:.3f} ms, p90 {lat['keras']['p90']:.3f} ms |",
        f"| latency TFLite, 1 thread | median {lat['tflite']['median']:.3f} ms, p90 {lat['tflite']['p90']:.3f} ms |",
        f"| latency TFLite + flip TTA, 1 thread | median {lat['tflite_flip_tta']['median']:.3f} ms, p90 {lat['tflite_flip_tta']['p90']:.3f} ms |",
        f"| latency TFLite + 6-view TTA, 1 thread | {_timing(lat['tflite_multicrop_tta'])} |",
        f"| throughput, batch 256, all cores | {m['throughput_img_s']:.0f} img/s |",
        f"| TFLite agrees with Keras (top-1, first {m['tflite_check']['images']} images) | {m['tflite_check']['agreement'] * 100:.1f}% |",
        *_int8_rows(m),
        f"| training time | {training_time} |",
        f"| our targets (< {MAX_PARAMS / 1e6:.0f}M params, <= {MAX_LATENCY_MS:.0f} ms) | {'met' if m['within_brief_limits'] else 'NOT met'} |",
        "",
        "## Per class",
        "",
        "| class | accuracy | precision | recall | F1 | support |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {c['class']} | {c['accuracy'] * 100:.1f}% | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
              for c in m["per_class"]]
    lines += ["", "## Most confused pairs (true -> predicted)", ""]
    lines += [f"- {p['true']} -> {p['predicted']}: {p['count']}" for p in m["most_confused"]]
    lines += ["", "![confusion matrix](confusion_matrix.png)", "",
              f"Latency: batch 1, {lat['keras']['runs']} timed calls after {lat['warmup']} warm-up calls, "
              "intra/inter-op threads = 1 set before any TF op, in a separate process "
              f"(`python -m trainer.latency`); TFLite through {m['tflite_runtime']}.", ""]
    return "\n".join(lines)


def evaluate(model_dir: Path, archive=None, limit: int | None = None, runs: int = 200, warmup: int = 20,
             log=print) -> dict:
    """The metrics of the model in model_dir on the first `limit` test images (all when None), plus the
    arrays write_results needs under "_probs", "_probs_flip" and "_labels" (not part of metrics.json)."""
    from trainer.artifacts import cpu_name, read_json
    from trainer.data import CLASS_NAMES, load_cifar10
    from trainer.export import tflite_interpreter, tflite_predict
    from trainer.macs import count_macs
    from trainer.metrics import classification_report, most_confused_pairs
    from trainer.models import load_classifier
    from trainer.timing import measure_in_subprocess
    from trainer.tta import mirror, multicrop_probs

    model_dir = Path(model_dir)
    model = load_classifier(model_dir)
    tflite_path = model_dir / FLOAT_FILENAME
    interpreter = tflite_interpreter(tflite_path)  # fail early on a missing/corrupt export
    int8_path = model_dir / INT8_FILENAME
    int8_interpreter = tflite_interpreter(int8_path) if int8_path.is_file() else None
    config = read_json(model_dir / CONFIG_FILENAME) if (model_dir / CONFIG_FILENAME).is_file() else {}
    training = read_json(model_dir / TRAINING_FILENAME) if (model_dir / TRAINING_FILENAME).is_file() else {}
    name = config.get("name", model_dir.name)

    data = load_cifar10(archive, splits=("test",))
    x, y = data.x_test, data.y_test
    if limit:
        x, y = x[: limit], y[: limit]
    log(f"evaluating {name} on {len(y):,} test images from {data.source}")

    xf = x.astype(np.float32)
    keras_predict = lambda images: model.predict(images, batch_size=500, verbose=0)  # noqa: E731
    probs = keras_predict(xf)
    probs_flip = keras_predict(mirror(xf))
    probs_tta = (probs + probs_flip) / 2
    report = classification_report(y, probs.argmax(1))
    tta_acc = float((probs_tta.argmax(1) == y).mean())
    multicrop_acc = float((multicrop_probs(keras_predict, xf, flip=probs_tta).argmax(1) == y).mean())

    n_check = min(TFLITE_CHECK_IMAGES, len(y))
    tflite_top1 = tflite_predict(interpreter, xf[:n_check]).argmax(1)
    agreement = float((tflite_top1 == probs[:n_check].argmax(1)).mean())
    int8 = None
    if int8_interpreter is not None:  # every test image: quantisation error shows in accuracy, not a sample
        log(f"scoring {INT8_FILENAME} on {len(y):,} images ...")
        int8_predict = lambda images: tflite_predict(int8_interpreter, images)  # noqa: E731
        int8_probs = int8_predict(xf)
        int8_tta = (int8_probs + int8_predict(mirror(xf))) / 2
        int8_multicrop = multicrop_probs(int8_predict, xf, flip=int8_tta)
        int8 = {"accuracy": round(float((int8_probs.argmax(1) == y).mean()), 5),
                "accuracy_flip_tta": round(float((int8_tta.argmax(1) == y).mean()), 5),
                "accuracy_multicrop_tta": round(float((int8_multicrop.argmax(1) == y).mean()), 5),
                "agreement_with_keras": round(float((int8_probs.argmax(1) == probs.argmax(1)).mean()), 4),
                "images": len(y)}

    log("timing: one thread, batch 1, in a child process ...")
    latency = measure_in_subprocess(model_dir, runs=runs, warmup=warmup)
    for timing in latency.values():  # raw samples stay out of metrics.json; the dashboard re-measures
        if isinstance(timing, dict):
            timing.pop("samples_ms", None)
    params = model.count_params()
    metrics = {
        "name": name,
        "dataset": f"CIFAR-10 test split, {len(y):,} images; source: {data.source}",
        "test_images": len(y),
        "class_names": list(CLASS_NAMES),
        "accuracy": report["accuracy"],
        "accuracy_flip_tta": round(tta_acc, 5),
        "accuracy_multicrop_tta": round(multicrop_acc, 5),
        "per_class": report["per_class"],
        "macro_avg": report["macro_avg"],
        "confusion_matrix": report["confusion_matrix"],
        "most_confused": most_confused_pairs(report["confusion_matrix"]),
        "params": params,
        "macs": count_macs(model),
        "file_size_bytes": {"keras": (model_dir / KERAS_FILENAME).stat().st_size, "tflite": tflite_path.stat().st_size,
                            **({"tflite_int8": int8_path.stat().st_size} if int8 else {})},
        "latency_ms": {k: v for k, v in latency.items() if isinstance(v, dict)},
        "threads": latency["threads"],  # as TensorFlow reported it in the timing process
        "throughput_img_s": round(throughput(model), 1),
        "tflite_check": {"images": n_check, "agreement": round(agreement, 4)},
        **({"int8": int8} if int8 else {}),
        "cpu": cpu_name(),
        "tflite_runtime": latency["tflite_runtime"],
        "training_time_s": training.get("training_time_s"),
        "evaluated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    metrics["within_brief_limits"] = bool(
        within_param_limit(params) and within_latency_limit(metrics["latency_ms"]["keras"]["median"]))
    metrics["latency_ms"]["warmup"] = warmup
    return {**metrics, "_probs": probs, "_probs_flip": probs_flip, "_labels": y}


def write_results(out_dir: Path, result: dict) -> None:
    """The four result files of `evaluate`'s result into out_dir."""
    from trainer.artifacts import atomic_write_bytes, write_json
    from trainer.data import CLASS_NAMES
    from trainer.predictions import predictions_bytes

    metrics = {k: v for k, v in result.items() if not k.startswith("_")}
    save_confusion_png(metrics["confusion_matrix"], CLASS_NAMES, out_dir / CONFUSION_FILENAME,
                       f"{metrics['name']}: {metrics['accuracy'] * 100:.2f}% top-1 on {metrics['test_images']:,} images")
    atomic_write_bytes(out_dir / PREDICTIONS_FILENAME,
                       predictions_bytes(result["_probs"], result["_probs_flip"], result["_labels"]))
    write_json(out_dir / METRICS_FILENAME, metrics)
    atomic_write_bytes(out_dir / REPORT_FILENAME, render_report(metrics).encode())
