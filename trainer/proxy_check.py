"""Does the search's proxy budget rank models like full training? Spearman's rho, measured.

    python -m trainer.proxy_check                       # the default proxy, the ten validation recipes
    python -m trainer.proxy_check --proxy 10k_3ep       # a larger budget
    python -m trainer.proxy_check --recipes resnet20 airnet_sep airnet_sep_cutout8

Each recipe trains at the proxy budget and is scored on the training split's hold-out; its
full-budget side is the test accuracy of its committed model, used only for this check. Results
go to tuning/proxy_validation.json after every recipe, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer import cli
from trainer.constants import TUNING_ROOT

SEARCH_ARCH = "airnet"

RESULTS_FILENAME = "proxy_validation.json"


def parse_args(argv=None):
    from trainer.proxy import DEFAULT_PROXY, PROXIES, VALIDATION_RECIPES

    p = argparse.ArgumentParser(prog="python -m trainer.proxy_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--proxy", choices=sorted(PROXIES), default=DEFAULT_PROXY)
    p.add_argument("--recipes", nargs="+", default=list(VALIDATION_RECIPES), metavar="NAME",
                   help="recipes of tuning/recipes/ that name a committed model")
    p.add_argument("--seed", type=cli.non_negative_int, default=0)
    p.add_argument("--threads", type=cli.non_negative_int, default=0, help="TF threads (0 = all cores)")
    p.add_argument("--data", help="path to cifar-10-python.tar.gz (else $CIFAR10_ARCHIVE, the shared copy, or download)")
    p.add_argument("--tuning-dir", type=Path, default=TUNING_ROOT)
    args = p.parse_args(argv)
    if len(set(args.recipes)) < 3:
        p.error("--recipes needs at least three different recipes for a rank correlation")
    from trainer.paths import BadPathError, check_output_dir
    from trainer.proxy import full_budget_accuracy

    try:
        check_output_dir(args.tuning_dir, "--tuning-dir")
        for name in args.recipes:  # every full-budget figure found before any training starts
            full_budget_accuracy(name)
    except (BadPathError, FileNotFoundError, ValueError) as exc:
        p.error(str(exc))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer import runtime

    runtime.configure(args.threads)

    from trainer import recipes
    from trainer.artifacts import read_json, write_json
    from trainer.proxy import PROXIES, TARGET_RHO, full_budget_accuracy, proxy_data, score_recipe

    budget = PROXIES[args.proxy]
    path = args.tuning_dir / RESULTS_FILENAME
    results = read_json(path) if path.is_file() else {"proxies": {}}
    entry = results["proxies"].setdefault(args.proxy, {"budget": budget, "seed": args.seed, "rows": []})
    done = {r["recipe"] for r in entry["rows"]}
    data = proxy_data(budget["train_images"], seed=args.seed, archive=args.data)
    print(f"proxy {args.proxy}: {len(data.y):,} images x {budget['epochs']} epochs, "
          f"{len(data.y_val):,} hold-out images; data: {data.source}", flush=True)
    for name in args.recipes:
        if name in done:
            continue
        full, source = full_budget_accuracy(name)
        recipe = {**recipes.load(name), "seed": args.seed}
        scored = score_recipe(recipe, data, budget["epochs"])
        entry["rows"].append({"recipe": name, "arch": recipe["arch"], "proxy_val_accuracy": round(scored["val_accuracy"], 5),
                              "full_test_accuracy": full, "full_source": source,
                              "seconds": round(scored["seconds"], 1), "params": int(scored["params"])})
        print(f"  {name}: proxy {scored['val_accuracy']:.4f}, full {full:.4f} ({scored['seconds']:.0f} s)", flush=True)
        write_json(path, results)
    rows = [r for r in entry["rows"] if r["recipe"] in args.recipes]
    for r in rows:
        r.setdefault("arch", recipes.load(r["recipe"])["arch"])
    entry["rho"] = rho_of(rows)
    # The search varies airnets only: how the proxy orders that family is what the search relies on.
    family = [r for r in rows if r["arch"] == SEARCH_ARCH]
    entry["rho_search_family"] = rho_of(family) if len(family) >= 3 else None
    entry["seconds"] = round(sum(r["seconds"] for r in rows), 1)
    entry["meets_target"] = entry["rho"] >= TARGET_RHO
    entry["search_family_meets_target"] = (entry["rho_search_family"] or -1) >= TARGET_RHO
    write_json(path, results)
    print(f"Spearman rho {entry['rho']:.3f} over {len(rows)} recipes (target {TARGET_RHO}); "
          f"{entry['rho_search_family']} over the {len(family)} {SEARCH_ARCH} recipes; "
          f"{entry['seconds'] / 60:.1f} min of training; in {path}")
    return 0


def rho_of(rows: list[dict]) -> float:
    from trainer.proxy import rank_correlation

    return round(rank_correlation([r["proxy_val_accuracy"] for r in rows], [r["full_test_accuracy"] for r in rows]), 4)


if __name__ == "__main__":
    sys.exit(cli.run(main))
