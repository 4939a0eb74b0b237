""""None of these": flags an input that is probably none of the ten CIFAR-10 classes.

A softmax classifier always names one of its ten classes, even for a coffee cup. The score here is
the maximum softmax probability (Hendrycks & Gimpel 2017): the shipped classifiers end in a softmax
layer, so the logits that the energy score (Liu et al. 2020) needs are not available. An input whose
score falls below the threshold is flagged; the threshold is the score that 95% of in-distribution
images reach, chosen by `python -m trainer.ood_calibrate` and stored in tuning/ood_threshold.json.

    from trainer import ood
    ood.flag(probs)            # True: probably none of the ten classes (still show the top class)

numpy only at import time, so the dashboard and the serving API can use it without TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.constants import TUNING_ROOT

SCORE_NAME = "max_softmax"
THRESHOLD_FILE = TUNING_ROOT / "ood_threshold.json"
TARGET_PASS_RATE = 0.95
HOLDOUT_IMAGES = 5000  # the last images of the training split


def score(probs) -> np.ndarray:
    """Max-softmax score per image (higher = more like the training data); probs (N,10) or (10,)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"expected probabilities of shape (N, classes), got {np.shape(probs)}")
    return p.max(axis=1)


def choose_threshold(in_scores, pass_rate: float = TARGET_PASS_RATE) -> float:
    """The score that `pass_rate` of the in-distribution scores reach (flag when score < threshold)."""
    s = np.asarray(in_scores, dtype=np.float64)
    if s.size == 0 or not 0.0 < pass_rate < 1.0:
        raise ValueError("need in-distribution scores and a pass rate in (0, 1)")
    return float(np.quantile(s, 1.0 - pass_rate, method="lower"))


def flag_rate(scores, threshold: float) -> float:
    return float(np.mean(np.asarray(scores) < threshold))


def auroc(in_scores, out_scores) -> float:
    """Area under the ROC curve for telling in- from out-of-distribution by the score (ties count
    half): the probability that a random in-distribution image scores above a random OOD one."""
    a = np.asarray(in_scores, dtype=np.float64)
    b = np.asarray(out_scores, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("auroc needs both in- and out-of-distribution scores")
    both = np.concatenate([a, b])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(both.size)
    sorted_vals = both[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[:a.size].sum() - a.size * (a.size + 1) / 2.0
    return float(u / (a.size * b.size))


def load_threshold(path: str | Path = THRESHOLD_FILE) -> float:
    """The committed threshold; a clear error if the file is missing or malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        value = float(data["threshold"])
    except FileNotFoundError:
        raise FileNotFoundError(f"no OOD threshold at {path}; run `python -m trainer.ood_calibrate`") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} holds no valid \"threshold\": {exc}") from exc
    if data.get("score") not in (None, SCORE_NAME):
        raise ValueError(f"{path} was calibrated for score {data.get('score')!r}, not {SCORE_NAME!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{path}: threshold {value} is not a probability")
    return value


def flag(probs, threshold: float | None = None) -> bool:
    """True when ONE image's probabilities say "probably none of the ten classes"."""
    s = score(probs)
    if s.size != 1:
        raise ValueError("flag() takes one image's probabilities; use score() for a batch")
    return bool(s[0] < (load_threshold() if threshold is None else threshold))


# --------------------------------------------------------------------------------------------
# Out-of-distribution images for the measurement


def synthetic_images(per_kind: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Noise and textures no CIFAR-10 class looks like: {kind: uint8 (per_kind, 32, 32, 3)}."""
    rng = np.random.default_rng(seed)
    n = per_kind
    yy, xx = np.mgrid[0:32, 0:32]
    out = {
        "uniform_noise": rng.integers(0, 256, (n, 32, 32, 3)),
        "gaussian_noise": np.clip(rng.normal(128, 64, (n, 32, 32, 3)), 0, 255),
        "solid_colour": np.broadcast_to(rng.integers(0, 256, (n, 1, 1, 3)), (n, 32, 32, 3)),
    }
    stripes, checks = [], []
    for _ in range(n):
        period = int(rng.integers(2, 9))
        angle = rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        c1, c2 = rng.integers(0, 256, (2, 3))
        stripes.append(np.where((np.floor(phase) % 2 == 0)[..., None], c1, c2))
        cell = int(rng.integers(2, 9))
        c1, c2 = rng.integers(0, 256, (2, 3))
        checks.append(np.where((((yy // cell) + (xx // cell)) % 2 == 0)[..., None], c1, c2))
    out["stripes"] = np.stack(stripes)
    out["checkerboard"] = np.stack(checks)
    return {k: np.asarray(v, dtype=np.uint8) for k, v in out.items()}


# scikit-image's bundled sample photos that show none of the ten classes (its cat, "chelsea", and
# its horse silhouette are left out). Only those shipped inside the wheel; none is downloaded.
PACKAGE_PHOTOS = ("astronaut", "brick", "camera", "coffee", "coins", "colorwheel", "grass",
                  "gravel", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page",
                  "retina", "rocket", "text", "clock", "cell", "skin", "lily", "microaneurysms")


def _to_rgb_uint8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = a.astype(np.float64)
        lo, hi = a.min(), a.max()
        a = ((a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return a[..., :3]


def views_32(image: np.ndarray) -> np.ndarray:
    """Five 32x32 views of a photo: the whole picture squashed, and its four quadrants, since a
    user's upload may be either."""
    from PIL import Image

    img = Image.fromarray(_to_rgb_uint8(image))
    w, h = img.size
    boxes = [(0, 0, w, h), (0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2),
             (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]
    return np.stack([np.asarray(img.crop(b).resize((32, 32), Image.Resampling.LANCZOS)) for b in boxes])


def package_photos() -> dict[str, np.ndarray]:
    """{name: uint8 (5, 32, 32, 3)} for each of scikit-image's shipped photos that loads offline."""
    try:
        from skimage import data as skdata
    except ImportError:
        raise ValueError("the out-of-distribution photos come from scikit-image, which is not installed: "
                         "`pip install scikit-image` (needed for this measurement only)") from None

    out = {}
    for name in PACKAGE_PHOTOS:
        try:
            out[name] = views_32(getattr(skdata, name)())
        except Exception:  # a photo that would need a download (pooch) is skipped, not fetched
            continue
    if not out:
        raise RuntimeError("no scikit-image sample photo could be loaded")
    return out


def summarise(threshold: float, in_scores: dict[str, np.ndarray], out_scores: dict[str, np.ndarray],
              reference: str) -> dict:
    """Flag rates per set and AUROC of each OOD group against the `reference` in-distribution set."""
    ref = in_scores[reference]
    result = {"in_distribution": {}, "out_of_distribution": {}}
    for name, s in in_scores.items():
        result["in_distribution"][name] = {"images": int(s.size), "pass_rate": round(1 - flag_rate(s, threshold), 4)}
    for name, s in out_scores.items():
        result["out_of_distribution"][name] = {"images": int(s.size), "flag_rate": round(flag_rate(s, threshold), 4),
                                               "auroc": round(auroc(ref, s), 4)}
    return result
