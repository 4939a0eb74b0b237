"""Confusion matrix explorer: which classes a model mixes up, and the test images behind each cell."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from dashboard import caching as cache
from dashboard import discovery as d
from dashboard import formatting as f
from trainer.constants import TEST_IMAGES
from trainer.data import CLASS_NAMES
from trainer.metrics import (class_recall, classification_report, confusion_matrix, most_confused_pairs,
                             paired_test, same_test_images)

CLASSES = list(CLASS_NAMES)

f.page_header("Confusion matrix explorer",
              "Rows are the true classes of the test images, columns what the model "
              "predicted. Pick a cell (click it, or use the boxes below) to see those images.")

models = d.usable_models(need="predictions")
if not models:
    all_models, problem = d.discover_models()
    f.show_problem(problem or "No model has saved test predictions yet. Run "
                   "`python -m trainer.evaluate saved_models/<name>` to create them.")
    st.stop()

top = st.columns([3, 1.2, 1.2, 2.2])
with top[0]:
    entry = f.model_picker(models, key="cm_model")

try:
    probs, labels = cache.predictions(entry)
except cache.DashboardDataError as exc:
    f.show_problem(str(exc), icon=":material/error:")
    st.stop()


pred = probs.argmax(1)
report = classification_report(labels, pred, CLASSES)
cm = np.asarray(report["confusion_matrix"])
support = cm.sum(1)
predicted = cm.sum(0)
precision = np.array([r["precision"] for r in report["per_class"]])
recall = np.array([r["recall"] for r in report["per_class"]])
f1 = np.array([r["f1"] for r in report["per_class"]])
off = cm.copy()
np.fill_diagonal(off, 0)
pairs = [(CLASSES.index(p["true"]), CLASSES.index(p["predicted"]))
         for p in most_confused_pairs(cm, CLASSES, top=10)]

if len(labels) < TEST_IMAGES:
    st.warning(f"{entry.name}'s saved predictions cover only {len(labels):,} test images (a smoke run), "
               f"not the {TEST_IMAGES:,} of the test split: these figures are not results.",
               icon=":material/warning:")
else:
    st.caption(f"{len(labels):,} test images.")

top[1].metric("Accuracy", f.pct(report["accuracy"]))
top[2].metric("Macro F1", f.pct(report["macro_avg"]["f1"]))
if pairs:
    t0, p0 = pairs[0]
    top[3].metric("Most confused", f"{CLASSES[t0]} → {CLASSES[p0]}",
                  help=f"{off[t0, p0]} {CLASSES[t0]} images predicted as {CLASSES[p0]}")

# ---- the chosen cell lives in session state; the heatmap, the pair buttons and the boxes set it
if "cm_true" not in st.session_state:
    st.session_state["cm_true"], st.session_state["cm_pred"] = (
        (CLASSES[pairs[0][0]], CLASSES[pairs[0][1]]) if pairs else (CLASSES[0], CLASSES[0]))


def on_heatmap_select() -> None:
    state = st.session_state.get("cm_heatmap")
    try:
        points = state["selection"]["points"]
    except (KeyError, TypeError):
        return
    if points:
        x, y = points[0].get("x"), points[0].get("y")
        if x in CLASSES and y in CLASSES:
            st.session_state["cm_true"], st.session_state["cm_pred"] = y, x


def on_pair_pick() -> None:
    choice = st.session_state.get("cm_pair")
    if choice and " → " in choice:
        t, p = choice.split(" → ")
        st.session_state["cm_true"], st.session_state["cm_pred"] = t, p
    st.session_state["cm_pair"] = None


left, right = st.columns([6, 5], gap="large")

with left:
    mode = st.segmented_control("Show", ["Counts", "Normalised"], default="Counts",
                                key="cm_mode",
                                help="Normalised: each row divided by its class size, "
                                     "so a cell is the share of that true class.") or "Counts"
    if mode == "Normalised":
        z = cm / np.maximum(support[:, None], 1)
        text = [[f"{v:.0%}" if v >= 0.005 else "" for v in row] for row in z]
        hover = "true %{y}<br>predicted %{x}<br>%{z:.1%} of the class<extra></extra>"
    else:
        z = cm
        text = [[str(v) if v else "" for v in row] for row in cm]
        hover = "true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>"
    # Cap the colour scale so the off-diagonal mistakes stay visible.
    zc = np.asarray(z, dtype=float)
    diag_cap = np.max(np.where(np.eye(len(CLASSES), dtype=bool), 0, zc)) * 1.5 or 1.0
    fig = go.Figure(go.Heatmap(
        z=np.minimum(zc, diag_cap), x=CLASSES, y=CLASSES, text=text, texttemplate="%{text}",
        hoverinfo="skip", colorscale="Blues", showscale=False, xgap=1, ygap=1))
    # Heatmaps do not report clicks to Streamlit; an invisible square marker on every cell does.
    gx, gy = np.meshgrid(np.arange(len(CLASSES)), np.arange(len(CLASSES)))
    fig.add_trace(go.Scatter(
        x=[CLASSES[i] for i in gx.ravel()], y=[CLASSES[j] for j in gy.ravel()], mode="markers",
        marker=dict(symbol="square", size=34, color="rgba(0,0,0,0)"),
        customdata=zc.ravel(), hovertemplate=hover.replace("%{z", "%{customdata"),
        showlegend=False))
    t_sel, p_sel = st.session_state["cm_true"], st.session_state["cm_pred"]
    fig.add_shape(type="rect", x0=CLASSES.index(p_sel) - 0.5, x1=CLASSES.index(p_sel) + 0.5,
                  y0=CLASSES.index(t_sel) - 0.5, y1=CLASSES.index(t_sel) + 0.5,
                  line=dict(color="#ff7f0e", width=3))
    fig.update_layout(height=600, margin=dict(t=10, b=10, l=10, r=10), clickmode="event+select",
                      dragmode=False,
                      xaxis=dict(title="predicted class", tickangle=-35),
                      yaxis=dict(title="true class", autorange="reversed"))
    f.chart(fig, key="cm_heatmap", on_select=on_heatmap_select,
                    selection_mode="points")
    st.caption("Colours are capped so the large diagonal (correct answers) does not drown out "
               "the mistakes; hover a cell for exact numbers.")

with right:
    tab_prf, tab_acc, tab_pairs = st.tabs(["Precision / recall / F1", "Accuracy per class",
                                           "Most confused pairs"])
    with tab_prf:
        fig = go.Figure()
        for name, values, color in (("precision", precision, "#4c78a8"),
                                    ("recall", recall, "#f58518"), ("F1", f1, "#54a24b")):
            fig.add_trace(go.Bar(x=CLASSES, y=values * 100, name=name, marker_color=color,
                                 hovertemplate="%{x}: %{y:.1f}%<extra>" + name + "</extra>"))
        fig.update_layout(barmode="group", height=480, yaxis_title="%",
                          yaxis_range=[max(0, min((precision.min(), recall.min())) * 100 - 10), 100],
                          legend=dict(orientation="h", y=1.1), margin=dict(t=30, b=20, l=20, r=20))
        f.chart(fig, key="cm_prf")
    with tab_acc:
        order = np.argsort(recall)
        fig = go.Figure(go.Bar(
            x=recall[order] * 100, y=[CLASSES[i] for i in order], orientation="h",
            text=[f"{v:.1%}" for v in recall[order]], textposition="auto",
            marker_color=["#e45756" if v < recall.mean() else "#4c78a8" for v in recall[order]]))
        fig.add_vline(x=float((pred == labels).mean()) * 100, line_dash="dot",
                      annotation_text="overall")
        fig.update_layout(height=480, xaxis_title="accuracy on the class (%)",
                          xaxis_range=[0, 100], margin=dict(t=30, b=20, l=20, r=20))
        f.chart(fig, key="cm_acc")
    with tab_pairs:
        if not pairs:
            st.success("No mistakes at all.")
        else:
            df = pd.DataFrame({
                "true class": [CLASSES[t] for t, _ in pairs],
                "predicted as": [CLASSES[p] for _, p in pairs],
                "images": [int(off[t, p]) for t, p in pairs],
                "share of class": [off[t, p] / max(support[t], 1) for t, p in pairs],
            })
            st.dataframe(df, hide_index=True, width="stretch", column_config={
                "share of class": st.column_config.ProgressColumn(
                    "share of class", format="percent", min_value=0,
                    max_value=float(df["share of class"].max()))})
            st.pills("Show a pair", [f"{CLASSES[t]} → {CLASSES[p]}" for t, p in pairs[:6]],
                     key="cm_pair", on_change=on_pair_pick)

    with st.expander("Per-class table"):
        st.dataframe(pd.DataFrame({
            "class": CLASSES, "precision": precision, "recall": recall, "F1": f1,
            "support": support, "predicted": predicted}).style.format(
                {"precision": "{:.3f}", "recall": "{:.3f}", "F1": "{:.3f}"}),
            hide_index=True, width="stretch")

# ---- is another model really better? A paired test on the same test images


def luck_of_training() -> tuple[float, str] | None:
    """The largest accuracy gap between two saved runs of one recipe that differ only in the seed
    (points), and where it comes from; None when no such pair is saved."""
    everything, _ = d.discover_models()
    found = d.seed_spread(everything)
    if found is None:
        return None
    gap, a, b = found
    return gap, f"{a.name} and {b.name}"


def verdict(a: str, b: str, result: dict, n_images: int) -> str:
    diff, p = result["difference_points"], result["p_value"]
    if diff == 0:
        return f"**{a}** and **{b}** are equally accurate on these test images."
    better, worse = (b, a) if diff > 0 else (a, b)
    if p >= 0.05:
        return (f"**{better}** is {abs(diff):.2f} points ahead of **{worse}**, but a gap this size could be "
                f"the luck of which images are in the test set (p = {p:.2f}): on another {n_images:,} photos "
                "the order could flip. Treat them as equally accurate.")
    beyond_test_luck = (f"**{better}** is {abs(diff):.2f} points more accurate than **{worse}**, and that gap "
                        f"is larger than the luck of which images are in the test set would explain (p = {p:.3f})")
    spread = luck_of_training()
    if spread is None:
        return (f"{beyond_test_luck}. No two saved runs of one recipe with different seeds are here to "
                "gauge the luck of training; retrain both before calling one better.")
    points, runs = spread
    if abs(diff) > points:
        return (f"{beyond_test_luck}. It is also larger than the {points:.2f} points between two "
                f"training runs of one recipe here ({runs}), though one pair of runs is only a "
                "rough gauge of training luck.")
    return (f"{beyond_test_luck}, but not than the luck of training: two training runs of the same recipe "
            f"here ({runs}) differed by {points:.2f} points. Retrain both before calling one better.")


rivals = [m for m in models if m.path != entry.path]
with st.expander("Compare with another model", icon=":material/compare_arrows:"):
    if not rivals:
        st.info("Only one model has saved test predictions, so there is nothing to compare it with yet.")
    else:
        names = [m.path.name for m in rivals]
        rival = rivals[names.index(st.selectbox("Compare with", names, key="cm_rival"))]
        try:
            rival_probs, rival_labels = cache.predictions(rival)
        except cache.DashboardDataError as exc:
            f.show_problem(str(exc), icon=":material/error:")
        else:
            if not same_test_images(rival_labels, labels):
                f.show_problem(f"{entry.name} and {rival.name} were evaluated on different test images, "
                               "so they cannot be compared image by image. Re-evaluate both on the same data.",
                               icon=":material/error:")
            else:
                rival_pred = rival_probs.argmax(1)
                result = paired_test(pred == labels, rival_pred == labels)
                cols = st.columns(4)
                cols[0].metric(f"{rival.name} accuracy", f.pct(float((rival_pred == labels).mean()), 2),
                               delta=f"{result['difference_points']:+.2f} points", delta_color="normal")
                cols[1].metric(f"Right only by {entry.name}", f"{result['only_baseline_right']:,}")
                cols[2].metric(f"Right only by {rival.name}", f"{result['only_model_right']:,}")
                cols[3].metric("p-value", f"{result['p_value']:.3f}",
                               help="Exact McNemar test. The images both models get right, or both "
                                    "get wrong, say nothing about which is better; among those where "
                                    "they disagree, equally good models would each win about half.")
                st.markdown(verdict(entry.name, rival.name, result, len(labels)))
                gain = (class_recall(confusion_matrix(labels, rival_pred, len(CLASSES))) - recall) * 100
                fig = go.Figure(go.Bar(
                    x=CLASSES, y=gain, marker_color=["#54a24b" if v >= 0 else "#e45756" for v in gain],
                    hovertemplate="%{x}: %{y:+.1f} points<extra></extra>"))
                fig.update_layout(height=320, yaxis_title=f"{rival.name} minus {entry.name} (points)",
                                  margin=dict(t=20, b=20, l=20, r=20))
                f.chart(fig, key="cm_rival_classes")
                st.caption("Per-class accuracy difference. Each class has about 1,000 test images, so "
                           "a class moving by a point or two can be chance.")

# ---- gallery for the chosen cell
st.divider()
cols = st.columns([1, 1, 1])
cols[0].selectbox("True class", CLASSES, key="cm_true")
cols[1].selectbox("Predicted as", CLASSES, key="cm_pred")
limit = cols[2].select_slider("Images to show", [8, 16, 32, 64], value=16, key="cm_limit")
t_idx, p_idx = CLASSES.index(st.session_state["cm_true"]), CLASSES.index(st.session_state["cm_pred"])
cell = np.flatnonzero((labels == t_idx) & (pred == p_idx))
cell = cell[np.argsort(-probs[cell, p_idx])]  # most confident first

verb = "correctly recognised" if t_idx == p_idx else f"predicted as **{CLASSES[p_idx]}**"
st.subheader(f"{CLASSES[t_idx]} → {CLASSES[p_idx]}: {len(cell)} images")
st.caption(f"Test images whose true class is **{CLASSES[t_idx]}**, {verb}; most confident first, "
           "with the model's top-3 probabilities. Images are 32×32 pixels, enlarged for viewing.")

if len(cell) == 0:
    st.info("No test image falls in this cell.")
    st.stop()

try:
    x_test, y_test, source = cache.test_set()
except cache.DashboardDataError as exc:
    f.show_problem(f"The images cannot be shown: {exc}", icon=":material/image_not_supported:")
    st.stop()
if len(x_test) != len(labels) or not np.array_equal(y_test, labels):
    st.warning("The saved predictions do not line up with the test images on this machine "
               "(different archive or order), so the pictures below may not match.",
               icon=":material/warning:")
    cell = cell[cell < len(x_test)]

PER_ROW = 8
shown = cell[:limit]
for start in range(0, len(shown), PER_ROW):
    row = st.columns(PER_ROW)
    for col, i in zip(row, shown[start:start + PER_ROW]):
        top3 = np.argsort(-probs[i])[:3]
        caption = " · ".join(f"{CLASSES[k]} {probs[i, k]:.0%}" for k in top3)
        img = Image.fromarray(x_test[i]).resize((128, 128), Image.Resampling.LANCZOS)
        col.image(img, caption=f"#{i}: {caption}", width="stretch")
if len(cell) > limit:
    st.caption(f"Showing {limit} of {len(cell)}.")
