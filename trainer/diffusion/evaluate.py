"""Evaluates the text-to-image model and writes metrics.json beside it.

    python -m trainer.diffusion.evaluate                          # the deliverable, full evaluation
    python -m trainer.diffusion.evaluate --model DIR --quick --out lever.json

Every figure is computed here (library: trainer/diffusion/metrics.py):
- the judge: the deliverables manifest's classifier, named with its test accuracy;
- the autoencoder's ceiling: PSNR and the judge's accuracy on reconstructions of the test images;
- prompt accuracy for "a photo of a <class>" (the training captions' template) and the unseen
  templates "a <class>" and "an image of a <class>", --per-class images per prompt at fresh seeds;
  per class, the confusion matrix and the distinct judged labels per seed across the ten prompts;
- colour agreement for "a photo of a <colour> <class>";
- held-out denoising MSE, Fréchet distances in the judge's feature space;
- seconds per image on ONE thread at 25 DDIM steps, model size on disk.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the text-to-image deliverable)")
    p.add_argument("--per-class", type=int, default=50, help="images per class prompt and template (default 50)")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps for the evaluation images (default 25)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")
    p.add_argument("--colour-per-prompt", type=int, default=2, help="images per colour x class prompt (0 = skip)")
    p.add_argument("--mse-images", type=int, default=10000, help="test images for the denoising MSE (0 = skip)")
    p.add_argument("--test-images", type=int, default=10000, help="test images for reconstruction and FD")
    p.add_argument("--timing-runs", type=int, default=3, help="one-thread timings (0 = skip)")
    p.add_argument("--sweep", default=None, help="guidance scales to compare first on the training template at "
                   "seeds 10000+, e.g. 1,2,3,5,7; --adopt-best stores the best as the model's default")
    p.add_argument("--sweep-per-class", type=int, default=10)
    p.add_argument("--adopt-best", action="store_true")
    p.add_argument("--quick", action="store_true", help="the short comparison used for training levers: "
                   "training template only, 10 per class, no MSE/timing, 1,000 test images")
    p.add_argument("--data", default=None)
    p.add_argument("--threads", type=int, default=0, help="TF intra-op threads for the evaluation itself")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="metrics file (default: <model>/metrics.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.per_class, args.colour_per_prompt, args.mse_images, args.timing_runs = 10, 1, 0, 0
        args.test_images = 1000
    if args.per_class < 2 or not 1 <= args.steps <= 1000:
        p.error("--per-class must be at least 2 and --steps from 1 to 1000")
    if args.guidance is not None and not 0 <= args.guidance <= 20:
        p.error("--guidance must be from 0 to 20")
    if min(args.colour_per_prompt, args.mse_images, args.timing_runs) < 0 or args.test_images < 10:
        p.error("counts must be >= 0 (--test-images >= 10)")
    if args.sweep:
        try:
            args.sweep = [float(v) for v in args.sweep.split(",")]
        except ValueError:
            p.error("--sweep takes numbers such as 1,2,3,5")
    if args.out and Path(args.out).suffix != ".json":
        p.error("--out must be a .json file")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    from trainer.runtime import configure
    configure(args.threads)

    from trainer.artifacts import cpu_name, read_json, write_json
    from trainer.data import load_cifar10
    from trainer.deliverables import deliverable_dir
    from trainer.diffusion import load_text_to_image
    from trainer.diffusion import metrics as m

    t_start = time.time()
    model_dir = Path(args.model) if args.model else deliverable_dir("text_to_image")
    model = load_text_to_image(model_dir)
    judge_name, judge_accuracy, judge = m.load_judge(deliverable_dir("classifier"))
    out = {"model": model_dir.name, "judge": {"name": judge_name, "test_accuracy": judge_accuracy,
                                              "chosen_by": "saved_models/DELIVERABLES.json, role 'classifier'"},
           "params": model.param_counts(), "latent_shape": [model.config.latent_size] * 2 + [model.config.latent_channels]}
    if args.sweep:
        print(f"guidance sweep ({args.sweep_per_class} images per class, seeds 10000+)", flush=True)
        sweep = m.guidance_sweep(model, judge, args.sweep, args.sweep_per_class, args.steps)
        out["guidance_sweep"] = {"prompt_accuracy": sweep, "images_per_prompt": args.sweep_per_class,
                                 "seeds": "10000+", "template": m.TRAINING_TEMPLATE, "ddim_steps": args.steps}
        if args.adopt_best:
            model.config.guidance_scale = max(args.sweep, key=lambda g: sweep[f"{g:g}"])
            model.config.save(model_dir / "config.json")
            print(f"adopted guidance {model.config.guidance_scale:g} as the model's default", flush=True)
    guidance = model.config.guidance_scale if args.guidance is None else args.guidance
    data = load_cifar10(args.data, splits=("test",) if args.mse_images == 0 else ("train", "test"))
    x_test, y_test = data.x_test[: args.test_images], data.y_test[: args.test_images]
    out.update({"dataset": "CIFAR-10 test split", "guidance_scale": guidance, "ddim_steps": args.steps})

    t0 = time.time()
    out["autoencoder_reconstruction"], _ = m.reconstruction(model, judge, x_test, y_test)
    print(f"autoencoder ceiling {out['autoencoder_reconstruction']} ({time.time() - t0:.0f} s)", flush=True)

    templates = [m.TRAINING_TEMPLATE] if args.quick else list(m.TEMPLATES)
    out["prompt_accuracy"] = {}
    generated_feats = None
    for template in templates:
        t0 = time.time()
        images, labels, seeds = m.generate_class_prompts(model, template, args.per_class, args.steps, guidance, 0)
        probs, feats = m.classify(judge, images)
        result = m.prompt_accuracy(labels, probs.argmax(1), seeds)
        result.update({"template": template, "images_per_prompt": args.per_class, "seeds": f"0-{args.per_class - 1}",
                       "seen_in_training": template == m.TRAINING_TEMPLATE})
        out["prompt_accuracy"][template] = result
        if generated_feats is None:
            generated_feats = feats
        print(f"prompt accuracy {template!r}: {result['accuracy']:.3f}, distinct labels per seed "
              f"{result['distinct_labels_per_seed']:.2f} ({time.time() - t0:.0f} s)", flush=True)

    if args.colour_per_prompt:
        t0 = time.time()
        out["colour_agreement"] = m.colour_agreement(model, args.colour_per_prompt, args.steps, guidance)
        print(f"colour agreement {out['colour_agreement']['agreement']:.3f} ({time.time() - t0:.0f} s)", flush=True)

    _, test_feats = m.classify(judge, x_test)
    out["frechet_distance"] = {"generated_vs_test": m.frechet_distance(generated_feats, test_feats),
                               "samples": int(len(generated_feats)), "test_images": int(len(test_feats)),
                               "features": "judge layer 'features'"}
    if args.mse_images:
        ref = np.random.default_rng([args.seed, 11]).choice(len(data.x_train), len(generated_feats), replace=False)
        out["frechet_distance"]["reference_real_train_vs_test"] = m.frechet_distance(
            m.classify(judge, data.x_train[ref])[1], test_feats)
        out["heldout_denoising_mse"] = m.denoising_mse(model, data.x_test, data.y_test, args.mse_images, args.seed)
    if args.timing_runs:
        out["seconds_per_image"] = m.seconds_per_image(model_dir, args.steps, args.timing_runs, threads=1)
        print(f"seconds per image on one thread: {out['seconds_per_image']['median_s']:.3f}", flush=True)
    try:
        training = read_json(model_dir / "training.json")
        out["training_time_s"] = training.get("training_time_s")
        out["training_stages_s"] = training.get("stages_s")
    except (FileNotFoundError, ValueError):
        pass
    out["model_size_bytes"] = sum(f.stat().st_size for f in model_dir.iterdir() if f.is_file())
    out.update({"cpu": cpu_name(), "machine": platform.machine(), "evaluation_time_s": round(time.time() - t_start, 1),
                "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    path = Path(args.out) if args.out else model_dir / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, out)
    print(f"wrote {path}", flush=True)
    return out


if __name__ == "__main__":
    main()
