"""Try it: classify an uploaded picture or a test image and show the top-5 classes."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from dashboard import caching as cache
from dashboard import discovery as d
from dashboard import formatting as f
from dashboard import uploads
from trainer import ood
from trainer.data import CLASS_NAMES

CLASSES = list(CLASS_NAMES)

f.page_header("Try it",
              "Give a model a picture and see what it thinks. The models know ten classes: "
              + ", ".join(CLASSES) + ".")

models = d.usable_models(need="model")
if not models:
    _, problem = d.discover_models()
    f.show_problem(problem or "No classifier with a readable model file was found.")
    st.stop()


top = st.columns([2, 2])
with top[0]:
    entry = f.model_picker(models, key="try_model")
with top[1]:
    source = st.segmented_control("Picture", ["Upload", "Test image"], default="Upload",
                                  key="try_source") or "Upload"

small = None       # the 32x32 RGB picture the model sees
original = None    # what to show as "your picture"
truth = None
note = None

if source == "Upload":
    # No `type=` filter: Streamlit would raise on a wrong extension; the content is checked
    # below instead, so any wrong file gets a plain message.
    up = st.file_uploader("Upload a picture (it is shrunk to 32×32 pixels)",
                          key="try_upload", max_upload_size=uploads.MAX_UPLOAD_MB,
                          help=f"PNG, JPEG, WebP, BMP, GIF or TIFF, up to {uploads.MAX_UPLOAD_MB} MB and "
                               f"{uploads.MAX_SIDE:,}×{uploads.MAX_SIDE:,} pixels. A larger file is refused: "
                               f"{uploads.too_large_message()}")
    crop = st.toggle("Crop to the centre square (otherwise squash)", value=True, key="try_crop")
    if up is None:
        st.info("Upload a photo of an airplane, car, bird, cat, deer, dog, frog, horse, ship or "
                "truck, or switch to **Test image** to pick one of the CIFAR-10 test pictures.",
                icon=":material/upload:")
        st.stop()
    try:
        original, (w, h) = uploads.decode_upload(up.getvalue())
    except uploads.BadImage as exc:
        st.error(str(exc), icon=":material/broken_image:")
        st.stop()
    small = uploads.to_model_input(original, crop)
    if (w, h) != (32, 32):
        how = "cropped to its centre square and " if crop and w != h else ""
        note = (f"Your picture is {w:,}×{h:,} pixels; it was {how}shrunk to 32×32, the size the "
                "models were trained on, so fine detail is lost.")
else:
    try:
        x_test, y_test, _ = cache.test_set()
    except cache.DashboardDataError as exc:
        f.show_problem(str(exc), icon=":material/image_not_supported:")
        st.stop()
    pick = st.columns([2, 2, 1])
    cls = pick[0].selectbox("Class", ["any"] + CLASSES, key="try_class")
    pool = np.arange(len(y_test)) if cls == "any" else np.flatnonzero(y_test == CLASSES.index(cls))
    if "try_index" not in st.session_state:
        st.session_state["try_index"] = 0

    def random_pick() -> None:
        st.session_state["try_index"] = int(np.random.default_rng().choice(pool))

    pick[2].button("Random", icon=":material/shuffle:", on_click=random_pick, key="try_random",
                   width="stretch")
    idx = pick[1].number_input("Test image number", 0, len(y_test) - 1, key="try_index", step=1)
    idx = int(idx)
    small = Image.fromarray(x_test[idx])
    original = small
    truth = CLASSES[int(y_test[idx])]

try:
    model = cache.classifier(entry)
    probs = cache.predict(model, np.asarray(small, dtype=np.uint8))[0]
except cache.DashboardDataError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()
except Exception as exc:  # a model that loads but fails to run
    st.error(f"{entry.name} could not classify the picture ({exc.__class__.__name__}).",
             icon=":material/error:")
    st.stop()

order = np.argsort(-probs)[:5]
try:
    threshold = ood.load_threshold()
except (FileNotFoundError, ValueError):  # no calibration in this copy: answer without the flag
    threshold = None
# The threshold was calibrated on the shipped classifier; other models' confidences differ.
unsure = threshold is not None and entry.role == "classifier" and ood.flag(probs, threshold)
best = CLASSES[order[0]]
left, mid, right = st.columns([1, 1, 2], gap="large")
with left:
    st.image(original, caption="Your picture" if source == "Upload" else f"Test image #{idx}",
             width="stretch")
with mid:
    st.image(small.resize((256, 256), Image.Resampling.NEAREST),
             caption="What the model sees (32×32, enlarged)", width="stretch")
with right:
    verdict = f"### {best} · {probs[order[0]]:.0%}"
    st.markdown(verdict)
    if unsure:
        st.warning(f"**Probably none of the ten classes.** The model's answer is *{best}*, but it is less "
                   f"sure than it is for {ood.TARGET_PASS_RATE:.0%} of the CIFAR-10 pictures it knows "
                   f"(top probability {probs[order[0]]:.0%}, below {threshold:.0%}). It only knows "
                   "airplanes, cars, birds, cats, deer, dogs, frogs, horses, ships and trucks.",
                   icon=":material/help:")
    if truth is not None:
        if truth == best:
            st.success(f"Correct: this test image is a **{truth}**.", icon=":material/check_circle:")
        else:
            st.warning(f"Not quite: this test image is a **{truth}**.", icon=":material/cancel:")
    fig = go.Figure(go.Bar(
        x=probs[order][::-1] * 100, y=[CLASSES[k] for k in order][::-1], orientation="h",
        text=[f"{p:.1%}" for p in probs[order][::-1]], textposition="auto",
        marker_color=["#4c78a8"] * 4 + ["#f58518"]))
    fig.update_layout(title=f"Top 5 classes · {entry.name}", xaxis_title="probability (%)",
                      xaxis_range=[0, 100], height=320, margin=dict(t=50, b=30, l=20, r=20))
    f.chart(fig, key="try_top5")
if note:
    st.caption(f":material/info: {note}")
if threshold is not None and entry.role != "classifier":
    st.caption(":material/info: The “probably none of the ten classes” check is calibrated for the "
               "shipped classifier only, so it is not applied to this model.")

others = [m for m in models if m.path != entry.path]
if others and st.toggle("Compare with the other models", key="try_compare"):
    rows = []
    for m in [entry] + others:
        try:
            p = cache.predict(cache.classifier(m), np.asarray(small, dtype=np.uint8))[0]
        except Exception as exc:
            rows.append({"model": m.name, "prediction": f"unavailable ({exc.__class__.__name__})",
                         "confidence": None})
            continue
        k = int(np.argmax(p))
        rows.append({"model": m.name, "prediction": CLASSES[k], "confidence": float(p[k])})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "confidence": st.column_config.ProgressColumn("confidence", format="percent",
                                                      min_value=0, max_value=1)})
