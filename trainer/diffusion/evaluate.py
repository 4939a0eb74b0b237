"""Evaluates the text-to-image model and writes metrics.json beside it.

    python -m trainer.diffusion.evaluate [--model saved_models/text2image] [--classifier saved_models/NAME]

Metrics (all computed here, numbers land in <model>/metrics.json):
- held-out denoising MSE: the training loss (epsilon-prediction MSE) on the CIFAR-10 test split,
  with their colour captions, seeded random time steps and noise;
- autoencoder reconstruction MSE / PSNR on the test split (the ceiling the latents allow);
- prompt accuracy: N images for each "a photo of a <class>" prompt, labelled by the project's
  CIFAR-10 classifier; accuracy = share labelled with the prompted class (chance: 10%);
- colour agreement: images for "a photo of a <colour> <class>" whose dominant centre colour
  (the caption rule) equals the prompted colour, against the same share for class-only prompts;
- Fréchet distance between generated and test images in the classifier's `features` layer, with
  two references at the same sample size: real training images vs test, and autoencoder
  reconstructions vs test;
- parameters per component; seconds per image for 50 DDIM steps (batch 1, guidance on).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from trainer.artifacts import cpu_name, write_json
from trainer.diffusion.train import set_threads

EVAL_COLOURS = ("red", "blue", "green", "yellow", "white", "black")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="saved_models/text2image")
    p.add_argument("--classifier", default=None,
                   help="saved_models/<name> (default: the folder there with the best metrics.json accuracy)")
    p.add_argument("--per-class", type=int, default=20, help="images per class prompt (default 20)")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps for the evaluation images (default 25)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")
    p.add_argument("--colour-per-prompt", type=int, default=2,
                   help="images per colour x class prompt for colour agreement (0 = skip)")
    p.add_argument("--mse-images", type=int, default=10000, help="test images for the denoising MSE")
    p.add_argument("--timing-images", type=int, default=3, help="single images timed at --timing-steps")
    p.add_argument("--timing-steps", type=int, default=50)
    p.add_argument("--test-images", type=int, default=10000,
                   help="test images for the Fréchet reference and reconstruction (default all 10,000)")
    p.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0 = TensorFlow's default)")
    p.add_argument("--sweep", default=None,
                   help="comma-separated guidance scales to compare first on prompt accuracy, with seeds "
                        "1000+ (not the evaluation seeds), e.g. 1,2,3,5,7")
    p.add_argument("--sweep-per-class", type=int, default=5)
    p.add_argument("--adopt-best", action="store_true",
                   help="store the sweep's best scale as the model's default (config.json) and evaluate with it")
    p.add_argument("--data", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="metrics file (default: <model>/metrics.json)")
    args = p.parse_args(argv)
    if args.per_class < 2:
        p.error("--per-class must be at least 2")
    return args


# -- classifier ------------------------------------------------------------------------------
def best_classifier(root="saved_models") -> Path:
    """The classifier folder with the highest metrics.json accuracy (text2image skipped)."""
    best, best_acc = None, -1.0
    for folder in sorted(Path(root).glob("*")):
        if folder.name == "text2image" or not (folder / "model.keras").is_file():
            continue
        try:
            acc = float(json.loads((folder / "metrics.json").read_text())["accuracy"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if acc > best_acc:
            best, best_acc = folder, acc
    if best is None:
        raise FileNotFoundError(f"no evaluated classifier (model.keras + metrics.json) under {root}/; "
                                "train one with `python -m trainer.train` or pass --classifier")
    return best


def load_classifier(path):
    """The classifier and a model giving its `features` layer; loaded with safe_mode=True."""
    import keras

    path = Path(path)
    try:
        from trainer.models import load_classifier as project_loader  # registers custom layers
        clf = project_loader(path)
    except ImportError:
        file = path / "model.keras" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no classifier at {file}")
        clf = keras.saving.load_model(file, safe_mode=True, compile=False)
    try:
        feats = clf.get_layer("features").output
    except ValueError as exc:
        raise ValueError(f"classifier {path} has no layer named 'features'") from exc
    return clf, keras.Model(clf.inputs[0], [clf.outputs[0], feats])


def classify(both_model, images: np.ndarray, batch: int = 500):
    """(probabilities, features) for uint8 images; the classifier takes raw 0-255 floats."""
    probs, feats = [], []
    for start in range(0, len(images), batch):
        p, f = both_model(images[start:start + batch].astype(np.float32), training=False)
        probs.append(np.asarray(p))
        feats.append(np.asarray(f).reshape(len(p), -1))
    return np.concatenate(probs), np.concatenate(feats).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2), numpy only (no scipy here)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ sb @ root_a
    covmean_trace = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * covmean_trace)


# -- metrics ---------------------------------------------------------------------------------
def prompt_accuracy(model, both, per_class, steps, guidance, seed0=0):
    """Generated images, their prompted labels and the classifier's predictions."""
    from trainer.diffusion.captions import caption

    images, labels = [], []
    for label in range(10):
        prompts = [caption(label)] * per_class
        images.append(model.generate_batch(prompts, list(range(seed0, seed0 + per_class)), steps, guidance))
        labels += [label] * per_class
    images, labels = np.concatenate(images), np.asarray(labels)
    probs, feats = classify(both, images)
    return images, labels, probs.argmax(1), feats


