"""Overview: the deliverables first, each with what it is for; the experiments in a collapsed,
filterable table; accuracy against latency and size."""

import html
import re

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import discovery as d
from dashboard import formatting as f
from trainer.constants import MAX_LATENCY_MS, MAX_PARAMS, within_latency_limit, within_param_limit

f.page_header("Model overview",
              "The models this project ships, measured on the 10,000 CIFAR-10 test images, then the "
              f"experiments behind them. Our targets: under {f.count(MAX_PARAMS)} parameters and at most "
              f"{MAX_LATENCY_MS:.0f} ms per image on one CPU thread.")

models, problem = d.discover_models()
if problem:
    f.show_problem(problem, icon=":material/folder_off:")
    st.stop()

LAT_LABELS = {"keras": "Keras", "tflite": "TFLite"}
lat_kind = st.segmented_control(
    "Latency shown", options=list(LAT_LABELS), format_func=LAT_LABELS.get, default="keras",
    key="overview_latency_kind",
    help="Median milliseconds per image on one CPU thread, as recorded by `trainer.evaluate`. "
         "The Live latency page measures it again on this machine.") or "keras"


def within(entry: d.ModelEntry) -> tuple[bool | None, bool | None]:
    p, lat = entry.params, entry.latency(lat_kind)
    return (None if p is None else within_param_limit(p),
            None if lat is None else within_latency_limit(lat))


deliverables = [m for m in models if m.kind == "deliverable"]
saved_others = [m for m in models if m.kind == "model"]
experiments = [m for m in models if m.kind == "experiment"]
shipped = d.default_model(deliverables or saved_others)

# ---- headline numbers: the shipped classifier, not whichever model scores highest
cols = st.columns(4)
cols[0].metric("Shipped classifier", f.pct(shipped.accuracy) if shipped else "—",
               help=shipped.name if shipped else None)
cols[1].metric("Deliverables", len(deliverables) + (1 if d.text2image_metrics() else 0))
cols[2].metric("Experiments", len(experiments))
evaluated = [m for m in models if m.accuracy is not None and m.full_test]
in_budget = [m for m in evaluated if within(m) == (True, True)]
cols[3].metric("Within both targets", f"{len(in_budget)} of {len(evaluated)}" if evaluated else "—")


# ---- cards
def badge(ok: bool | None, yes: str, no: str) -> str:
    if ok is None:
        return ""
    return f":green-badge[:material/check: {yes}]" if ok else f":red-badge[:material/close: {no}]"


@st.dialog("Evaluation report", width="large")
def show_report(entry: d.ModelEntry) -> None:
    report = entry.path / "report.md"
    if report.is_file():
        try:
            text = report.read_text(encoding="utf-8")[:50000]
            # local image links cannot resolve in the browser; the PNG is shown below instead
            text = re.sub(r"!\[[^\]]*\]\((?!https?:)[^)]*\)", "", text)
            st.markdown(text)
        except (OSError, UnicodeDecodeError):
            st.warning("report.md could not be read.")
    cm_png = entry.path / "confusion_matrix.png"
    if cm_png.is_file():
        try:
            st.image(str(cm_png), caption="Confusion matrix (counts)")
        except Exception:
            st.warning("confusion_matrix.png could not be shown.")


def card(entry: d.ModelEntry) -> None:
    with st.container(border=True):
        sub = html.escape(entry.arch) if entry.arch and entry.arch != entry.name else "&nbsp;"
        st.markdown(f'<div class="card-title">{html.escape(entry.name)}</div>'
                    f'<div class="card-sub">{sub}</div>', unsafe_allow_html=True)
        if entry.role_text:
            st.markdown(entry.role_text)
        p_ok, l_ok = within(entry)
        badges = " ".join(b for b in (badge(p_ok, "under 1M params", "over 1M params"),
                                      badge(l_ok, f"under {MAX_LATENCY_MS:.0f} ms",
                                            f"over {MAX_LATENCY_MS:.0f} ms")) if b)
        if badges:
            st.markdown(badges)
        for problem in entry.problems:
            st.warning(problem, icon=":material/warning:")
        for note in entry.notes:
            st.caption(f":material/info: {note}")

        def cls(ok):
            return "" if ok is None else ("good" if ok else "bad")

        st.markdown(f.kpi_grid([
            ("Accuracy", f.pct(entry.accuracy), "big"),
            ("Parameters", f.count(entry.params), cls(p_ok)),
            ("MACs / image", f.count(entry.macs), ""),
            ("TFLite size", f.nbytes(entry.size_bytes("tflite")), ""),
            (f"Latency ({LAT_LABELS[lat_kind]})", f.ms(entry.latency(lat_kind)), cls(l_ok)),
            ("Training time", f.duration(entry.training_time_s), ""),
        ]), unsafe_allow_html=True)
        if (entry.path / "report.md").is_file() or (entry.path / "confusion_matrix.png").is_file():
            if st.button("Full report", key=f"report_{entry.kind}_{entry.path.name}",
                         icon=":material/description:", type="tertiary"):
                show_report(entry)


