"""The text-to-image learning curve as a picture: quick prompt accuracy against diffusion epochs.

    python docs/tools/plot_text2image_curve.py     # tuning/text2image/curve/*.json -> docs/text2image_curve.png

Points: EMA snapshots within the one-epoch run (at<fraction>.json, at1.json is its end) and runs of the
same recipe for more epochs (e<epochs>.json), all judged by `evaluate --quick` at guidance 4.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trainer.artifacts import read_json  # noqa: E402
from trainer.constants import REPO_ROOT, TUNING_ROOT  # noqa: E402

TEMPLATE = "a photo of a <class>"


def points(prefix: str) -> list[tuple[float, float, float]]:
    out = []
    for path in sorted((TUNING_ROOT / "text2image" / "curve").glob(f"{prefix}*.json")):
        if path.name.endswith(".training.json"):
            continue
        m = read_json(path)
        acc = m["prompt_accuracy"][TEMPLATE]
        out.append((float(path.stem[len(prefix):]), acc["accuracy"] * 100, acc["distinct_labels_per_seed"]))
    return sorted(out)


def main() -> None:
    within, runs = points("at"), points("e")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in within], [p[1] for p in within], "o-", label="within the one-epoch run (EMA snapshots)")
    ends = [p for p in within if p[0] == 1.0] + runs
    ax.plot([p[0] for p in ends], [p[1] for p in ends], "s--", label="end of a run of that many epochs")
    ax.axhline(10, color="grey", lw=0.8, ls=":", label="chance (10%)")
    for x, y, distinct in within + runs:
        ax.annotate(f"{y:.0f}%", (x, y), xytext=(4, -12), textcoords="offset points", fontsize=8)
    ax.set_xlabel("diffusion epochs over the 50,000 training images")
    ax.set_ylabel(f'prompt accuracy, "{TEMPLATE}", %')
    ax.set_title("Quick evaluation: 10 images per class, guidance 4", fontsize=10)
    ax.set_ylim(0, 60)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    out = REPO_ROOT / "docs" / "text2image_curve.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
