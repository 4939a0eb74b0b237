"""Times full-size Stable Diffusion's parts on this CPU, for docs/DEPLOYMENT.md.

    .venv/bin/python docs/tools/measure_full_sd_step.py            # ~3 minutes, ~6 GB of memory

The official weights are not on this machine (and cannot be downloaded here), so the parts are
built with KerasCV's own architecture code and random weights (`download_weights=False`). The
arithmetic, and therefore the time, does not depend on the weight values, so one UNet call times
a real denoising step; the pictures would of course be noise. Measured:

- parameter counts of KerasCV's TextEncoder, DiffusionModel (UNet) and Decoder (512x512);
- seconds for one UNet call at batch 2 (one denoising step with guidance = prompt + no prompt),
  the decoder once, the text encoder once; after one untimed warm-up call each;
- peak memory of the process.

From these, 50 steps x one UNet call + text + decoder = an _estimate_ of one 512x512 image on
this CPU (the estimate is the sum; nothing else in the loop is expensive). Results go to
docs/tools/full_sd_measured.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0 = TF default = all cores)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--skip-decoder", action="store_true")
    p.add_argument("--out", default=str(ROOT / "docs" / "tools" / "full_sd_measured.json"))
    args = p.parse_args(argv)
    from trainer.runtime import configure as set_threads
    set_threads(args.threads)
    import tensorflow as tf
    from keras_cv.models.stable_diffusion import Decoder, DiffusionModel, TextEncoder

    out = {"image_size": args.size, "threads": args.threads or "tensorflow default", "cores": os.cpu_count(),
           "load_avg_1min_before": round(os.getloadavg()[0], 2), "weights": "random (architecture only)"}
    latent = args.size // 8

    def timed_call(model, inputs):
        fn = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False))
        t0 = time.perf_counter()
        np.asarray(fn(*inputs))  # warm-up: traces and runs once
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        np.asarray(fn(*inputs))
        return round(time.perf_counter() - t0, 2), round(first, 2)

    t0 = time.perf_counter()
    text = TextEncoder(77, download_weights=False)
    out["text_encoder_params"] = int(text.count_params())
    tokens = np.zeros((1, 77), np.int32)
    pos = np.arange(77, dtype=np.int32)[None]
    out["text_encoder_s"], _ = timed_call(text, [tokens, pos])
    print("text encoder", out["text_encoder_params"], out["text_encoder_s"], flush=True)

    unet = DiffusionModel(args.size, args.size, 77, download_weights=False)
    out["unet_params"] = int(unet.count_params())
    out["build_s"] = round(time.perf_counter() - t0, 1)
    lat = np.random.default_rng(0).standard_normal((2, latent, latent, 4)).astype(np.float32)
    temb = np.zeros((2, 320), np.float32)
    ctx = np.zeros((2, 77, 768), np.float32)
    out["unet_call_batch2_s"], out["unet_first_call_s"] = timed_call(unet, [lat, temb, ctx])
    print("unet", out["unet_params"], out["unet_call_batch2_s"], flush=True)
    del unet

    if not args.skip_decoder:
        dec = Decoder(args.size, args.size, download_weights=False)
        out["decoder_params"] = int(dec.count_params())
        out["decoder_s"], _ = timed_call(dec, [lat[:1]])
        print("decoder", out["decoder_params"], out["decoder_s"], flush=True)

    steps = 50
    out["estimate_one_image_50_steps_s"] = round(
        steps * out["unet_call_batch2_s"] + out["text_encoder_s"] * 2 + out.get("decoder_s", 0.0), 1)
    out["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    out["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