def guidance_sweep(model, both, scales, per_class, steps) -> dict:
    out = {}
    for g in scales:
        _, labels, pred, _ = prompt_accuracy(model, both, per_class, steps, g, seed0=1000)
        out[str(g)] = float((pred == labels).mean())
        print(f"  guidance {g}: prompt accuracy {out[str(g)]:.3f}", flush=True)
    return out


def denoising_mse(model, images, labels, n, seed) -> dict:
    """The training objective on held-out images, overall and per quarter of the time range."""
    from trainer.diffusion.captions import make_captions
    from trainer.diffusion.schedule import TRAIN_TIMESTEPS, make_scheduler, timestep_embedding

    rng = np.random.default_rng([seed, 10])
    idx = rng.permutation(len(images))[:n]
    images, labels = images[idx], labels[idx]
    z = model.encode_images(images, sample_seed=seed)
    noise = rng.standard_normal(z.shape).astype(np.float32)
    t = rng.integers(0, TRAIN_TIMESTEPS, len(z))
    noisy = np.asarray(make_scheduler().add_noise(z, noise, t))
    context = model.encode_text(model.tokenizer.encode(make_captions(images, labels)))
    errors = []
    for start in range(0, len(z), 500):
        sl = slice(start, start + 500)
        pred = np.asarray(model.predict_noise(noisy[sl], timestep_embedding(t[sl], model.config.time_dim), context[sl]))
        errors.append(((pred - noise[sl]) ** 2).mean(axis=(1, 2, 3)))
    errors = np.concatenate(errors)
    quarters = {f"t_{q * 250}_{q * 250 + 249}": float(errors[(t >= q * 250) & (t < (q + 1) * 250)].mean())
                for q in range(4)}
    return {"mse": float(errors.mean()), "images": int(n), "by_timestep": quarters}


def reconstruction(model, images) -> tuple[dict, np.ndarray]:
    recon = model.decode_latents(model.encode_images(images))
    mse = float(((recon.astype(np.float64) - images) ** 2).mean())
    return {"mse_0_255": mse, "psnr_db": float(10 * np.log10(255.0 ** 2 / mse)), "images": len(images)}, recon


def seconds_per_image(model, steps: int, runs: int) -> dict:
    model.generate("a photo of a red truck", seed=0, steps=steps)  # warm-up: traces the functions
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        model.generate("a photo of a red truck", seed=i + 1, steps=steps)
        times.append(time.perf_counter() - t0)
    return {"steps": steps, "median_s": float(np.median(times)), "runs": runs, "all_s": [round(x, 3) for x in times]}


