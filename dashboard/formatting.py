"""How the dashboard writes figures and lays out its common elements (numbers, KPI grids, charts,
headers, the model picker)."""

from __future__ import annotations

import html
from typing import Any

import streamlit as st

from dashboard.discovery import ModelEntry, default_model, num

# --------------------------------------------------------------------------------------------
# Numbers


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def count(x: float | None) -> str:
    if x is None:
        return "—"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g} {suffix}"
    return f"{x:.0f}"


def nbytes(x: float | None) -> str:
    """Decimal units (MB = 10^6 bytes), as the evaluation reports use."""
    if x is None:
        return "—"
    for div, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if x >= div:
            return f"{x / div:.3g} {suffix}"
    return f"{x:.0f} B"


def ms(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_any(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def text2image_kpis(metrics: dict) -> list[tuple[str, str, str]]:
    """Headline figures of a text-to-image metrics.json as kpi_grid items, tolerant of missing keys."""

    def get(*keys):
        node = metrics
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return None
            node = node[k]
        return node

    items = []
    acc = num(get("prompt_accuracy", "accuracy"))
    if acc is not None:
        items.append(("Prompt accuracy", pct(acc), "big"))
    fd = num(get("frechet_distance", "generated_vs_test"))
    if fd is not None:
        items.append(("Fréchet distance", f"{fd:.1f}", ""))
    sec = num(get("seconds_per_image", "median_s"))
    if sec is not None:
        steps = get("seconds_per_image", "steps")
        items.append(("Time per image", f"{sec:.2f} s" + (f" ({steps} steps)" if steps else ""), ""))
    params = get("params", "total") if isinstance(get("params"), dict) else get("params")
    if num(params) is not None:
        items.append(("Parameters", count(num(params)), ""))
    size = num(get("model_size_bytes"))
    if size is not None:
        items.append(("Size", nbytes(size), ""))
    t = num(get("training_time_s"))
    if t is not None:
        items.append(("Training time", duration(t), ""))
    return items


# --------------------------------------------------------------------------------------------
# Look

CSS = """
<style>
.kpi-grid {display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 0.55rem 0.9rem;
           margin: 0.25rem 0 0.6rem 0;}
.kpi .l {font-size: 0.78rem; opacity: 0.65; white-space: nowrap; overflow: hidden;
         text-overflow: ellipsis;}
.kpi .v {font-size: 1.3rem; font-weight: 600; line-height: 1.25; white-space: nowrap;}
.kpi .v.big {font-size: 1.6rem;}
.kpi .v.good {color: #1a7f37;}
.kpi .v.bad {color: #cf222e;}
.card-title {font-size: 1.15rem; font-weight: 700; margin-bottom: 0;}
.card-sub {font-size: 0.85rem; opacity: 0.65; margin-top: -0.2rem;}
</style>
"""


def inject_css() -> None:
    st.html(CSS)


def kpi_grid(items: list[tuple[str, str, str]], columns: int = 3) -> str:
    """HTML for a compact grid of (label, value, css class) figures; values never truncate."""
    cells = "".join(
        f'<div class="kpi"><div class="l">{html.escape(label)}</div>'
        f'<div class="v {cls}">{html.escape(value)}</div></div>'
        for label, value, cls in items)
    style = f' style="grid-template-columns: repeat({columns}, minmax(0, 1fr));"'
    return f'<div class="kpi-grid"{style}>{cells}</div>'


def chart(fig, key: str, **kwargs):
    """st.plotly_chart with the dashboard's look: no mode bar, full width."""
    fig.update_layout(font=dict(size=13), hoverlabel=dict(font_size=13))
    kwargs.setdefault("width", "stretch")
    return st.plotly_chart(fig, key=key, config={"displayModeBar": False, "displaylogo": False},
                           **kwargs)


def page_header(title: str, subtitle: str) -> None:
    st.title(title)
    st.caption(subtitle)


def show_problem(message: str, icon: str = ":material/info:") -> None:
    st.info(message, icon=icon)


def model_label(m: ModelEntry) -> str:
    tag = {"deliverable": " (shipped)" if m.role == "classifier" else " (deliverable)",
           "experiment": " (experiment)"}.get(m.kind, "")
    acc = f"  ·  {pct(m.accuracy)}" if m.accuracy is not None else ""
    return f"{m.name}{tag}{acc}"


def model_picker(models: list[ModelEntry], key: str, label: str = "Model") -> ModelEntry:
    """A selectbox of models that starts on the shipped classifier and keeps the choice across
    pages (session state)."""
    names = [m.path.name for m in models]  # deliverables come first, so a name shared with an experiment picks the model
    shared = st.session_state.get("chosen_model")
    if key not in st.session_state:
        first = default_model(models)
        st.session_state[key] = shared if shared in names else first.path.name
    elif st.session_state[key] not in names:
        st.session_state[key] = default_model(models).path.name

    choice = st.selectbox(label, names, key=key,
                          format_func=lambda n: model_label(models[names.index(n)]))
    st.session_state["chosen_model"] = choice
    return models[names.index(choice)]
