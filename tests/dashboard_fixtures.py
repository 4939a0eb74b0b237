"""Tiny artifacts that follow docs/ARTIFACTS.md, for the dashboard tests.

`make_models_root(root)` writes:
  DELIVERABLES.json  the manifest: tiny is the shipped classifier, broken the "most accurate"
  tiny/        a real (tiny) Keras classifier: model.keras, model.tflite, config.json,
               training.json, metrics.json, report.md, test_predictions.npz
  broken/      config.json with an arch, a garbage model.keras and an unreadable metrics.json
  text2image/  a real untrained tiny text-to-image model (when trainer.diffusion exists), which
               the classifier pages must skip
`make_tuning_root(root)` writes tuning/summary.csv and summary.json with a few trials (trial "00"
the hand-designed net; summary.json a dict with the proxy budget, best trial and best recipe, as
trainer.tuners.write_summary writes it), proxy_validation.json (5k_2ep finished with rho 0.83,
10k_3ep unfinished, without rho), and tuning/experiments/ (figures only, no weights): seed_a and seed_b, one recipe at two seeds
(0.80 and 0.806: a 0.60-point spread; seed_b's metrics.json predates the "test_images" field), and
smoke, evaluated on 20 test images.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]


def _test_labels(n: int = 10000) -> np.ndarray:
    """The real test labels when the offline archive is present (so the gallery's images match),
    else a balanced random labelling."""
    try:
        from trainer.data import load_cifar10, resolve_archive

        if resolve_archive() is not None:
            return load_cifar10(splits=("test",)).y_test
    except Exception:
        pass
    return np.random.default_rng(0).permutation(np.arange(n) % 10).astype(np.int64)


def build_tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _tflite_bytes(model) -> bytes:
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec((1, 32, 32, 3), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    return converter.convert()


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def make_models_root(root: Path) -> Path:
    root = Path(root)
    tiny = root / "tiny"
    tiny.mkdir(parents=True, exist_ok=True)
    model = build_tiny_model()
    model.save(tiny / "model.keras")
    (tiny / "model.tflite").write_bytes(_tflite_bytes(model))
    params = int(model.count_params())

    labels = _test_labels()
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(labels.size, 10)) + 2.5 * np.eye(10)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.savez_compressed(tiny / "test_predictions.npz", probs=probs.astype(np.float16), labels=labels)
    pred = probs.argmax(1)
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (labels, pred), 1)
    per_class = []
    for k, name in enumerate(CLASS_NAMES):
        tp = cm[k, k]
        prec = tp / max(cm[:, k].sum(), 1)
        rec = tp / max(cm[k].sum(), 1)
        per_class.append({"class": name, "accuracy": rec, "precision": prec, "recall": rec,
                          "f1": 2 * prec * rec / max(prec + rec, 1e-9), "support": int(cm[k].sum())})
    write_json(tiny / "config.json", {
        "name": "tiny", "arch": "tiny_cnn", "hyperparameters": {"width": 8}, "params": params,
        "macs": 55_000, "seed": 0, "epochs": 1, "batch_size": 32, "data_source": "fixture"})
    write_json(tiny / "training.json", {
        "training_time_s": 12.5, "epochs_run": 1,
        "history": {"loss": [2.3], "val_accuracy": [0.1]}, "machine": "test"})
    write_json(tiny / "metrics.json", {
        "name": "tiny", "dataset": "fixture", "class_names": CLASS_NAMES,
        "accuracy": float((pred == labels).mean()), "accuracy_flip_tta": None,
        "per_class": per_class, "confusion_matrix": cm.tolist(), "params": params,
        "macs": 55_000,
        "file_size_bytes": {"keras": (tiny / "model.keras").stat().st_size,
                            "tflite": (tiny / "model.tflite").stat().st_size},
        "latency_ms": {"keras": {"median": 1.5, "p90": 1.9, "runs": 50},
                       "tflite": {"median": 0.2, "p90": 0.3, "runs": 50}},
        "threads": 1, "cpu": "fixture CPU", "training_time_s": 12.5, "test_images": int(labels.size),
        "evaluated_at": "2026-11-23T12:00:00+00:00"})
    (tiny / "report.md").write_text("# tiny\n\nA fixture model.\n", encoding="utf-8")

    broken = root / "broken"
    broken.mkdir(exist_ok=True)
    write_json(broken / "config.json", {"name": "broken", "arch": "resnet_mini", "params": 2_000_000})
    (broken / "model.keras").write_bytes(b"this is not a zip file")
    (broken / "metrics.json").write_text("{ not json", encoding="utf-8")

    write_json(root / "DELIVERABLES.json", {
        "classifier": {"name": "tiny", "role": "The fixture's shipped classifier."},
        "most_accurate": {"name": "broken", "role": "A damaged model folder."},
        "peer": {"name": "no_such_model", "role": "Named in the manifest but not saved."},
        "text_to_image": {"name": "text2image", "role": "The fixture's text-to-image model."}})

    t2i = root / "text2image"
    if not make_text2image(t2i):  # a stand-in folder: classifier pages must skip it either way
        t2i.mkdir(exist_ok=True)
        write_json(t2i / "config.json", {"image_size": 32, "text_encoder": "tiny"})
    write_json(t2i / "metrics.json", {  # the keys trainer.diffusion.evaluate writes (some of them)
        "prompt_accuracy": {"accuracy": 0.42, "chance": 0.1},
        "frechet_distance": {"generated_vs_test": 55.0},
        "seconds_per_image": {"steps": 50, "median_s": 0.8},
        "params": {"total": 1_234_567}, "training_time_s": 3600.0,
        "judge": {"name": "fixture_judge", "accuracy": 0.929}})
    return root


def make_tuning_root(root: Path) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    rows = []
    for i in range(8):
        rows.append({
            "trial_id": f"{i:02d}", "status": "COMPLETED" if i != 5 else "FAILED",
            "val_accuracy": "" if i == 5 else round(float(rng.uniform(0.6, 0.9)), 4),
            "params": int(rng.integers(100_000, 1_500_000)),
            "macs": int(rng.integers(10_000_000, 90_000_000)),
            "seconds": round(float(rng.uniform(60, 600)), 1),
            "hp_width": int(rng.choice([16, 32, 64])),
            "hp_learning_rate": float(rng.choice([1e-3, 3e-3, 1e-2])),
            "hp_block": str(rng.choice(["sep", "res", "mbconv"])),
        })
    with open(root / "summary.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    trials = [{**r, "val_accuracy": r["val_accuracy"] if r["val_accuracy"] != "" else None} for r in rows]
    best = max((r for r in trials if r["val_accuracy"] is not None), key=lambda r: r["val_accuracy"])
    write_json(root / "summary.json", {
        "objective": "val_accuracy on a hold-out carved from the training split",
        "proxy_budget": PROXY_BUDGET, "trials": trials, "best_trial_id": best["trial_id"],
        "best_recipe": {"arch": "airnet", "cutout": 8,
                        "hyperparameters": {k[3:]: v for k, v in best.items() if k.startswith("hp_")}}})
    write_json(root / "proxy_validation.json", PROXY_VALIDATION)
    make_experiments(root / "experiments")
    return root


PROXY_BUDGET = {"name": "5k_2ep", "tuner": "bayesian", "epochs": 2, "train_images": 5000,
                "val_images": 5000, "batch_size": 256, "seed": 0}


def _proxy_row(recipe: str, arch: str, proxy: float, full: float) -> dict:
    return {"recipe": recipe, "arch": arch, "proxy_val_accuracy": proxy, "full_test_accuracy": full,
            "full_source": f"saved_models/{recipe}/metrics.json", "seconds": 40.0, "params": 500_000}


PROXY_VALIDATION = {"proxies": {
    "5k_2ep": {"budget": {"train_images": 5000, "epochs": 2}, "seed": 0,
               "rows": [_proxy_row("resnet20", "resnet20", 0.61, 0.9098),
                        _proxy_row("sepnet_best", "sepnet", 0.55, 0.8418),
                        _proxy_row("airnet_sep", "airnet", 0.63, 0.9078),
                        _proxy_row("airnet_sep_cutout8", "airnet", 0.66, 0.9196)],
               "rho": 0.83, "rho_search_family": 1.0, "seconds": 420.0, "meets_target": True},
    "10k_3ep": {"budget": {"train_images": 10000, "epochs": 3}, "seed": 0,
                "rows": [_proxy_row("resnet20", "resnet20", 0.70, 0.9098),
                         _proxy_row("airnet_sep", "airnet", 0.72, 0.9078)]},
}}


def make_experiments(root: Path) -> None:
    labels = _test_labels()
    recipe = {"arch": "tiny_cnn", "hyperparameters": {"width": 16}, "epochs": 2, "batch_size": 32}
    for name, seed, right_per_class, with_count in (("seed_a", 0, 800, True), ("seed_b", 1, 806, False),
                                                    ("smoke", 0, None, True)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "config.json", {"name": name, **recipe, "seed": seed,
                                            **({"teacher": None} if name == "seed_b" else {})})
        write_json(folder / "training.json", {"training_time_s": 600.0, "epochs_run": 1})
        if right_per_class is None:  # a smoke run: 20 images
            cm = np.eye(10, dtype=int) * 2
            metrics = {"name": name, "accuracy": 1.0, "confusion_matrix": cm.tolist(), "test_images": 20}
        else:
            cm = np.zeros((10, 10), int)
            for k in range(10):
                cm[k, k], cm[k, (k + 1) % 10] = right_per_class, 1000 - right_per_class
            metrics = {"name": name, "accuracy": right_per_class / 1000, "confusion_matrix": cm.tolist(),
                       "params": 700, "macs": 55_000,
                       "latency_ms": {"keras": {"median": 1.4}, "tflite": {"median": 0.2}}}
            if with_count:
                metrics["test_images"] = int(labels.size)
        write_json(folder / "metrics.json", metrics)
        if name == "seed_a":  # predictions-only: right on 80% of each class, else the next class
            pred = labels.copy()
            for k in range(10):
                idx = np.flatnonzero(labels == k)
                pred[idx[:len(idx) // 5]] = (k + 1) % 10
            np.savez_compressed(folder / "test_predictions.npz", probs=np.eye(10, dtype=np.float16)[pred],
                                labels=labels)


def env_for(models_root: Path, tuning_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SAVED_MODELS_DIR"] = str(models_root)
    env["TUNING_DIR"] = str(tuning_root)
    return env


def make_text2image(model_dir: Path) -> bool:
    """A real, untrained, tiny text-to-image model (trainer.diffusion's tiny_config), so the
    Prompt page runs end to end. Returns False (leaving model_dir alone) when trainer.diffusion
    is not available in this checkout."""
    try:
        from trainer.diffusion.config import tiny_config
        from trainer.diffusion.model import TextToImage
        from trainer.diffusion.tokenizer import WordTokenizer
    except ImportError:
        return False
    config = tiny_config()
    texts = [f"a photo of a {colour} {name}" for name in CLASS_NAMES
             for colour in ("red", "blue", "green", "white")]
    tokenizer = WordTokenizer.fit(texts, max_length=config.max_length)
    TextToImage(config, tokenizer).save(model_dir)
    return True


def shared_artifacts(tmp_path_factory) -> tuple[Path, Path]:
    """(models_root, tuning_root) built once per pytest run and shared by the dashboard tests."""
    root = Path(tmp_path_factory.getbasetemp()) / "dashboard-artifacts"
    done = root / ".complete"
    if not done.exists():
        make_models_root(root / "saved_models")
        make_tuning_root(root / "tuning")
        done.touch()
    return root / "saved_models", root / "tuning"
