"""Overview: every saved classifier as a card, and accuracy against latency."""

import re

import plotly.graph_objects as go
import streamlit as st

from dashboard import common as c

c.page_header("Model overview",
              "Every CIFAR-10 classifier in the models folder, measured on the 10,000 test images. "
              f"The brief asks for at most {c.count(c.PARAM_LIMIT)} parameters and "
              f"{c.LATENCY_LIMIT_MS:.0f} ms per image on one CPU thread.")

models, problem = c.discover_models()
if problem:
    c.show_problem(problem, icon=":material/folder_off:")
    st.stop()

LAT_LABELS = {"keras": "Keras", "tflite": "TFLite"}
lat_kind = st.segmented_control(
    "Latency shown", options=list(LAT_LABELS), format_func=LAT_LABELS.get, default="keras",
    key="overview_latency_kind",
    help="Median milliseconds per image on one CPU thread, as recorded by `trainer.evaluate`. "
         "The Live latency page measures it again on this machine.") or "keras"


def within(entry: c.ModelEntry) -> tuple[bool | None, bool | None]:
    p, lat = entry.params, entry.latency(lat_kind)
    return (None if p is None else p <= c.PARAM_LIMIT,
            None if lat is None else lat <= c.LATENCY_LIMIT_MS)


# ---- headline numbers
evaluated = [m for m in models if m.accuracy is not None]
best = max(evaluated, key=lambda m: m.accuracy) if evaluated else None
in_budget = [m for m in evaluated if within(m) == (True, True)]
best_in_budget = max(in_budget, key=lambda m: m.accuracy) if in_budget else None
cols = st.columns(4)
cols[0].metric("Models", len(models))
cols[1].metric("Best accuracy", c.pct(best.accuracy) if best else "—",
               help=best.name if best else None)
cols[2].metric("Within both limits", f"{len(in_budget)} of {len(evaluated)}" if evaluated else "—")
cols[3].metric("Best within limits", c.pct(best_in_budget.accuracy) if best_in_budget else "—",
               help=best_in_budget.name if best_in_budget else None)


# ---- cards
def badge(ok: bool | None, yes: str, no: str) -> str:
    if ok is None:
        return ""
    return f":green-badge[:material/check: {yes}]" if ok else f":red-badge[:material/close: {no}]"


@st.dialog("Evaluation report", width="large")
def show_report(entry: c.ModelEntry) -> None:
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


def card(entry: c.ModelEntry) -> None:
    import html

    with st.container(border=True):
        sub = html.escape(entry.arch) if entry.arch and entry.arch != entry.name else "&nbsp;"
        st.markdown(f'<div class="card-title">{html.escape(entry.name)}</div>'
                    f'<div class="card-sub">{sub}</div>', unsafe_allow_html=True)
        p_ok, l_ok = within(entry)
        badges = " ".join(b for b in (badge(p_ok, "under 1M params", "over 1M params"),
                                      badge(l_ok, f"under {c.LATENCY_LIMIT_MS:.0f} ms",
                                            f"over {c.LATENCY_LIMIT_MS:.0f} ms")) if b)
        if badges:
            st.markdown(badges)
        for problem in entry.problems:
            st.warning(problem, icon=":material/warning:")
        for note in entry.notes:
            st.caption(f":material/info: {note}")

        def cls(ok):
            return "" if ok is None else ("good" if ok else "bad")

        st.markdown(c.kpi_grid([
            ("Accuracy", c.pct(entry.accuracy), "big"),
            ("Parameters", c.count(entry.params), cls(p_ok)),
            ("MACs / image", c.count(entry.macs), ""),
            ("TFLite size", c.nbytes(entry.size_bytes("tflite")), ""),
            (f"Latency ({LAT_LABELS[lat_kind]})", c.ms(entry.latency(lat_kind)), cls(l_ok)),
            ("Training time", c.duration(entry.training_time_s), ""),
        ]), unsafe_allow_html=True)
        if (entry.path / "report.md").is_file() or (entry.path / "confusion_matrix.png").is_file():
            if st.button("Full report", key=f"report_{entry.path.name}",
                         icon=":material/description:", type="tertiary"):
                show_report(entry)


PER_ROW = 3
for start in range(0, len(models), PER_ROW):
    cols = st.columns(PER_ROW)
    for col, entry in zip(cols, models[start:start + PER_ROW]):
        with col:
            card(entry)

# ---- the text-to-image model, when there is one
t2i = c.text2image_summary()
if t2i:
    cols = st.columns(PER_ROW)
    with cols[0], st.container(border=True):
        st.markdown('<div class="card-title">Text-to-image model</div>'
                    '<div class="card-sub">latent diffusion, trained on CIFAR-10</div>',
                    unsafe_allow_html=True)
        st.markdown(c.kpi_grid(t2i, columns=2), unsafe_allow_html=True)
        st.page_link("views/prompt.py", label="Try it on the Prompt to image page",
                     icon=":material/brush:")

