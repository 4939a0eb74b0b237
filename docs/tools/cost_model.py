"""Cost per 1,000 images and hosting sizes for docs/DEPLOYMENT.md, from the measured JSON files.

    .venv/bin/python docs/tools/cost_model.py            # prints the Markdown tables used in the document

Inputs:
- MEASURED (this project): docs/tools/latency_measured.json (measure_latency.py),
  docs/tools/tflite_measured.json (export_tflite.py), docs/tools/full_sd_measured.json
  (measure_full_sd_step.py, optional);
- PUBLISHED figures and ESTIMATES: the constants below, each with its source. Prices are
  on-demand list prices and change; re-check them before quoting a client.

Formulas (all assume a machine that is kept busy; divide by the real utilisation, e.g. 0.6):
- $ per 1,000 images = 1,000 x seconds per image / 3,600 x $ per hour of the resource that
  produced that image (one vCPU for our single-thread figures, one GPU for the GPU figures);
- resources at peak = peak images per second x seconds per image / target utilisation;
- $ per month = max(an always-on minimum fleet, images per month x $ per 1,000 at that utilisation)
  (autoscaling follows the load above the minimum).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

TOOLS = Path(__file__).resolve().parent

# -- PUBLISHED latency figures (seconds per 512x512 image) -----------------------------------
SD_PUBLISHED = {
    "A100 80GB, fp16, 50 steps (fal-ai/stable-diffusion-benchmarks, Diffusers + torch 2.1 SDPA, SD 1.5)": 1.59,
    "A10 24GB, fp16, 50 steps (Deci AI model card DeciDiffusion-v1-0, PyTorch, SD 1.5)": 2.95,
    "64-vCPU Xeon Sapphire Rapids, fp32, 20 steps (Hugging Face blog 'Accelerating Stable Diffusion Inference on Intel CPUs', Mar 2023)": 32.3,
    "same CPU with OpenVINO, static shapes, 20 steps (same blog)": 4.7,
}
# -- ESTIMATES: prices, AWS us-east-1 on-demand Linux list prices (2024; re-check) -----------
PRICE_PER_HOUR = {
    "vCPU (c7i.large: 2 vCPU for $0.08925/h)": 0.08925 / 2,
    "A10G GPU (g5.xlarge: 1 GPU, 4 vCPU, 16 GiB, $1.006/h)": 1.006,
    "A100 GPU (p4d.24xlarge: 8 GPUs for $32.77/h)": 32.77 / 8,
}
PEAK_TO_AVERAGE = 3.0      # ESTIMATE: busiest hour vs the daily average, typical of consumer apps
UTILISATION = 0.6          # ESTIMATE: target load per machine, headroom for bursts
TRAFFIC_PER_DAY = (10_000, 100_000, 1_000_000)


def per_1000(seconds: float, price: float) -> float:
    return 1000 * seconds / 3600 * price


def main():
    lat = json.loads((TOOLS / "latency_measured.json").read_text())
    tfl = json.loads((TOOLS / "tflite_measured.json").read_text())
    full = json.loads((TOOLS / "full_sd_measured.json").read_text()) if (TOOLS / "full_sd_measured.json").is_file() else None
    r1 = lat["runs"]["threads_1"]
    batch_key = next(k for k in r1 if k.startswith("batch_"))
    vcpu = PRICE_PER_HOUR["vCPU (c7i.large: 2 vCPU for $0.08925/h)"]
    a10 = PRICE_PER_HOUR["A10G GPU (g5.xlarge: 1 GPU, 4 vCPU, 16 GiB, $1.006/h)"]
    a100 = PRICE_PER_HOUR["A100 GPU (p4d.24xlarge: 8 GPUs for $32.77/h)"]

    rows = [
        ("ours, Keras/TensorFlow, 1 thread, one request at a time", r1["one_image_50_steps"]["median_s"], "vCPU", vcpu, "measured"),
        (f"ours, Keras/TensorFlow, 1 thread, {batch_key.split('_')[1]} requests batched", r1[batch_key]["per_image_s"], "vCPU", vcpu, "measured"),
        ("ours, TFLite float32, 1 thread", tfl["end_to_end"]["float32"]["seconds_per_image_50_steps"], "vCPU", vcpu, "measured"),
        ("ours, TFLite int8 weights, 1 thread", tfl["end_to_end"]["int8_dynamic"]["seconds_per_image_50_steps"], "vCPU", vcpu, "measured"),
    ]
    if full:
        rows.append(("Stable Diffusion, this project's 2-core VM (shared)", full["estimate_one_image_50_steps_s"],
                     "2 vCPU", 2 * vcpu, "estimate: measured step x 50 + decoder"))
    names = list(SD_PUBLISHED)
    rows += [
        ("Stable Diffusion, one A100 GPU, fp16", SD_PUBLISHED[names[0]], "A100", a100,
         "published (fal-ai benchmark, SD 1.5)"),
        ("Stable Diffusion, one A10 GPU, fp16 (priced as AWS's A10G)", SD_PUBLISHED[names[1]], "A10G", a10,
         "published (Deci model card, SD 1.5)"),
    ]
    print("| model and hardware | s / image (50 steps) | source | resource, $/h (estimate) | $ per 1,000 images at 100 % use | at 60 % use |")
    print("|---|---|---|---|---|---|")
    for name, s, res, price, src in rows:
        print(f"| {name} | {s:,.2f} | {src} | {res}, {price:.3f} | {per_1000(s, price):.3f} | {per_1000(s, price) / UTILISATION:.3f} |")

    print()
    ours_s = r1[batch_key]["per_image_s"]
    sd_s = SD_PUBLISHED[names[1]]
    hours = 730  # one month
    floor_ours = 2 * 2 * vcpu * hours   # two 2-vCPU instances always on (availability)
    floor_sd = 1 * a10 * hours          # one GPU instance always on
    print(f"| images per day | peak images/s (x{PEAK_TO_AVERAGE:g} average) | our model: vCPUs at peak ({ours_s:.2f} s/image) | "
          f"our model: $/month | Stable Diffusion: A10G GPUs at peak ({sd_s:.2f} s/image) | Stable Diffusion: $/month |")
    print("|---|---|---|---|---|---|")
    for per_day in TRAFFIC_PER_DAY:
        peak = per_day / 86400 * PEAK_TO_AVERAGE
        cpus = peak * ours_s / UTILISATION
        gpus = peak * sd_s / UTILISATION
        month = per_day * 30 / 1000
        ours_month = max(floor_ours, month * per_1000(ours_s, vcpu) / UTILISATION)
        sd_month = max(floor_sd, month * per_1000(sd_s, a10) / UTILISATION)
        print(f"| {per_day:,} | {peak:.2f} | {max(4, math.ceil(cpus))} | {ours_month:,.0f} | "
              f"{max(1, math.ceil(gpus))} | {sd_month:,.0f} |")
    print(f"\nFloors: our model never below 2 instances x 2 vCPU (${floor_ours:,.0f}/month); "
          f"Stable Diffusion never below 1 GPU instance (${floor_sd:,.0f}/month). "
          f"Monthly = max(floor, images x $ per 1,000 at {UTILISATION:.0%} use).")

if __name__ == "__main__":
    main()
