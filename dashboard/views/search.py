"""Search results: the KerasTuner trials summarised in tuning/summary.csv (or summary.json)."""

import json

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import discovery as d
from dashboard import formatting as f
from trainer.constants import MAX_PARAMS, within_param_limit

f.page_header("Architecture search",
              "Every KerasTuner trial: the settings it tried, its size and its accuracy on the "
              "hold-out images (carved from the training set; the test set is never used to choose).")

root = d.tuning_root()


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
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):
            data = data.get("trials") or data.get("rows") or list(data.values())
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


csv_path, json_path = root / "summary.csv", root / "summary.json"
df, problem = read_trials(str(csv_path), str(json_path), sig(csv_path, json_path))
if df is None:
    f.show_problem(
        (f"The search summary could not be read: {problem}." if problem else
         f"No search results yet: `{d.display_path(root)}/summary.csv` does not exist. "
         "Run the KerasTuner search to create it."), icon=":material/search_off:")
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
df["trial_id"] = df["trial_id"].astype(str)
if "status" not in df:
    df["status"] = "?"
hp_cols = [col for col in df.columns if col.startswith("hp_")]
has_acc = bool("val_accuracy" in df and df["val_accuracy"].notna().any())
has_params = bool("params" in df and df["params"].notna().any())

done = df[df["val_accuracy"].notna()] if has_acc else df.iloc[0:0]
m = st.columns(4)
m[0].metric("Trials", len(df))
m[1].metric("Finished with a score", len(done))
if has_acc:
    best = done.loc[done["val_accuracy"].idxmax()]
    m[2].metric("Best hold-out accuracy", f.pct(best["val_accuracy"]), help=f"trial {best['trial_id']}")
    if has_params:
        small = done[done["params"].map(within_param_limit)]
        if len(small):
            b2 = small.loc[small["val_accuracy"].idxmax()]
            m[3].metric("Best under 1M params", f.pct(b2["val_accuracy"]),
                        help=f"trial {b2['trial_id']}, {f.count(b2['params'])} params")
        else:
            m[3].metric("Best under 1M params", "—")

view = df  # the charts need a score, so they use the scored trials only (below)


def as_numbers(series: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return numeric
    cats = sorted(series.astype(str).unique())
    return series.astype(str).map({v: i for i, v in enumerate(cats)}).astype(float)


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


varying = [col for col in hp_cols if df[col].astype(str).nunique() > 1]
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
            cats = sorted(series.astype(str).unique())
            codes = series.astype(str).map({v: i for i, v in enumerate(cats)})
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
        shown = pts.assign(**{color: numeric if continuous else pts[color].astype(str)})
        fig = px.scatter(shown, x="params", y="val_accuracy",
                         color=color, hover_data=["trial_id"] + hp_cols,
                         color_continuous_scale="Viridis",
                         labels={"params": "parameters", "val_accuracy": "hold-out accuracy"})
        fig.update_traces(marker=dict(size=12, opacity=0.85, line=dict(width=1, color="white")))
        fig.add_vline(x=MAX_PARAMS, line_dash="dash", line_color="#d62728",
                      annotation_text="1M parameter limit")
        fig.update_layout(height=370, yaxis_tickformat=".0%", margin=dict(t=30, b=40, l=40, r=20),
                          legend=dict(orientation="h", y=-0.25))
        f.chart(fig, key="search_scatter")

with right:
    if has_acc and len(done):
        best = done.loc[done["val_accuracy"].idxmax()]
        with st.container(border=True):
            st.markdown(f"**Best trial: {best['trial_id']}**")
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

