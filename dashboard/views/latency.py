"""Live latency: time a model on this machine, now, on one CPU thread."""

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import caching as cache
from dashboard import discovery as d
from dashboard import formatting as f
from dashboard import latency as lat
from trainer.constants import MAX_LATENCY_MS, within_latency_limit

f.page_header("Live latency",
              "How long one image takes, measured on this machine right now, on a single CPU "
              f"thread. Our target is {MAX_LATENCY_MS:.0f} ms per image.")

models = d.usable_models(need="model")
if not models:
    _, problem = d.discover_models()
    f.show_problem(problem or "No classifier with a readable model file was found.")
    st.stop()

# ---- the machine
cpu, cores, load = lat.cpu_name(), lat.cpu_count(), lat.load_average()
m = st.columns([3, 1, 1])
m[0].metric("CPU", cpu)
m[1].metric("Cores available", cores)
m[2].metric("Load (1 min)", "—" if load is None else f"{load:.2f}")
if load is not None and load >= max(cores - 0.5, 0.75):
    st.warning(f"Other work is keeping this machine busy (load {load:.1f} on {cores} core"
               f"{'s' if cores != 1 else ''}), so timings may come out higher than on an idle "
               "machine.", icon=":material/speed:")

# ---- the controls
with st.container(border=True):
    cols = st.columns([2, 1, 1])
    with cols[0]:
        entry = f.model_picker(models, key="lat_model")
    runs = cols[1].select_slider("Timed runs", [50, 100, 200, 500, 1000], value=200, key="lat_runs")
    warmup = cols[2].select_slider("Warm-up runs", [5, 10, 20, 50], value=20, key="lat_warmup")
    st.caption("Each run classifies one image. The model runs in a separate process limited to "
               "one thread; measurements from all viewers take turns, one at a time.")
    go_button = st.button("Measure now", icon=":material/timer:", type="primary", key="lat_go")

results: dict = st.session_state.setdefault("lat_results", {})

if go_button:
    if cache.lock_busy("latency"):
        st.info("Another measurement is running; yours starts as soon as it finishes.",
                icon=":material/hourglass_top:")
    failure = None
    with st.status(f"Measuring {entry.name}: {warmup} warm-up + {runs} timed runs per format…",
                   expanded=False) as status:
        t0 = time.monotonic()
        try:
            with cache.exclusive("latency", timeout_s=600):
                res = lat.measure_latency(entry.path, runs=runs, warmup=warmup)
            if not isinstance(res, dict) or not any(isinstance(res.get(k), dict)
                                                    for k in ("keras", "tflite")):
                raise RuntimeError("the benchmark returned no timings")
        except TimeoutError:
            failure = ("The machine stayed busy with other measurements; please try again in a "
                       "minute.")
        except Exception as exc:
            failure = f"The measurement failed ({exc.__class__.__name__}: {str(exc)[:300]})."
        if failure:
            status.update(label="Measurement failed", state="error")
        else:
            res["_elapsed_s"] = time.monotonic() - t0
            res["_when"] = time.strftime("%H:%M:%S")
            res["_runs"], res["_warmup"] = runs, warmup
            results[str(entry.path)] = res
            status.update(label=f"Done in {res['_elapsed_s']:.0f} s", state="complete")
    if failure:
        st.error(failure, icon=":material/error:")
        st.stop()

res = results.get(str(entry.path))
if res is None:
    st.info("Press **Measure now** to time this model. It takes a few seconds to start "
            "the benchmark process, then about a second per few hundred runs.",
            icon=":material/timer:")
    st.stop()

st.subheader(f"{entry.name}, measured at {res.get('_when', '?')}")
st.caption(f"On {res.get('cpu', cpu)}, {res.get('threads', 1)} thread, "
           f"{res.get('_warmup', '?')} warm-up + {res.get('_runs', '?')} timed runs per format.")

