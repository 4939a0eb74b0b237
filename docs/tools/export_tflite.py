"""Exports the small text-to-image model to TFLite and checks it end to end (for docs/DEPLOYMENT.md).

    .venv/bin/python docs/tools/export_tflite.py                     # -> /tmp/text2image_tflite/
    .venv/bin/python docs/tools/export_tflite.py --outdir build/tflite --threads 1

What an Android / IoT app would ship: three TFLite files (text encoder, UNet, decoder; the image
encoder is only needed for training) plus vocab.json and the 20-line DDIM loop. For each part it
writes a float32 file, a float16-weights file and a dynamic-range int8 file, then generates
images with the TFLite files (the package's own `ddim_sample`, with the TFLite UNet as the noise
predictor) and compares them with `model.generate` for the same prompt and seed.

The .tflite files go to --outdir (default /tmp, outside the repository); the sizes, the
agreement and the TFLite CPU latency go to docs/tools/tflite_measured.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trainer.deliverables import deliverable_dir  # noqa: E402

PARTS = ("text_encoder", "unet", "decoder")
VARIANTS = ("float32", "float16", "int8_dynamic")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(deliverable_dir("text_to_image")))
    p.add_argument("--outdir", default="/tmp/text2image_tflite")
    p.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--prompts", nargs="+", default=["a photo of a red truck", "a photo of a blue ship"])
    p.add_argument("--record", default=str(ROOT / "docs" / "tools" / "tflite_measured.json"))
    return p.parse_args(argv)


def convert(keras_model, variant: str) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved_model"
        keras_model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if variant != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


class TFLitePart:
    """One interpreter; inputs matched by name fragments so the call order is the Keras one."""

    def __init__(self, path, threads, names):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.inputs = self.it.get_input_details()
        self.order = [] if names else list(self.inputs)
        for name in names or ():
            match = [d for d in self.inputs if name in d["name"]]
            if len(match) != 1:
                raise RuntimeError(f"{path}: cannot find input {name!r} in {[d['name'] for d in self.inputs]}")
            self.order.append(match[0])
        self.out = self.it.get_output_details()[0]
        self.batch = None

    def __call__(self, *arrays):
        if arrays[0].shape[0] != self.batch:
            for d, a in zip(self.order, arrays):
                self.it.resize_tensor_input(d["index"], list(a.shape))
            self.it.allocate_tensors()
            self.out = self.it.get_output_details()[0]
            self.batch = arrays[0].shape[0]
        for d, a in zip(self.order, arrays):
            self.it.set_tensor(d["index"], np.asarray(a, d["dtype"]))
        self.it.invoke()
        return self.it.get_tensor(self.out["index"]).copy()


INPUT_NAMES = {"text_encoder": ["tokens", "positions"], "unet": ["latent", "timestep_embedding", "context"],
               "decoder": None}  # the Keras Input names in trainer/diffusion/*.py, in call order


def main(argv=None):
    args = parse_args(argv)
    from trainer.runtime import configure as set_threads
    set_threads(1)
    from trainer.diffusion import load_text_to_image
    from trainer.diffusion.schedule import ddim_sample

    model = load_text_to_image(args.model)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    record = {"model": args.model, "outdir": str(outdir), "files_bytes": {}, "convert_seconds": {}}
    for part in PARTS:
        for variant in VARIANTS:
            t0 = time.perf_counter()
            blob = convert(getattr(model, part), variant)
            path = outdir / f"{part}.{variant}.tflite"
            path.write_bytes(blob)
            record["files_bytes"][path.name] = len(blob)
            record["convert_seconds"][path.name] = round(time.perf_counter() - t0, 1)
            print(f"{path.name}: {len(blob):,} bytes", flush=True)
    for variant in VARIANTS:
        record["files_bytes"][f"total_{variant}"] = sum(record["files_bytes"][f"{p}.{variant}.tflite"] for p in PARTS)

    guidance = model.default_guidance_scale
    size, ch = model.config.latent_size, model.config.latent_channels
    positions = np.repeat(np.arange(model.config.max_length, dtype=np.int32)[None], 1, axis=0)
    record["end_to_end"] = {}
    for variant in VARIANTS:
        text = TFLitePart(outdir / f"text_encoder.{variant}.tflite", args.threads, INPUT_NAMES["text_encoder"])
        unet = TFLitePart(outdir / f"unet.{variant}.tflite", args.threads, INPUT_NAMES["unet"])
        dec = TFLitePart(outdir / f"decoder.{variant}.tflite", args.threads, INPUT_NAMES["decoder"])

        def generate(prompt, seed, steps=50):
            ctx = text(model.tokenizer.encode([prompt]).astype(np.int32), positions)
            unc = text(model.tokenizer.encode([""], check=False).astype(np.int32), positions)
            noise = np.random.default_rng(seed).standard_normal((size, size, ch)).astype(np.float32)[None]
            z = ddim_sample(lambda l, t, c: unet(l, t, c), ctx, unc, noise, steps, guidance,
                            model.alphas, model.config.time_dim)
            x = dec(z / model.config.latent_scale)
            return np.clip((x[0] + 1.0) * 127.5, 0, 255).round().astype(np.uint8)

        diffs = []
        for i, prompt in enumerate(args.prompts):
            ours = generate(prompt, i)
            ref = model.generate(prompt, seed=i, steps=50)
            diffs.append(float(np.abs(ours.astype(int) - ref.astype(int)).mean()))
        generate(args.prompts[0], 0)  # warm
        times = []
        for r in range(args.runs):
            t0 = time.perf_counter()
            generate(args.prompts[0], 100 + r)
            times.append(time.perf_counter() - t0)
        record["end_to_end"][variant] = {
            "seconds_per_image_50_steps": round(float(np.median(times)), 3), "runs": args.runs,
            "tflite_threads": args.threads,
            "mean_abs_pixel_difference_vs_keras_0_255": round(float(np.mean(diffs)), 3)}
        print(variant, record["end_to_end"][variant], flush=True)
    record["machine"] = {"cores": os.cpu_count(), "load_avg_1min_after": round(os.getloadavg()[0], 2)}
    record["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    Path(args.record).write_text(json.dumps(record, indent=1))
    print(f"wrote {args.record}")


if __name__ == "__main__":
    main()
