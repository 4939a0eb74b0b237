"""What the text-to-image model is measured on, as library functions (the command is evaluate.py).

The judge is a CIFAR-10 classifier named by the deliverables manifest, never "the best one
found at run time", so figures from different runs are judged by the same eyes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

# Prompts a model must follow: the training captions' template and two it never saw.
TEMPLATES = {"a photo of a <class>": "a photo of {article} {name}",
             "a <class>": "{article} {name}",
             "an image of a <class>": "an image of {article} {name}"}
TRAINING_TEMPLATE = "a photo of a <class>"
EVAL_COLOURS = ("red", "blue", "green", "yellow", "white", "black")


def prompt_for(template: str, label: int) -> str:
    from trainer.data import CLASS_NAMES

    name = CLASS_NAMES[label]
    return TEMPLATES[template].format(article="an" if name[0] in "aeiou" else "a", name=name)


# -- the judge -------------------------------------------------------------------------------
def load_judge(path):
    """(name, test accuracy, model giving (probabilities, features)); loaded with safe_mode=True."""
    import keras

    from trainer.models import FEATURES_LAYER, load_classifier

    path = Path(path)
    clf = load_classifier(path)
    try:
        feats = clf.get_layer(FEATURES_LAYER).output
    except ValueError as exc:
        raise ValueError(f"classifier {path} has no layer named {FEATURES_LAYER!r}") from exc
    try:
        accuracy = float(json.loads((path / "metrics.json").read_text())["accuracy"])
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"judge {path} has no readable metrics.json accuracy: {exc}") from exc
    return path.name, accuracy, keras.Model(clf.inputs[0], [clf.outputs[0], feats])


def classify(judge, images: np.ndarray, batch: int = 500):
    """(probabilities, features) for uint8 images; the classifier takes raw 0-255 floats."""
    probs, feats = [], []
    for start in range(0, len(images), batch):
        p, f = judge(images[start:start + batch].astype(np.float32), training=False)
        probs.append(np.asarray(p))
        feats.append(np.asarray(f).reshape(len(p), -1))
    return np.concatenate(probs), np.concatenate(feats).astype(np.float64)


# -- metrics ---------------------------------------------------------------------------------
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2), numpy only."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ sb @ root_a
    covmean_trace = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * covmean_trace)


def generate_class_prompts(model, template, per_class, steps, guidance, seed0):
    """Images for every class prompt at seeds seed0.., their prompted labels and seeds."""
    images, labels, seeds = [], [], []
    for label in range(10):
        s = list(range(seed0, seed0 + per_class))
        images.append(model.generate_batch([prompt_for(template, label)] * per_class, s, steps, guidance))
        labels += [label] * per_class
        seeds += s
    return np.concatenate(images), np.asarray(labels), np.asarray(seeds)


def prompt_accuracy(labels, predicted, seeds) -> dict:
    """Share judged as the prompted class, per class, the confusion matrix, and how many distinct
    labels one seed yields across the ten class prompts (1 = the prompt is ignored, 10 = ideal)."""
    from trainer.data import CLASS_NAMES

    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (labels, predicted), 1)
    distinct = [len(set(predicted[seeds == s])) for s in np.unique(seeds)]
    return {"accuracy": float((predicted == labels).mean()),
            "per_class": {CLASS_NAMES[c]: float((predicted[labels == c] == c).mean()) for c in range(10)},
            "distinct_labels_per_seed": float(np.mean(distinct)),
            "images": int(len(labels)), "confusion_matrix": confusion.tolist(), "chance": 0.1}


def colour_agreement(model, per_prompt, steps, guidance, seed0=2000) -> dict:
    """Images for "a photo of a <colour> <class>": share whose dominant centre colour (the caption
    rule) is the prompted one, beside the same share for prompts without a colour word."""
    from trainer.diffusion.captions import COLOURS, caption, dominant_colours

    asked, got, base = [], [], []
    for colour in EVAL_COLOURS:
        prompts = [caption(c, colour) for c in range(10) for _ in range(per_prompt)]
        seeds = [seed0 + i for i in range(len(prompts))]
        asked += [COLOURS.index(colour)] * len(prompts)
        got.append(dominant_colours(model.generate_batch(prompts, seeds, steps, guidance)))
    plain = [caption(c) for c in range(10) for _ in range(per_prompt)]
    base = dominant_colours(model.generate_batch(plain, [seed0 + i for i in range(len(plain))], steps, guidance))
    asked, got = np.asarray(asked), np.concatenate(got)
    return {"agreement": float((asked == got).mean()),
            "baseline_class_only_prompts": float(np.mean([(base == COLOURS.index(c)).mean() for c in EVAL_COLOURS])),
            "per_colour": {c: float((got[asked == COLOURS.index(c)] == COLOURS.index(c)).mean())
                           for c in EVAL_COLOURS},
            "images": int(len(asked)), "colours": list(EVAL_COLOURS)}


def denoising_mse(model, images, labels, n, seed) -> dict:
    """The training objective (unweighted) on held-out images, overall and per quarter of the time range."""
    from trainer.diffusion.captions import make_captions
    from trainer.diffusion.schedule import TRAIN_TIMESTEPS, timestep_embedding

    rng = np.random.default_rng([seed, 10])
    idx = rng.permutation(len(images))[:n]
    images, labels = images[idx], labels[idx]
    z = model.encode_images(images, sample_seed=seed)
    noise = rng.standard_normal(z.shape).astype(np.float32)
    t = rng.integers(0, TRAIN_TIMESTEPS, len(z))
    a = np.sqrt(model.alphas[t]).astype(np.float32)[:, None, None, None]
    s = np.sqrt(1.0 - model.alphas[t]).astype(np.float32)[:, None, None, None]
    noisy = a * z + s * noise
    target = a * noise - s * z if model.config.prediction == "v" else noise
    context = model.encode_text(model.tokenizer.encode(make_captions(images, labels)))
    errors = []
    for start in range(0, len(z), 500):
        sl = slice(start, start + 500)
        pred = np.asarray(model.predict_noise(noisy[sl], timestep_embedding(t[sl], model.config.time_dim),
                                              context[sl]))
        errors.append(((pred - target[sl]) ** 2).mean(axis=(1, 2, 3)))
    errors = np.concatenate(errors)
    quarters = {f"t_{q * 250}_{q * 250 + 249}": float(errors[(t >= q * 250) & (t < (q + 1) * 250)].mean())
                for q in range(4)}
    return {"mse": float(errors.mean()), "target": model.config.prediction, "images": int(n),
            "by_timestep": quarters}


def reconstruction(model, judge, images, labels) -> tuple[dict, np.ndarray]:
    """The autoencoder's ceiling: PSNR and how often the judge still recognises a reconstruction
    (no diffusion model decoding through this autoencoder can do much better)."""
    recon = model.decode_latents(model.encode_images(images))
    mse = float(((recon.astype(np.float64) - images) ** 2).mean())
    probs, _ = classify(judge, recon)
    orig, _ = classify(judge, images)
    return {"mse_0_255": mse, "psnr_db": float(10 * np.log10(255.0 ** 2 / mse)), "images": int(len(images)),
            "judge_accuracy_on_reconstructions": float((probs.argmax(1) == labels).mean()),
            "judge_accuracy_on_originals": float((orig.argmax(1) == labels).mean())}, recon


def guidance_sweep(model, judge, scales, per_class, steps) -> dict:
    """Prompt accuracy per guidance scale on the training captions' template at seeds 10000+ (never
    the evaluation seeds, never test images): how the default scale is chosen."""
    out = {}
    for g in scales:
        images, labels, _ = generate_class_prompts(model, TRAINING_TEMPLATE, per_class, steps, g, 10000)
        probs, _ = classify(judge, images)
        out[f"{g:g}"] = float((probs.argmax(1) == labels).mean())
        print(f"  guidance {g:g}: prompt accuracy {out[f'{g:g}']:.3f}", flush=True)
    return out


def seconds_per_image(model_dir, steps: int, runs: int, threads: int = 1) -> dict:
    """Median seconds for one image (guidance on) in a child process limited to `threads` intra-op
    threads: the pool size is fixed when TensorFlow starts, so it cannot be set in this process."""
    code = ("import json, sys, time\n"
            "from trainer.runtime import configure\n"
            f"configure({int(threads)})\n"
            "import tensorflow as tf\n"
            "from trainer.diffusion import load_text_to_image\n"
            f"m = load_text_to_image({str(model_dir)!r})\n"
            f"m.generate('a photo of a red truck', seed=0, steps={int(steps)})\n"
            "times = []\n"
            f"for i in range({int(runs)}):\n"
            "    t0 = time.perf_counter()\n"
            f"    m.generate('a photo of a red truck', seed=i + 1, steps={int(steps)})\n"
            "    times.append(time.perf_counter() - t0)\n"
            "print(json.dumps({'times': times, 'intra_op_threads': tf.config.threading.get_intra_op_parallelism_threads()}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    if done.returncode:
        raise RuntimeError(f"timing process failed: {done.stderr.strip()[-500:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"steps": steps, "median_s": float(np.median(result["times"])), "runs": runs,
            "threads": result["intra_op_threads"], "all_s": [round(x, 3) for x in result["times"]]}