# TFLite int8 appears only for models run through `python -m trainer.quantize`.
LABELS = {"keras": "Keras", "tflite": "TFLite", "tflite_int8": "TFLite int8"}
COLORS = {"keras": "#4c78a8", "tflite": "#f58518", "tflite_int8": "#54a24b"}
kinds = [k for k in LABELS if isinstance(res.get(k), dict)]
cols = st.columns(2 * len(kinds))
for i, k in enumerate(kinds):
    med, p90 = res[k].get("median"), res[k].get("p90")
    recorded = entry.latency(k)
    delta = None if (recorded is None or med is None) else f"{med - recorded:+.2f} ms vs recorded"
    cols[2 * i].metric(f"{LABELS[k]} median", f.ms(med), delta=delta, delta_color="inverse",
                       help=f"Recorded by trainer.evaluate: {f.ms(recorded)}")
    ok = med is not None and within_latency_limit(med)
    cols[2 * i + 1].metric(f"{LABELS[k]} p90", f.ms(p90),
                           delta=("within" if ok else "over") + f" {MAX_LATENCY_MS:.0f} ms",
                           delta_color="green" if ok else "red", delta_arrow="off",
                           help="9 in 10 images are at least this fast")

left, right = st.columns(2, gap="large")
with left:
    fig = go.Figure()
    for stat, opacity in (("median", 1.0), ("p90", 0.45)):
        vals = [res[k].get(stat) or 0 for k in kinds]
        fig.add_trace(go.Bar(
            y=[LABELS[k] for k in kinds], x=vals, orientation="h", name=stat,
            marker=dict(color=[COLORS[k] for k in kinds], opacity=opacity),
            text=[f"{stat} {v:.2f} ms" for v in vals], textposition="outside"))
    top_ms = max([res[k].get("p90") or 0 for k in kinds] + [MAX_LATENCY_MS])
    fig.add_vline(x=MAX_LATENCY_MS, line_dash="dash", line_color="#d62728", line_width=2,
                  annotation_text=f"{MAX_LATENCY_MS:.0f} ms limit",
                  annotation_position="top")
    fig.update_layout(title="Against the limit", barmode="group", height=340, showlegend=False,
                      xaxis_title="ms per image", xaxis_range=[0, top_ms * 1.3],
                      margin=dict(t=60, b=40, l=20, r=20))
    f.chart(fig, key="lat_bars")
    st.caption("Solid bars: median; pale bars: p90 (9 in 10 images are faster).")

with right:
    fig = go.Figure()
    series = {k: np.asarray(res[k].get("samples_ms") or [], dtype=float) for k in kinds}
    all_samples = [v for v in series.values() if v.size]
    if all_samples:
        both = np.concatenate(all_samples)
        lo, hi = float(np.percentile(both, 0.5)), float(np.percentile(both, 99))
        width = max((hi - lo) / 60, 1e-3)  # the same bins for both formats
        for k, samples in series.items():
            if samples.size:
                fig.add_trace(go.Histogram(
                    x=samples, name=LABELS[k], marker_color=COLORS[k], opacity=0.7,
                    xbins=dict(start=max(0.0, lo - width), end=float(both.max()) + width,
                               size=width)))
                fig.add_vline(x=float(np.median(samples)), line_dash="dot", line_color=COLORS[k])
    if all_samples:
        pad = (hi - lo) * 0.08 + 1e-3
        if hi + pad >= MAX_LATENCY_MS:
            fig.add_vline(x=MAX_LATENCY_MS, line_dash="dash", line_color="#d62728")
        fig.update_layout(title="Spread of the timed runs", barmode="overlay", height=340,
                          xaxis_title="ms per image", yaxis_title="runs",
                          legend=dict(orientation="h", y=1.02, x=1, xanchor="right",
                                      yanchor="bottom"),
                          xaxis_range=[max(0.0, lo - pad), hi + pad],
                          margin=dict(t=60, b=40, l=40, r=20))
        f.chart(fig, key="lat_hist")
        st.caption("Dotted lines: medians. The slowest 1% of runs are off the right edge.")
    else:
        st.caption("The benchmark returned no individual timings.")

rows = []
for k in kinds:
    rows.append({"format": LABELS[k], "median now (ms)": res[k].get("median"),
                 "p90 now (ms)": res[k].get("p90"),
                 "images/s now": 1000.0 / res[k]["median"] if res[k].get("median") else None,
                 "median recorded (ms)": entry.latency(k), "p90 recorded (ms)": entry.latency(k, "p90")})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={col: st.column_config.NumberColumn(format="%.2f")
                            for col in rows[0] if col != "format"} if rows else None)