PER_ROW = 3


def card_rows(entries) -> None:
    for start in range(0, len(entries), PER_ROW):
        cols = st.columns(PER_ROW)
        for col, entry in zip(cols, entries[start:start + PER_ROW]):
            with col:
                card(entry)


st.subheader("Deliverables")
if not deliverables:
    st.caption(f"No deliverables manifest (`{d.MANIFEST_FILENAME}`) in the models folder: "
               "every saved model is listed below.")
cards = deliverables if deliverables else saved_others
t2i_metrics = d.text2image_metrics()
t2i_role = (d.manifest()[0].get("text_to_image") or {}).get("role", "")
for start in range(0, len(cards) + (1 if t2i_metrics else 0), PER_ROW):
    cols = st.columns(PER_ROW)
    for i, col in enumerate(cols):
        k = start + i
        with col:
            if k < len(cards):
                card(cards[k])
            elif k == len(cards) and t2i_metrics:
                with st.container(border=True):
                    st.markdown('<div class="card-title">Text-to-image model</div>'
                                '<div class="card-sub">latent diffusion, trained on CIFAR-10</div>',
                                unsafe_allow_html=True)
                    if t2i_role:
                        st.markdown(t2i_role)
                    st.markdown(f.kpi_grid(f.text2image_kpis(t2i_metrics), columns=2), unsafe_allow_html=True)
                    st.page_link("views/prompt.py", label="Try it on the Prompt to image page",
                                 icon=":material/brush:")

if deliverables and saved_others:
    st.subheader("Other saved models")
    card_rows(saved_others)

# ---- experiments: figures only (no weights), collapsed
with st.expander(f"Experiments ({len(experiments)}): the runs behind the deliverables",
                 icon=":material/science:", expanded=False):
    if not experiments:
        st.caption(f"No experiment folders in `{d.display_path(d.experiments_root())}`.")
    else:
        query = st.text_input("Filter by name or architecture", key="overview_filter",
                              placeholder="e.g. dense, cutout, seed")
        words = query.lower().split()
        shown = [m for m in experiments
                 if all(w in f"{m.name} {m.arch}".lower() for w in words)]
        st.dataframe(pd.DataFrame([{
            "experiment": m.name, "architecture": m.arch, "accuracy": m.accuracy,
            "parameters": m.params, "MACs": m.macs,
            f"latency {LAT_LABELS[lat_kind]} (ms)": m.latency(lat_kind),
            "training time (min)": None if m.training_time_s is None else m.training_time_s / 60,
            "test images": m.test_images,
            "note": "; ".join(m.problems + m.notes),
        } for m in shown]), hide_index=True, width="stretch", key="overview_experiments",
            column_config={"accuracy": st.column_config.NumberColumn(format="percent"),
                           "parameters": st.column_config.NumberColumn(format="compact"),
                           "MACs": st.column_config.NumberColumn(format="compact"),
                           "training time (min)": st.column_config.NumberColumn(format="%.0f")})
        st.caption(f"{len(shown)} of {len(experiments)} shown. Experiments keep their figures and test "
                   "predictions (open them in the Confusion explorer) but no weights.")

# ---- scatter plots
st.subheader("Accuracy against speed and size")
plotted = [m for m in models if m.accuracy is not None and m.full_test]
if not plotted:
    f.show_problem("No model has been evaluated yet, so there is nothing to plot.")
    st.stop()

left, right = st.columns(2)
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b",
           "#ff9da6", "#9d755d", "#bab0ac")
# Deliverables (and other saved models) in colour with a legend entry; experiments as grey dots.
COLOR = {m.path.name: PALETTE[i % len(PALETTE)] for i, m in enumerate(m for m in plotted if m.kind != "experiment")}
GREY = "#bab0ac"
LEGEND = dict(orientation="h", y=-0.22, x=0, yanchor="top", title_text="")

