"""Architecture search: whether the proxy budget ranks models like full training
(tuning/proxy_validation.json), the search's winner beside the hand-designed shipped classifier, and
every KerasTuner trial (tuning/summary.csv or summary.json)."""

import json

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import discovery as d
from dashboard import formatting as f
from trainer.constants import MAX_PARAMS, TEST_IMAGES, within_param_limit
from trainer.proxy import TARGET_RHO

PROXY_FILENAME = "proxy_validation.json"
HAND = "hand-designed"  # the trial table's column marking trial 0, the shipped classifier's recipe

f.page_header("Architecture search",
              "A KerasTuner search over airbench-style depthwise-separable nets under 1M parameters. "
              "Each trial trains at a small proxy budget and is scored on a hold-out carved from the "
              "training split; the test set is never used to choose.")

root = d.tuning_root()


# --------------------------------------------------------------------------------------------
# Reading


def is_hand_designed(trial_id) -> bool:
    """Trial 0 ("0", "00", ...) is the search space's default point: the hand-designed net."""
    s = str(trial_id).strip()
    return s.isdigit() and int(s) == 0


def as_text(series: pd.Series) -> pd.Series:
    """Values as labels, a missing one (a conditional setting, an unscored trial) as "—"; pandas'
    astype(str) would keep NaN, which cannot be sorted among strings."""
    return series.map(lambda v: "—" if v is None or (isinstance(v, float) and v != v) else str(v))


def same_trial(a, b) -> bool:
    a, b = str(a).strip(), str(b).strip()
    return a == b or (a.isdigit() and b.isdigit() and int(a) == int(b))


def read_summary_meta(path) -> dict:
    """summary.json's search-wide keys (objective, proxy_budget, best_trial_id, best_recipe); {}
    for an older summary that is a bare list of trials, or one that cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_proxies(path) -> tuple[dict, str | None]:
    """{proxy name: its budget, seed, usable rows, rho, ...} from proxy_validation.json, or
    ({}, why not)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, "does not exist yet"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, f"could not be read ({exc.__class__.__name__})"
    proxies = data.get("proxies") if isinstance(data, dict) else None
    if not isinstance(proxies, dict):
        return {}, "holds no \"proxies\" object"
    out = {}
    for name, entry in proxies.items():
        if not isinstance(entry, dict):
            continue
        rows = []
        for r in entry.get("rows") if isinstance(entry.get("rows"), list) else []:
            if not isinstance(r, dict):
                continue
            x, y = d.num(r.get("proxy_val_accuracy")), d.num(r.get("full_test_accuracy"))
            if x is None or y is None:
                continue
            rows.append({"recipe": str(r.get("recipe") or "?"), "arch": str(r.get("arch") or "?"),
                         "proxy": x, "full": y, "source": str(r.get("full_source") or ""),
                         "seconds": d.num(r.get("seconds")), "params": d.num(r.get("params"))})
        seconds = d.num(entry.get("seconds"))
        if seconds is None and any(r["seconds"] is not None for r in rows):
            seconds = sum(r["seconds"] or 0.0 for r in rows)
        out[str(name)] = {
            "budget": entry.get("budget") if isinstance(entry.get("budget"), dict) else {},
            "seed": entry.get("seed"), "rows": rows, "rho": d.num(entry.get("rho")),
            "rho_family": d.num(entry.get("rho_search_family")), "seconds": seconds}
    if not out:
        return {}, "holds no proxy results yet"
    return out, None


def budget_text(budget: dict) -> str:
    images, epochs = d.num(budget.get("train_images")), d.num(budget.get("epochs"))
    if images is None or epochs is None:
        return "budget not recorded"
    return f"{images:,.0f} training images × {epochs:.0f} epoch{'s' if epochs != 1 else ''}"


def full_budget(folder) -> tuple[float | None, str | None]:
    """(test accuracy, None) of a model or experiment folder's metrics.json, or (None, why not);
    a smoke run's accuracy comes with a warning instead."""
    if not folder.is_dir():
        return None, "not trained"
    metrics, problem = d.read_json(folder / "metrics.json")
    if problem:
        return None, "not evaluated yet" if "missing" in problem else problem
    acc = d.num(metrics.get("accuracy"))
    if acc is None:
        return None, "metrics.json has no accuracy"
    n = d.test_images_of(metrics)
    if n is not None and n < TEST_IMAGES:
        return acc, f"a smoke run on only {n:,} test images, not a result"
    return acc, None


