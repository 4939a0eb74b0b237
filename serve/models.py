"""The models behind the API, loaded once: the shipped classifier (TFLite) and the text-to-image model.

Which models: `saved_models/DELIVERABLES.json` (roles "classifier" and "text_to_image"), read
through `trainer.deliverables`; nothing here names a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TFLITE_FILES = {"float32": "model.tflite", "int8": "model_int8.tflite"}
BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)  # batch sizes an interpreter is prepared for


@dataclass(frozen=True)
class ClassifierInfo:
    name: str
    path: Path          # the .tflite file
    class_names: tuple


def classifier_info(model_dir: Path, variant: str = "float32") -> ClassifierInfo:
    model_dir = Path(model_dir)
    if variant not in TFLITE_FILES:
        raise ValueError(f"unknown classifier variant {variant!r}; choose from {sorted(TFLITE_FILES)}")
    path = model_dir / TFLITE_FILES[variant]
    if not path.is_file():
        raise FileNotFoundError(f"no TFLite classifier at {path}: run `python -m trainer.evaluate {model_dir}`")
    try:
        names = json.loads((model_dir / "metrics.json").read_text())["class_names"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{model_dir}/metrics.json names no class_names ({exc})") from None
    return ClassifierInfo(model_dir.name, path, tuple(names))


class TFLiteBatchRunner:
    """Runs uint8 (32,32,3) pictures through a TFLite model in batches. Batches are padded up to
    the next size in BUCKETS, and one interpreter is kept per size, so an interpreter is resized
    once rather than at every batch. Not thread-safe: one worker thread owns it."""

    def __init__(self, path: Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path, self.threads = Path(path), threads
        self._make = lambda: Interpreter(model_path=str(self.path), num_threads=threads)
        self._interpreters: dict = {}
        self._get(1)  # fail at start-up, not at the first request

    def _get(self, size: int):
        if size not in self._interpreters:
            try:
                interpreter = self._make()
                inp = interpreter.get_input_details()[0]
                if list(inp["shape"]) != [size, 32, 32, 3]:
                    interpreter.resize_tensor_input(inp["index"], [size, 32, 32, 3])
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ValueError(f"cannot load {self.path}: {exc}") from exc
            self._interpreters[size] = (interpreter, inp["index"],
                                        interpreter.get_output_details()[0]["index"])
        return self._interpreters[size]

    def predict(self, images) -> np.ndarray:
        """float32 (N, classes) probabilities for uint8/float (N, 32, 32, 3) raw 0-255 pixels."""
        x = np.asarray(images, np.float32)
        n = len(x)
        out = []
        for start in range(0, n, BUCKETS[-1]):
            chunk = x[start:start + BUCKETS[-1]]
            size = next(b for b in BUCKETS if b >= len(chunk))
            if size > len(chunk):
                chunk = np.concatenate([chunk, np.zeros((size - len(chunk), 32, 32, 3), np.float32)])
            interpreter, i_in, i_out = self._get(size)
            interpreter.set_tensor(i_in, chunk)
            interpreter.invoke()
            out.append(interpreter.get_tensor(i_out)[:min(size, n - start)].copy())
        return np.concatenate(out)

    def __call__(self, images: list) -> list:
        return list(self.predict(np.stack(images)))


@dataclass(frozen=True)
class GenerateJob:
    prompt: str
    seed: int
    steps: int
    guidance: float | None


def generator_runner(model):
    """A batcher runner calling `model.generate_batch`, grouping jobs that share steps and guidance."""

    def run(jobs: list) -> list:
        out = [None] * len(jobs)
        groups: dict = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.steps, job.guidance), []).append(i)
        for (steps, guidance), idx in groups.items():
            images = model.generate_batch([jobs[i].prompt for i in idx], [jobs[i].seed for i in idx],
                                          steps=steps, guidance_scale=guidance)
            for i, image in zip(idx, images):
                out[i] = np.asarray(image)
        return out

    return run


def load_generator(model_dir=None):
    from trainer.diffusion import load_text_to_image

    return load_text_to_image(model_dir)


def load_ood_threshold():
    """The out-of-distribution threshold, or None when the project has none calibrated."""
    try:
        from trainer import ood
        return ood.load_threshold()
    except (ImportError, FileNotFoundError, ValueError):
        return None
