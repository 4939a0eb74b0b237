"""The proxy check as a picture: each proxy budget's hold-out score against full-budget test accuracy.

    python docs/tools/plot_proxy_check.py          # tuning/proxy_validation.json -> docs/search_proxy.png
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trainer.artifacts import read_json  # noqa: E402
from trainer.constants import REPO_ROOT, TUNING_ROOT  # noqa: E402

COLOURS = {"airnet": "#1f77b4", "sepnet": "#ff7f0e", "resnet20": "#2ca02c"}


def main() -> None:
    proxies = read_json(TUNING_ROOT / "proxy_validation.json")["proxies"]
    fig, axes = plt.subplots(1, len(proxies), figsize=(5.5 * len(proxies), 4.6), squeeze=False)
    for ax, (name, entry) in zip(axes[0], proxies.items()):
        for row in entry["rows"]:
            ax.scatter(row["proxy_val_accuracy"] * 100, row["full_test_accuracy"] * 100,
                       color=COLOURS.get(row.get("arch"), "grey"), s=40)
            ax.annotate(row["recipe"].replace("_cutout", "_c"), (row["proxy_val_accuracy"] * 100,
                        row["full_test_accuracy"] * 100), fontsize=7, xytext=(3, 3), textcoords="offset points")
        budget = entry["budget"]
        ax.set_title(f"{budget['train_images']:,} images x {budget['epochs']} epochs: rho {entry.get('rho', float('nan')):.2f} "
                     f"(airnets {entry.get('rho_search_family') or float('nan'):.2f})", fontsize=10)
        ax.set_xlabel("proxy: hold-out accuracy, % (training split)")
        ax.set_ylabel("full budget: test accuracy, % (validation only)")
        ax.grid(alpha=0.3)
    for arch, colour in COLOURS.items():
        axes[0][0].scatter([], [], color=colour, label=arch)
    axes[0][0].legend(fontsize=8, loc="center right")
    fig.tight_layout()
    out = REPO_ROOT / "docs" / "search_proxy.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
