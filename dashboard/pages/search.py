"""Search results: the KerasTuner trials summarised in tuning/summary.csv (or summary.json)."""

import json

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import common as c

c.page_header("Architecture search",
              "Every KerasTuner trial: the settings it tried, its size and its accuracy on the "
              "hold-out images (carved from the training set; the test set is never used to choose).")

root = c.tuning_root()


@st.cache_data(show_spinner=False, max_entries=4)
def read_trials(csv_path: str, json_path: str, signature: tuple) -> tuple[pd.DataFrame | None, str | None]:
    problems = []
    try:
        return pd.read_csv(csv_path), None
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
    c.show_problem(
        (f"The search summary could not be read: {problem}." if problem else
         f"No search results yet: `{c.display_path(root)}/summary.csv` does not exist. "
         "Run the KerasTuner search to create it."), icon=":material/search_off:")
    st.stop()
if df.empty:
    c.show_problem("The search summary holds no trials yet.")
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
    m[2].metric("Best hold-out accuracy", c.pct(best["val_accuracy"]), help=f"trial {best['trial_id']}")
    if has_params:
        small = done[done["params"] <= c.PARAM_LIMIT]
        if len(small):
            b2 = small.loc[small["val_accuracy"].idxmax()]
            m[3].metric("Best under 1M params", c.pct(b2["val_accuracy"]),
                        help=f"trial {b2['trial_id']}, {c.count(b2['params'])} params")
        else:
            m[3].metric("Best under 1M params", "—")

only_done = st.toggle("Only trials with a score", value=False, key="search_only_done")
view = done if only_done else df

tab_table, tab_par, tab_scatter = st.tabs(["Table", "Parallel coordinates", "Accuracy vs size"])

with tab_table:
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
    st.dataframe(table, hide_index=True, width="stretch", column_config=cfg)

with tab_par:
    dims = []
    for col in hp_cols + [x for x in ("params", "macs", "seconds") if x in view]:
        series = view[col]
        numeric = pd.to_numeric(series, errors="coerce")
        label = col.removeprefix("hp_")
        if numeric.notna().all() and len(series):
            values = numeric.to_numpy(dtype=float)
            if col in ("params", "macs") or (values > 0).all() and values.max() / max(values.min(), 1e-12) > 50:
                dims.append(dict(label=f"{label} (log10)", values=np.log10(np.maximum(values, 1e-12))))
            else:
                dims.append(dict(label=label, values=values))
        else:
            cats = sorted(series.astype(str).unique())
            codes = series.astype(str).map({v: i for i, v in enumerate(cats)})
            dims.append(dict(label=label, values=codes, tickvals=list(range(len(cats))),
                             ticktext=cats))
    if has_acc:
        acc = view["val_accuracy"].fillna(0).to_numpy()
        dims.append(dict(label="hold-out acc", values=acc))
    if len(dims) < 2 or view.empty:
        c.show_problem("Not enough columns to draw parallel coordinates.")
    else:
        fig = go.Figure(go.Parcoords(
            line=dict(color=view["val_accuracy"].fillna(0) if has_acc else None,
                      colorscale="Viridis", showscale=has_acc,
                      colorbar=dict(title="acc")),
            dimensions=dims))
        fig.update_layout(height=480, margin=dict(t=60, b=30, l=60, r=60))
        c.chart(fig, key="search_parcoords")
        st.caption("Each line is one trial; drag along an axis to filter. Unscored trials sit at 0.")

with tab_scatter:
    if not (has_acc and has_params):
        c.show_problem("The summary lacks accuracy or parameter counts.")
    else:
        pts = view[view["val_accuracy"].notna() & view["params"].notna()]
        color = st.selectbox("Colour by", ["status"] + hp_cols, key="search_color",
                             format_func=lambda s: s.removeprefix("hp_"))
        fig = px.scatter(pts.assign(**{color: pts[color].astype(str)}), x="params", y="val_accuracy",
                         color=color, hover_data=["trial_id"] + hp_cols,
                         labels={"params": "parameters", "val_accuracy": "hold-out accuracy"})
        fig.update_traces(marker=dict(size=12, opacity=0.85, line=dict(width=1, color="white")))
        fig.add_vline(x=c.PARAM_LIMIT, line_dash="dash", line_color="#d62728",
                      annotation_text="1M parameter limit")
        fig.update_layout(height=460, yaxis_tickformat=".0%", margin=dict(t=40, b=40, l=40, r=20))
        c.chart(fig, key="search_scatter")