with left:
    pts = [m for m in plotted if m.latency(lat_kind) is not None]
    if not pts:
        f.show_problem(f"No {LAT_LABELS[lat_kind]} latency recorded yet.")
    else:
        import math

        fig = go.Figure()
        max_params = max((m.params or 0) for m in pts) or 1
        lats = [m.latency(lat_kind) for m in pts]
        # Log scale: sub-millisecond TFLite and tens-of-ms models both stay readable.
        x_lo = math.log10(max(min(lats), 1e-3) / 2.5)
        x_hi = math.log10(max(max(lats), MAX_LATENCY_MS) * 2.5)
        ys = [100 * m.accuracy for m in pts]
        pad = max(3.0, 0.12 * (max(ys) - min(ys)))
        ymin, ymax = min(ys) - pad, max(ys) + 1.5 * pad  # room for the labels above
        fig.add_shape(type="rect", x0=10 ** x_lo, x1=MAX_LATENCY_MS, y0=ymin, y1=ymax,
                      fillcolor="rgba(46,160,67,0.08)", line_width=0, layer="below")
        fig.add_vline(x=MAX_LATENCY_MS, line_dash="dash", line_color="#d62728")
        # (annotations on a log axis take log10 coordinates)
        fig.add_annotation(x=math.log10(MAX_LATENCY_MS), y=1, yref="paper", yanchor="bottom",
                           xanchor="right", text=f"{MAX_LATENCY_MS:.0f} ms limit",
                           showarrow=False, font=dict(color="#d62728"))
        for m in sorted(pts, key=lambda m: m.kind != "experiment"):  # deliverables drawn on top
            over = m.params is not None and not within_param_limit(m.params)
            fig.add_trace(go.Scatter(
                x=[m.latency(lat_kind)], y=[100 * m.accuracy], mode="markers", name=m.name,
                showlegend=m.kind != "experiment",
                cliponaxis=False,
                marker=dict(size=(14 + 46 * ((m.params or 0) / max_params) ** 0.5) * (0.6 if m.kind == "experiment" else 1),
                            color=COLOR.get(m.path.name, GREY) if m.kind != "experiment" else GREY,
                            symbol="diamond" if over else "circle", opacity=0.75,
                            line=dict(width=2, color="#d62728" if over else "white")),
                hovertemplate=(f"<b>{m.name}</b><br>accuracy %{{y:.2f}}%<br>"
                               f"latency %{{x:.2f}} ms<br>params {f.count(m.params)}"
                               f"{' (over 1M)' if over else ''}<extra></extra>"),
            ))
        fig.update_layout(
            title=f"Accuracy vs {LAT_LABELS[lat_kind]} latency (bubble size = parameters)",
            xaxis_title="ms per image, one CPU thread (median, log scale)",
            yaxis_title="test accuracy (%)", xaxis_type="log", xaxis_range=[x_lo, x_hi],
            yaxis_range=[ymin, ymax], showlegend=True, legend=LEGEND,
            height=500, margin=dict(t=60, b=40, l=40, r=20))
        ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)
                 if x_lo <= math.log10(t) <= x_hi]
        fig.update_xaxes(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
        f.chart(fig, key="overview_scatter_latency")
        st.caption("Shaded: under the latency target. Diamonds with a red outline have more than "
                   "1M parameters; grey dots are experiments (hover for names).")

with right:
    pts = [m for m in plotted if m.params is not None]
    if not pts:
        f.show_problem("No parameter counts recorded yet.")
    else:
        fig = go.Figure()
        xmax = max(max(m.params for m in pts) * 1.15, MAX_PARAMS * 1.25) / 1e6
        xmin = -0.05 * xmax
        ys = [100 * m.accuracy for m in pts]
        pad = max(3.0, 0.12 * (max(ys) - min(ys)))
        ymin, ymax = min(ys) - pad, max(ys) + 1.5 * pad  # room for the labels above
        fig.add_shape(type="rect", x0=xmin, x1=MAX_PARAMS / 1e6, y0=ymin, y1=ymax,
                      fillcolor="rgba(46,160,67,0.08)", line_width=0, layer="below")
        fig.add_vline(x=MAX_PARAMS / 1e6, line_dash="dash", line_color="#d62728",
                      annotation_text="1M parameter limit", annotation_position="top left",
                      annotation_font_color="#d62728")
        for m in sorted(pts, key=lambda m: m.kind != "experiment"):  # deliverables drawn on top
            fig.add_trace(go.Scatter(
                x=[m.params / 1e6], y=[100 * m.accuracy], mode="markers", name=m.name,
                showlegend=m.kind != "experiment",
                cliponaxis=False,
                marker=dict(size=16, opacity=0.9, color=COLOR.get(m.path.name, GREY) if m.kind != "experiment" else GREY,
                            line=dict(width=1, color="white")),
                hovertemplate=(f"<b>{m.name}</b><br>accuracy %{{y:.2f}}%<br>"
                               "params %{x:.3f} M<extra></extra>"),
            ))
        fig.update_layout(title="Accuracy vs parameters", xaxis_title="parameters (millions)",
                          yaxis_title="test accuracy (%)", xaxis_range=[xmin, xmax],
                          yaxis_range=[ymin, ymax], showlegend=True, legend=LEGEND, height=500,
                          margin=dict(t=60, b=40, l=40, r=20))
        f.chart(fig, key="overview_scatter_params")