# --------------------------------------------------------------------------------------------
# 1. Does the proxy rank like full training?

meta = read_summary_meta(root / "summary.json")
used = meta.get("proxy_budget") if isinstance(meta.get("proxy_budget"), dict) else {}
used_name = str(used.get("name") or "")

st.subheader("Does the proxy rank models like full training?")
if used:
    details = [budget_text(used)]
    if d.num(used.get("val_images")) is not None:
        details.append(f"scored on {d.num(used['val_images']):,.0f} hold-out images")
    if used.get("batch_size") is not None:
        details.append(f"batch {used['batch_size']}")
    if used.get("tuner"):
        details.append(f"{used['tuner']} tuner")
    if used.get("seed") is not None:
        details.append(f"seed {used['seed']}")
    st.markdown(f"The search scored its trials at the proxy budget **{used_name or 'unnamed'}**: "
                + ", ".join(details) + ".")

proxies, why = read_proxies(root / PROXY_FILENAME)
if not proxies:
    f.show_problem(
        f"No proxy check to show: `{d.display_path(root / PROXY_FILENAME)}` {why}. "
        "`python -m trainer.proxy_check` creates it: it trains each committed recipe at the proxy "
        "budget and measures (Spearman's rho) whether that ranks them as full training did.",
        icon=":material/rule:")
else:
    names = list(proxies)
    choice = names[0]
    if len(names) > 1:
        choice = st.radio(
            "Proxy budget", names, index=names.index(used_name) if used_name in names else 0,
            key="search_proxy", horizontal=True,
            format_func=lambda n: (f"{n} ({budget_text(proxies[n]['budget'])})"
                                   + (", used by the search" if n == used_name else "")))
    p = proxies[choice]
    cols = st.columns(4)
    if p["rho"] is None:
        cols[0].metric("Spearman rho, proxy vs full", "—",
                       help=f"This check has not finished ({len(p['rows'])} recipes scored so far); "
                            f"`python -m trainer.proxy_check --proxy {choice}` resumes it.")
    else:
        cols[0].metric("Spearman rho, proxy vs full", f"{p['rho']:.2f}",
                       delta=f"{p['rho'] - TARGET_RHO:+.2f} vs the {TARGET_RHO:g} target",
                       help=f"Rank correlation between the two accuracies over {len(p['rows'])} "
                            f"recipes; the proxy is trusted when rho >= {TARGET_RHO:g}.")
    if p["rho_family"] is not None:
        cols[1].metric("Spearman rho, airnets only", f"{p['rho_family']:.2f}",
                       help="Over the airnet recipes alone: the family the search varies.")
    cols[2].metric("Training time", "—" if p["seconds"] is None else f"{p['seconds'] / 60:.1f} min",
                   help="All the proxy runs of this check together.")
    cols[3].metric("Recipes", len(p["rows"]), help=budget_text(p["budget"])
                   + (f", seed {p['seed']}" if p["seed"] is not None else ""))
    if p["rho"] is None:
        st.caption(f"Unfinished: `python -m trainer.proxy_check --proxy {choice}` resumes this check.")
    if not p["rows"]:
        f.show_problem("No recipe has been scored at this budget yet.")
    else:
        pts = pd.DataFrame(p["rows"])
        fig = px.scatter(pts, x="proxy", y="full", text="recipe",
                         color="arch" if pts["arch"].nunique() > 1 else None,
                         hover_data={"recipe": True, "params": ":,.0f", "seconds": ":.0f",
                                     "source": True},
                         labels={"proxy": "proxy hold-out accuracy (training split)",
                                 "full": "full-budget test accuracy", "arch": "architecture",
                                 "source": "full-budget figure from"})
        fig.update_traces(textposition="top center",
                          marker=dict(size=12, opacity=0.85, line=dict(width=1, color="white")))
        fig.update_layout(height=400, xaxis_tickformat=".0%", yaxis_tickformat=".1%",
                          margin=dict(t=30, b=40, l=40, r=20), legend=dict(orientation="h", y=-0.2))
        f.chart(fig, key="search_proxy_scatter")
    st.caption(
        "Each point is one committed recipe. Across: its accuracy on a hold-out carved from the "
        "training split, after training at this proxy budget. Up: the test accuracy of its "
        "committed full-budget model, used only to check that the proxy ranks models as full "
        "training does, never to choose a model. Spearman's rho compares the two orderings "
        f"(1 = the same order); the search relies on the proxy only when rho >= {TARGET_RHO:g}.")