# ---- scatter plots
st.subheader("Accuracy against speed and size")
plotted = [m for m in models if m.accuracy is not None]
if not plotted:
    c.show_problem("No model has been evaluated yet, so there is nothing to plot.")
    st.stop()

left, right = st.columns(2)
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b",
           "#ff9da6", "#9d755d", "#bab0ac")
COLOR = {m.path.name: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(plotted, key=lambda m: m.name))}
LEGEND = dict(orientation="h", y=-0.22, x=0, yanchor="top", title_text="")

with left:
    pts = [m for m in plotted if m.latency(lat_kind) is not None]
    if not pts:
        c.show_problem(f"No {LAT_LABELS[lat_kind]} latency recorded yet.")
    else:
        import math

        fig = go.Figure()
        max_params = max((m.params or 0) for m in pts) or 1
        lats = [m.latency(lat_kind) for m in pts]
        # Log scale: sub-millisecond TFLite and tens-of-ms models both stay readable.
        x_lo = math.log10(max(min(lats), 1e-3) / 2.5)
        x_hi = math.log10(max(max(lats), c.LATENCY_LIMIT_MS) * 2.5)
        ys = [100 * m.accuracy for m in pts]
        pad = max(3.0, 0.12 * (max(ys) - min(ys)))
        ymin, ymax = min(ys) - pad, max(ys) + 1.5 * pad  # room for the labels above
        fig.add_shape(type="rect", x0=10 ** x_lo, x1=c.LATENCY_LIMIT_MS, y0=ymin, y1=ymax,
                      fillcolor="rgba(46,160,67,0.08)", line_width=0, layer="below")
        fig.add_vline(x=c.LATENCY_LIMIT_MS, line_dash="dash", line_color="#d62728")
        # (annotations on a log axis take log10 coordinates)
        fig.add_annotation(x=math.log10(c.LATENCY_LIMIT_MS), y=1, yref="paper", yanchor="bottom",
                           xanchor="right", text=f"{c.LATENCY_LIMIT_MS:.0f} ms limit",
                           showarrow=False, font=dict(color="#d62728"))
        for m in pts:
            over = m.params is not None and m.params > c.PARAM_LIMIT
            fig.add_trace(go.Scatter(
                x=[m.latency(lat_kind)], y=[100 * m.accuracy], mode="markers", name=m.name,
                cliponaxis=False,
                marker=dict(size=14 + 46 * ((m.params or 0) / max_params) ** 0.5,
                            color=COLOR[m.path.name],
                            symbol="diamond" if over else "circle", opacity=0.75,
                            line=dict(width=2, color="#d62728" if over else "white")),
                hovertemplate=(f"<b>{m.name}</b><br>accuracy %{{y:.2f}}%<br>"
                               f"latency %{{x:.2f}} ms<br>params {c.count(m.params)}"
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
        c.chart(fig, key="overview_scatter_latency")
        st.caption("Shaded: under the latency limit. Diamonds with a red outline have more than "
                   "1M parameters.")

with right:
    pts = [m for m in plotted if m.params is not None]
    if not pts:
        c.show_problem("No parameter counts recorded yet.")
    else:
        fig = go.Figure()
        xmax = max(max(m.params for m in pts) * 1.15, c.PARAM_LIMIT * 1.25) / 1e6
        xmin = -0.05 * xmax
        ys = [100 * m.accuracy for m in pts]
        pad = max(3.0, 0.12 * (max(ys) - min(ys)))
        ymin, ymax = min(ys) - pad, max(ys) + 1.5 * pad  # room for the labels above
        fig.add_shape(type="rect", x0=xmin, x1=c.PARAM_LIMIT / 1e6, y0=ymin, y1=ymax,
                      fillcolor="rgba(46,160,67,0.08)", line_width=0, layer="below")
        fig.add_vline(x=c.PARAM_LIMIT / 1e6, line_dash="dash", line_color="#d62728",
                      annotation_text="1M parameter limit", annotation_position="top left",
                      annotation_font_color="#d62728")
        for m in pts:
            fig.add_trace(go.Scatter(
                x=[m.params / 1e6], y=[100 * m.accuracy], mode="markers", name=m.name,
                cliponaxis=False,
                marker=dict(size=16, opacity=0.9, color=COLOR[m.path.name],
                            line=dict(width=1, color="white")),
                hovertemplate=(f"<b>{m.name}</b><br>accuracy %{{y:.2f}}%<br>"
                               "params %{x:.3f} M<extra></extra>"),
            ))
        fig.update_layout(title="Accuracy vs parameters", xaxis_title="parameters (millions)",
                          yaxis_title="test accuracy (%)", xaxis_range=[xmin, xmax],
                          yaxis_range=[ymin, ymax], showlegend=True, legend=LEGEND, height=500,
                          margin=dict(t=60, b=40, l=40, r=20))
        c.chart(fig, key="overview_scatter_params")
