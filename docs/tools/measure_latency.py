"""CPU latency and size of the small text-to-image model, for docs/DEPLOYMENT.md.

    .venv/bin/python docs/tools/measure_latency.py --threads 1
    .venv/bin/python docs/tools/measure_latency.py --threads 2

Each run adds an entry keyed by the thread count to docs/tools/latency_measured.json:
- seconds per image for one prompt (batch 1) at 50 and 25 DDIM steps (median of --runs after
  a warm-up that traces the TensorFlow functions), guidance on (two UNet passes per step, batched);
- seconds per image when --batch prompts are generated together (what a server that batches
  requests gets);
- the parts of one image: text encoding, one UNet call (batch 2 = with and without the text),
  decoding the latent to pixels;
- the model's parameter counts and the bytes of every file in the model folder;
- the peak memory of the process (resident set: Python + TensorFlow + the model);
- the machine: CPU name, cores, and the 1-minute load average before and after (other jobs
  sharing the CPU make every figure slower, so the load is recorded with it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trainer.deliverables import deliverable_dir  # noqa: E402

from trainer.artifacts import cpu_name  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(deliverable_dir("text_to_image")))
    p.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads (0 = TF default)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", default=str(ROOT / "docs" / "tools" / "latency_measured.json"))
    return p.parse_args(argv)


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": round(float(np.median(times)), 4), "min_s": round(float(np.min(times)), 4),
            "max_s": round(float(np.max(times)), 4), "runs": runs}


def main(argv=None):
    args = parse_args(argv)
    from trainer.runtime import configure as set_threads
    set_threads(args.threads)
    from trainer.diffusion import load_text_to_image
    from trainer.diffusion.schedule import timestep_embedding

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    model = load_text_to_image(args.model)
    load_s = time.perf_counter() - t0
    prompt = "a photo of a red truck"
    model.generate(prompt, seed=0, steps=50)  # warm-up: traces the tf.functions
    model.generate_batch([prompt] * args.batch, list(range(args.batch)), steps=50)

    result = {"threads": args.threads or "tensorflow default", "model": args.model,
              "load_seconds": round(load_s, 2)}
    seed = iter(range(1, 10_000))
    for steps in (50, 25):
        result[f"one_image_{steps}_steps"] = timed(lambda: model.generate(prompt, seed=next(seed), steps=steps),
                                                   args.runs)
    batch = timed(lambda: model.generate_batch([prompt] * args.batch, [next(seed) for _ in range(args.batch)],
                                               steps=50), max(2, args.runs // 2))
    result[f"batch_{args.batch}_50_steps"] = dict(batch, per_image_s=round(batch["median_s"] / args.batch, 4))

    tokens = model.tokenizer.encode([prompt])
    context = model.encode_text(tokens)
    both = np.concatenate([context, context])
    size, ch = model.config.latent_size, model.config.latent_channels
    latent = np.random.default_rng(0).standard_normal((2, size, size, ch)).astype(np.float32)
    t_emb = timestep_embedding(np.full(2, 500), model.config.time_dim)
    runs = args.runs * 20
    result["parts_one_image"] = {
        "text_encoder_s": timed(lambda: model.encode_text(tokens), runs)["median_s"],
        "unet_call_batch2_s": timed(lambda: np.asarray(model.predict_noise(latent, t_emb, both)), runs)["median_s"],
        "decoder_s": timed(lambda: model.decode_latents(latent[:1]), runs)["median_s"],
        "runs_each": runs,
    }

    folder = Path(args.model) if Path(args.model).is_dir() else ROOT / args.model
    files = {f.name: f.stat().st_size for f in sorted(folder.iterdir()) if f.is_file()}
    record = {
        "params": model.param_counts(),
        "files_bytes": files,
        "weights_bytes": sum(v for k, v in files.items() if k.endswith(".weights.h5")),
        "latent_shape": [size, size, ch], "image_shape": [model.image_size, model.image_size, 3],
        "guidance_scale": model.default_guidance_scale,
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "arch": platform.machine(),
                    "load_avg_1min_before": round(load_before, 2),
                    "load_avg_1min_after": round(os.getloadavg()[0], 2)},
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.is_file() else {}
    data.update({k: v for k, v in record.items() if k not in ("machine", "peak_memory_mb")})
    data.setdefault("runs", {})[f"threads_{args.threads}"] = dict(
        result, machine=record["machine"], peak_memory_mb=record["peak_memory_mb"],
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    out.write_text(json.dumps(data, indent=1))
    print(json.dumps(data["runs"][f"threads_{args.threads}"], indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