@st.cache_data(show_spinner=False, max_entries=4)
def read_trials(csv_path: str, json_path: str, signature: tuple) -> tuple[pd.DataFrame | None, str | None]:
    problems = []
    try:
        return pd.read_csv(csv_path, dtype={"trial_id": str, "status": str}), None
    except FileNotFoundError:
        pass
    except Exception as exc:
        problems.append(f"summary.csv could not be read ({exc.__class__.__name__})")
    try:
        with open(json_path, encoding="utf-8") as fh:
            data = json.load(fh)
        if isinstance(data, dict):  # the current summary: {"trials": [...], "best_trial_id", ...}
            data = data["trials"] if "trials" in data else data.get("rows", list(data.values()))
        if isinstance(data, list) and all(isinstance(r, dict) for r in data):
            return pd.DataFrame(data), None
        problems.append("summary.json does not hold a list of trials")
    except FileNotFoundError:
        pass
    except Exception as exc:
        problems.append(f"summary.json could not be read ({exc.__class__.__name__})")
    return None, "; ".join(problems) or None


def sig(*paths):
    out = []
    for p in paths:
        try:
            s = p.stat()
            out.append((s.st_mtime_ns, s.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


st.subheader("The trials")
csv_path, json_path = root / "summary.csv", root / "summary.json"
df, problem = read_trials(str(csv_path), str(json_path), sig(csv_path, json_path))
if df is None:
    f.show_problem(
        (f"The search summary could not be read: {problem}." if problem else
         f"No search results yet: `{d.display_path(root)}/summary.csv` does not exist. "
         "`python -m trainer.search` creates it."), icon=":material/search_off:")
    st.stop()
if df.empty:
    f.show_problem("The search summary holds no trials yet.")
    st.stop()

df = df.copy()
for col in ("val_accuracy", "params", "macs", "seconds"):
    if col in df:
        df[col] = pd.to_numeric(df[col], errors="coerce")
if "trial_id" not in df:
    df["trial_id"] = [f"{i:02d}" for i in range(len(df))]
df["trial_id"] = as_text(df["trial_id"])
if "status" not in df:
    df["status"] = "?"
hp_cols = [col for col in df.columns if col.startswith("hp_")]
has_acc = bool("val_accuracy" in df and df["val_accuracy"].notna().any())
has_params = bool("params" in df and df["params"].notna().any())

df = df.drop(columns=HAND, errors="ignore")
df.insert(min(1, len(df.columns)), HAND, df["trial_id"].map(is_hand_designed))
done = df[df["val_accuracy"].notna()] if has_acc else df.iloc[0:0]
# The best trial: the summary's own choice when it names a scored trial, else the top hold-out score.
best = None
if has_acc:
    named = done[done["trial_id"].map(lambda t: same_trial(t, meta.get("best_trial_id")))] \
        if meta.get("best_trial_id") is not None else done.iloc[0:0]
    best = named.iloc[0] if len(named) else done.loc[done["val_accuracy"].idxmax()]
hand = df[df[HAND]]
hand = hand.iloc[0] if len(hand) else None

m = st.columns(4)
m[0].metric("Trials", len(df))
m[1].metric("Finished with a score", len(done))
if best is not None:
    m[2].metric("Best hold-out accuracy", f.pct(best["val_accuracy"]), help=f"trial {best['trial_id']}")
    if has_params:
        small = done[done["params"].map(within_param_limit)]
        if len(small):
            b2 = small.loc[small["val_accuracy"].idxmax()]
            m[3].metric("Best under 1M params", f.pct(b2["val_accuracy"]),
                        help=f"trial {b2['trial_id']}, {f.count(b2['params'])} params")
        else:
            m[3].metric("Best under 1M params", "—")

# --------------------------------------------------------------------------------------------
# 2. The winner beside the hand-designed model

st.subheader("The winner beside the hand-designed model")
hand_acc = None if hand is None or not has_acc or pd.isna(hand["val_accuracy"]) else float(hand["val_accuracy"])
best_is_hand = best is not None and is_hand_designed(best["trial_id"])
c = st.columns(3)
c[0].metric(f"Hand-designed net (trial {hand['trial_id'] if hand is not None else '0'}), hold-out",
            f.pct(hand_acc),
            help="Trial 0 is the search space's default point: the shipped classifier's recipe, "
                 "at the proxy budget.")
if best is not None:
    c[1].metric(f"Best trial ({best['trial_id']}), hold-out", f.pct(best["val_accuracy"]),
                delta=None if hand_acc is None or best_is_hand
                else f"{100 * (best['val_accuracy'] - hand_acc):+.1f} points vs hand-designed")
if hand is None:
    st.caption("This summary has no trial 0, so the hand-designed net's proxy score is not known.")
elif hand_acc is None:
    st.caption(f"Trial {hand['trial_id']} (the hand-designed net) has no hold-out score.")
if best_is_hand:
    st.markdown("**The search's best proxy score is the hand-designed net itself** (trial "
                f"{best['trial_id']}): no searched setting beat it at the proxy budget.")

recipe = meta.get("best_recipe") if isinstance(meta.get("best_recipe"), dict) else {}
winner_name = f"{recipe.get('arch') or 'airnet'}_searched"  # the folder `train --recipe best` writes
man, _ = d.manifest()
shipped = man.get("classifier") if isinstance(man.get("classifier"), dict) else {}
shipped_name = str(shipped.get("name") or "")
hand_seeds = []
if shipped_name:
    hand_seeds = [(f"Hand-designed {shipped_name}, shipped", d.models_root() / shipped_name),
                  (f"Hand-designed {shipped_name}, second seed",
                   d.experiments_root() / f"{shipped_name}_seed1")]
winner_dir = next((p for p in (d.models_root() / winner_name, d.experiments_root() / winner_name)
                   if p.is_dir()), None)

st.markdown("**At the full budget** (test accuracy, measured after the choice was made)")
c = st.columns(3)
hand_full, notes = [], []
for col, (label, folder) in zip(c, hand_seeds):
    acc, note = full_budget(folder)
    col.metric(label, f.pct(acc), help=f"{d.display_path(folder)}/metrics.json")
    if acc is not None:
        hand_full.append(acc)
    if note:
        notes.append(f"{label}: {note} (`{d.display_path(folder)}`)")
if not shipped_name:
    notes.append("The deliverables manifest names no shipped classifier, so the hand-designed "
                 "net's test accuracy is not shown.")
if winner_dir is None:
    f.show_problem(
        f"The searched winner has not been trained at the full budget yet (no `{winner_name}` "
        f"folder in `{d.display_path(d.models_root())}` or `{d.display_path(d.experiments_root())}`). "
        "`python -m trainer.train --recipe best` trains the best trial's recipe with the shipped "
        f"classifier's budget, as `{winner_name}`.", icon=":material/model_training:")
else:
    acc, note = full_budget(winner_dir)
    mean = sum(hand_full) / len(hand_full) if hand_full else None
    c[2].metric(f"Searched winner ({winner_name})", f.pct(acc),
                delta=None if acc is None or mean is None
                else f"{100 * (acc - mean):+.1f} points vs hand-designed"
                     + (" (mean of seeds)" if len(hand_full) > 1 else ""),
                help=f"{d.display_path(winner_dir)}/metrics.json")
    if note:
        notes.append(f"{winner_name}: {note} (`{d.display_path(winner_dir)}`)")
    cfg, _ = d.read_json(winner_dir / "config.json")
    if cfg.get("trial_id") is not None and meta.get("best_trial_id") is not None \
            and not same_trial(cfg["trial_id"], meta["best_trial_id"]):
        notes.append(f"{winner_name} was trained from trial {cfg['trial_id']}, but the summary's "
                     f"best trial is now {meta['best_trial_id']}: retrain it with "
                     "`python -m trainer.train --recipe best`.")
if len(hand_full) == 2:
    notes.append(f"The hand-designed net's two seeds differ by {100 * abs(hand_full[0] - hand_full[1]):.1f} "
                 "points: a gap smaller than that is within seed noise.")
if notes:
    st.caption("  \n".join(notes))

view = df  # the charts need a score, so they use the scored trials only (below)


def as_numbers(series: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return numeric
    cats = sorted(as_text(series).unique())
    return as_text(series).map({v: i for i, v in enumerate(cats)}).astype(float)


def influence(col: str) -> float:
    """|Spearman correlation| of a setting with hold-out accuracy (0 when it cannot be said)."""
    if not has_acc or len(done) < 3:
        return 0.0
    x = as_numbers(done[col]).rank()
    y = done["val_accuracy"].rank()
    if x.nunique() < 2:
        return -1.0
    r = x.corr(y)
    return 0.0 if pd.isna(r) else abs(float(r))


varying = [col for col in hp_cols if as_text(df[col]).nunique() > 1]
ranked = sorted(varying, key=influence, reverse=True)

st.subheader("How the settings relate to accuracy")
shown_hps = st.multiselect(
    "Settings shown", hp_cols, default=ranked[:6], key="search_hps",
    format_func=lambda s: s.removeprefix("hp_"),
    help="By default the six settings whose values track accuracy most closely "
         "(rank correlation over the scored trials).")
with st.container():
    pview = view[view["val_accuracy"].notna()] if has_acc else view
    dims = []
    for col in shown_hps + [x for x in ("params", "macs", "seconds") if x in pview]:
        series = pview[col]
        numeric = pd.to_numeric(series, errors="coerce")
        label = {"params": "parameters", "macs": "MACs"}.get(col, col.removeprefix("hp_"))
        if numeric.notna().all() and len(series) and series.dtype != bool:
            values = numeric.to_numpy(dtype=float)
            spread = values.max() / max(values.min(), 1e-12) if (values > 0).all() else 0
            if col in ("params", "macs") or spread > 50:
                # log axis with readable ticks (200K, 500K, 1M, ...)
                logs = np.log10(np.maximum(values, 1e-12))
                nice = [m * 10 ** e for e in range(-6, 13) for m in (1, 2, 5)]
                ticks = [v for v in nice if logs.min() - 1e-9 <= np.log10(v) <= logs.max() + 1e-9]
                dims.append(dict(label=label, values=logs, tickvals=np.log10(ticks).tolist(),
                                 ticktext=[f.count(v) for v in ticks]))
            else:
                dims.append(dict(label=label, values=values, tickformat=".3~g"))
        else:
            cats = sorted(as_text(series).unique())
            codes = as_text(series).map({v: i for i, v in enumerate(cats)})
            dims.append(dict(label=label, values=codes, tickvals=list(range(len(cats))),
                             ticktext=cats))
    if has_acc:
        dims.append(dict(label="hold-out accuracy", values=pview["val_accuracy"].to_numpy(),
                         tickformat=".0%"))
    if len(dims) < 2 or pview.empty:
        f.show_problem("Not enough columns to draw parallel coordinates.")
    else:
        fig = go.Figure(go.Parcoords(
            line=dict(color=pview["val_accuracy"] if has_acc else None,
                      colorscale="Viridis", showscale=False),
            dimensions=dims))
        fig.update_layout(height=420, margin=dict(t=60, b=30, l=60, r=60))
        f.chart(fig, key="search_parcoords")
        st.caption("Each line is one scored trial, coloured by its accuracy (yellow = best); drag "
                   "along an axis to highlight a range.")

st.subheader("Accuracy against size")
left, right = st.columns([3, 2], gap="large")
with left:
    if not (has_acc and has_params):
        f.show_problem("The summary lacks accuracy or parameter counts.")
    else:
        pts = view[view["val_accuracy"].notna() & view["params"].notna()]
        options = ["status"] + hp_cols
        color = st.selectbox("Colour by", options, key="search_color",
                             index=options.index(ranked[0]) if ranked else 0,
                             format_func=lambda s: s.removeprefix("hp_"))
        numeric = pd.to_numeric(pts[color], errors="coerce")
        continuous = (pts[color].dtype != bool and numeric.notna().all()
                      and numeric.nunique() > 8)  # many values: a colour scale, not a legend
        shown = pts.assign(**{color: numeric if continuous else as_text(pts[color])})
        fig = px.scatter(shown, x="params", y="val_accuracy",
                         color=color, hover_data=["trial_id"] + hp_cols,
                         color_continuous_scale="Viridis",
                         labels={"params": "parameters", "val_accuracy": "hold-out accuracy"})
        fig.update_traces(marker=dict(size=12, opacity=0.85, line=dict(width=1, color="white")))
        fig.add_vline(x=MAX_PARAMS, line_dash="dash", line_color="#d62728",
                      annotation_text="1M parameter limit")
        marked = pts[pts[HAND]]
        if len(marked):  # trial 0, the hand-designed net the search has to beat
            fig.add_trace(go.Scatter(
                x=marked["params"], y=marked["val_accuracy"], mode="markers+text",
                text=[HAND] * len(marked), textposition="bottom center", name=f"{HAND} (trial 0)",
                customdata=marked[["trial_id"]], hovertemplate="trial %{customdata[0]} (hand-designed)"
                "<br>parameters %{x:,.0f}<br>hold-out accuracy %{y:.1%}<extra></extra>",
                marker=dict(symbol="star", size=20, color="rgba(0,0,0,0)",
                            line=dict(width=2, color="#d62728"))))
        fig.update_layout(height=370, yaxis_tickformat=".0%", margin=dict(t=30, b=40, l=40, r=20),
                          legend=dict(orientation="h", y=-0.25))
        f.chart(fig, key="search_scatter")

with right:
    if best is not None:
        with st.container(border=True):
            st.markdown(f"**Best trial: {best['trial_id']}**"
                        + (" (the hand-designed net)" if best_is_hand else ""))
            items = [("Hold-out accuracy", f.pct(best["val_accuracy"]), "big")]
            if "params" in best:
                ok = None if pd.isna(best["params"]) else within_param_limit(best["params"])
                items.append(("Parameters", f.count(None if pd.isna(best["params"]) else best["params"]),
                              "" if ok is None else ("good" if ok else "bad")))
            if "macs" in best:
                items.append(("MACs / image", f.count(None if pd.isna(best["macs"]) else best["macs"]), ""))
            st.markdown(f.kpi_grid(items), unsafe_allow_html=True)
            if hp_cols:
                st.dataframe(pd.DataFrame({"setting": [h.removeprefix("hp_") for h in hp_cols],
                                           "value": [f.fmt_any(best[h]) for h in hp_cols]}),
                             hide_index=True, width="stretch", height=260)

st.subheader("All trials")
with st.container():
    only_done = st.toggle("Only trials with a score", value=False, key="search_only_done")
    view = done if only_done else df
    table = view.sort_values("val_accuracy", ascending=False) if has_acc else view
    cfg = {col: st.column_config.TextColumn(col.removeprefix("hp_")) for col in hp_cols}
    cfg[HAND] = st.column_config.CheckboxColumn(
        HAND, help="Trial 0: the search space's default point, the shipped classifier's recipe")
    if has_acc:
        cfg["val_accuracy"] = st.column_config.ProgressColumn(
            "hold-out accuracy", format="percent", min_value=0.0, max_value=1.0)
    if "params" in view:
        cfg["params"] = st.column_config.NumberColumn("params", format="compact")
    if "macs" in view:
        cfg["macs"] = st.column_config.NumberColumn("MACs", format="compact")
    if "seconds" in view:
        cfg["seconds"] = st.column_config.NumberColumn("seconds", format="%.0f")
    if "accuracy" in view:
        cfg["accuracy"] = st.column_config.NumberColumn("accuracy", format="percent")
    st.dataframe(table, hide_index=True, width="stretch", column_config=cfg)