def main(argv=None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)

    from trainer.data import CLASS_NAMES, load_cifar10
    from trainer.diffusion import load_text_to_image
    from trainer.diffusion.captions import COLOURS, caption, dominant_colours

    t_start = time.time()
    model = load_text_to_image(args.model)
    clf_dir = Path(args.classifier) if args.classifier else best_classifier()
    _, both = load_classifier(clf_dir)
    sweep = None
    if args.sweep:
        scales = [float(v) for v in args.sweep.split(",")]
        print(f"guidance sweep ({args.sweep_per_class} images per class, seeds 1000+)", flush=True)
        sweep = guidance_sweep(model, both, scales, args.sweep_per_class, args.steps)
        if args.adopt_best:
            best = max(scales, key=lambda g: sweep[str(g)])
            model.config.guidance_scale = best
            model.config.save(Path(args.model) / "config.json")
            print(f"adopted guidance {best} as the model's default", flush=True)
    guidance = model.config.guidance_scale if args.guidance is None else args.guidance
    data = load_cifar10(args.data)
    print(f"model {args.model}; classifier {clf_dir}; guidance {guidance}; {args.steps} DDIM steps", flush=True)

    metrics = {"model": str(args.model), "dataset": f"CIFAR-10 test split; source: {data.source}",
               "params": model.param_counts(), "classifier": str(clf_dir)}
    if sweep is not None:
        metrics["guidance_sweep"] = {"prompt_accuracy": sweep, "images_per_prompt": args.sweep_per_class,
                                     "seeds": "1000+", "ddim_steps": args.steps}
    try:
        metrics["classifier_test_accuracy"] = json.loads((clf_dir / "metrics.json").read_text())["accuracy"]
    except (OSError, ValueError, KeyError):
        pass

    t0 = time.time()
    metrics["heldout_denoising_mse"] = denoising_mse(model, data.x_test, data.y_test, args.mse_images, args.seed)
    print(f"held-out denoising MSE {metrics['heldout_denoising_mse']['mse']:.4f} ({time.time() - t0:.0f} s)", flush=True)

    # Prompt accuracy: seeds 0..N-1 for every class prompt, one batch per class.
    t0 = time.time()
    generated, gen_labels, pred, gen_feats = prompt_accuracy(model, both, args.per_class, args.steps, guidance)
    per_class = {CLASS_NAMES[c]: float((pred[gen_labels == c] == c).mean()) for c in range(len(CLASS_NAMES))}
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (gen_labels, pred), 1)
    metrics["prompt_accuracy"] = {
        "accuracy": float((pred == gen_labels).mean()), "per_class": per_class, "chance": 0.1,
        "images_per_prompt": args.per_class, "ddim_steps": args.steps, "guidance_scale": guidance,
        "prompt_template": "a photo of a <class>", "confusion_matrix": confusion.tolist()}
    print(f"prompt accuracy {metrics['prompt_accuracy']['accuracy']:.3f} ({time.time() - t0:.0f} s)", flush=True)

    # Fréchet distances in the classifier's feature space, references at the same sample size.
    n = len(generated)
    x_test = data.x_test[: args.test_images]
    test_probs, test_feats = classify(both, x_test)
    ref = np.random.default_rng([args.seed, 11]).choice(len(data.x_train), n, replace=False)
    _, train_feats = classify(both, data.x_train[ref])
    recon_metrics, recon = reconstruction(model, x_test)
    recon_probs, recon_feats = classify(both, recon)
    recon_feats = recon_feats[:n]
    # Accuracy on reconstructions: roughly the ceiling that images from this decoder can reach.
    recon_metrics["classifier_accuracy"] = float((recon_probs.argmax(1) == data.y_test[: len(recon)]).mean())
    recon_metrics["classifier_accuracy_on_originals"] = float((test_probs.argmax(1) == data.y_test[: len(x_test)]).mean())
    metrics["frechet_distance"] = {
        "generated_vs_test": frechet_distance(gen_feats, test_feats),
        "reference_real_train_vs_test": frechet_distance(train_feats, test_feats),
        "reference_autoencoder_recon_vs_test": frechet_distance(recon_feats, test_feats),
        "samples": n, "test_images": len(test_feats), "feature_dim": int(test_feats.shape[1]),
        "features": "classifier layer 'features'"}
    metrics["autoencoder_reconstruction"] = recon_metrics
    print(f"FD {metrics['frechet_distance']}", flush=True)

    # Colour steering.
    if args.colour_per_prompt:
        t0 = time.time()
        asked, got = [], []
        for colour in EVAL_COLOURS:
            prompts = [caption(c, colour) for c in range(10) for _ in range(args.colour_per_prompt)]
            seeds = [2000 + i for i in range(len(prompts))]
            images = model.generate_batch(prompts, seeds, args.steps, guidance)
            asked += [COLOURS.index(colour)] * len(prompts)
            got.append(dominant_colours(images))
        asked, got = np.asarray(asked), np.concatenate(got)
        base = dominant_colours(generated)
        metrics["colour_agreement"] = {
            "agreement": float((asked == got).mean()),
            "baseline_class_only_prompts": float(np.mean([(base == COLOURS.index(c)).mean() for c in EVAL_COLOURS])),
            "per_colour": {c: float((got[asked == COLOURS.index(c)] == COLOURS.index(c)).mean()) for c in EVAL_COLOURS},
            "images": len(asked), "colours": list(EVAL_COLOURS)}
        print(f"colour agreement {metrics['colour_agreement']['agreement']:.3f} ({time.time() - t0:.0f} s)", flush=True)

    metrics["seconds_per_image"] = seconds_per_image(model, args.timing_steps, args.timing_images)
    metrics["seconds_per_image"]["guidance_scale"] = model.config.guidance_scale
    print(f"seconds per image ({args.timing_steps} steps) {metrics['seconds_per_image']['median_s']:.3f}", flush=True)

    try:
        training = json.loads((Path(args.model) / "training.json").read_text())
        metrics["training_time_s"] = training.get("training_time_s")
        metrics["training_stages_s"] = training.get("stages_s")
    except (OSError, ValueError):
        pass
    metrics["model_size_bytes"] = sum(f.stat().st_size for f in Path(args.model).iterdir() if f.is_file())
    metrics.update({"threads": args.threads or "tensorflow default", "cpu": cpu_name(),
                    "machine": platform.machine(), "evaluation_time_s": round(time.time() - t_start, 1),
                    "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    out = Path(args.out) if args.out else Path(args.model) / "metrics.json"
    write_json(out, metrics)
    print(f"wrote {out}", flush=True)
    return metrics


if __name__ == "__main__":
    main()
