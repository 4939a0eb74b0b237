"""Prompt to image: the text-to-image model trained in this project (and, if configured,
the official Stable Diffusion weights)."""

import io
import time

import numpy as np
import streamlit as st
from PIL import Image

from dashboard import common as c

c.page_header("Prompt to image",
              "Describe a picture and the text-to-image model trained in this project draws it, "
              "starting from random noise and removing a little of it at every step.")


def diffusion_api():
    """The trainer.diffusion module, or None with the reason."""
    import importlib

    try:
        api = importlib.import_module("trainer.diffusion")
    except Exception as exc:  # not written yet, or broken: either way, not available
        return None, f"{exc.__class__.__name__}: {exc}"
    if not hasattr(api, "load_text_to_image"):
        return None, "trainer.diffusion has no load_text_to_image yet"
    return api, None


@st.cache_resource(show_spinner="Loading the text-to-image model…", max_entries=2)
def load_ours(model_dir: str, signature: tuple, api_id: int):
    api, _ = diffusion_api()
    return api.load_text_to_image(model_dir)


@st.cache_resource(show_spinner="Loading Stable Diffusion (this can take a minute)…", max_entries=1)
def load_official(weights_dir: str, api_id: int):
    api, _ = diffusion_api()
    return api.load_official(weights_dir)


def default_guidance(generator) -> float:
    for value in (getattr(getattr(generator, "config", None), "guidance_scale", None),
                  getattr(generator, "default_guidance_scale", None)):
        try:
            if value is not None and float(value) >= 0:
                return float(value)
        except (TypeError, ValueError):
            pass
    return 4.0


def folder_signature(path):
    try:
        return tuple(sorted((f.name, f.stat().st_mtime_ns) for f in path.iterdir()))
    except OSError:
        return ()


api, why = diffusion_api()
if api is None:
    c.show_problem("The text-to-image model is not available in this copy of the project yet, "
                   "so this page cannot draw pictures. The other pages work as usual.",
                   icon=":material/brush:")
    st.caption(f"Details: {why}")
    st.stop()

ours_dir = c.text2image_dir()
official_dir = None
try:
    official_dir = api.official_weights_dir() if hasattr(api, "official_weights_dir") else None
except Exception:
    official_dir = None

choices = {}
if ours_dir.is_dir():
    choices["ours"] = "Our model (trained in this project)"
if official_dir is not None and hasattr(api, "load_official"):
    choices["official"] = "Stable Diffusion (official weights, local)"
if not choices:
    c.show_problem(f"No trained text-to-image model was found at `{c.display_path(ours_dir)}`. "
                   "Train it first (see docs/TEXT_TO_IMAGE.md).", icon=":material/brush:")
    st.stop()

PromptError = getattr(api, "PromptError", ValueError)

left, right = st.columns([2, 3], gap="large")
with left:
    which = st.radio("Model", list(choices), format_func=choices.get, key="gen_model",
                     horizontal=True) if len(choices) > 1 else next(iter(choices))
    try:
        generator = (load_ours(str(ours_dir), folder_signature(ours_dir), id(api)) if which == "ours"
                     else load_official(str(official_dir), id(api)))
    except Exception as exc:
        st.error(f"The model could not be loaded ({exc.__class__.__name__}: {str(exc)[:300]}).",
                 icon=":material/error:")
        st.stop()
    size = getattr(generator, "image_size", None)
    size = (size, size) if isinstance(size, int) else tuple(size) if size else None

    tokenizer = getattr(generator, "tokenizer", None)
    examples = ["a photo of a red truck", "a photo of a white ship", "a photo of a brown horse",
                "a photo of a green frog"]

    def use_example() -> None:
        if st.session_state.get("gen_example"):
            st.session_state["gen_prompt"] = st.session_state["gen_example"]
        st.session_state["gen_example"] = None

    st.pills("Examples", examples, key="gen_example", on_change=use_example,
             format_func=lambda e: e.removeprefix("a photo of a "))
    with st.form("gen_form", border=True):
        prompt = st.text_area("Prompt", key="gen_prompt", max_chars=300, height=90,
                              placeholder="e.g. a red sports car on a road")
        cols = st.columns(3)
        seed = cols[0].number_input("Seed", 0, 2**31 - 1, 0, step=1, key="gen_seed",
                                    help="Same prompt + same seed = same picture")
        steps = cols[1].number_input("Steps", 5, 1000, 50, step=5, key="gen_steps",
                                     help="More steps: slower, usually cleaner")
        guidance = cols[2].number_input("Guidance", 0.0, 30.0, default_guidance(generator),
                                        step=0.5, key="gen_guidance",
                                        help="Guidance scale: how strongly the picture follows the prompt")
        submitted = st.form_submit_button("Generate", icon=":material/auto_awesome:",
                                          type="primary", width="stretch")
    facts = []
    if size:
        facts.append(f"This model draws {size[0]}×{size[1]} pixel pictures")
    if tokenizer is not None and getattr(tokenizer, "max_length", None):
        facts.append(f"reads prompts of up to {tokenizer.max_length} words")
    if facts:
        st.caption("; ".join(facts) + ".")
    if which == "official":
        st.warning("Stable Diffusion is large: on this CPU one picture takes several minutes.",
                   icon=":material/schedule:")

    summary = c.text2image_summary() if which == "ours" else None
    if summary:
        with st.expander("How good is this model?"):
            st.markdown(c.kpi_grid(summary, columns=2), unsafe_allow_html=True)
            st.caption("Prompt accuracy: how often the best classifier recognises the class asked "
                       "for in generated pictures (chance is 10%). Fréchet distance: how far the "
                       "generated pictures are from real test images in the classifier's feature "
                       "space (lower is better). Details: saved_models/text2image/report.md.")

history: list = st.session_state.setdefault("gen_history", [])

with right:
    if submitted:
        if not prompt or not prompt.strip():
            st.error("Please type a prompt first, for example *a red sports car on a road*.",
                     icon=":material/edit:")
        else:
            if c.lock_busy("generation"):
                st.info("Someone else is generating a picture; yours starts when theirs is done.",
                        icon=":material/hourglass_top:")
            unknown = []
            if tokenizer is not None and hasattr(tokenizer, "unknown_words"):
                try:
                    unknown = list(dict.fromkeys(tokenizer.unknown_words(prompt)))
                except Exception:
                    unknown = []
            if unknown:
                st.caption(":material/info: Words the model never saw in training (it ignores "
                           f"them): {', '.join(unknown[:10])}.")
            bar = st.progress(0.0, text="Starting…")

            def on_step(i, total):
                total = max(int(total), 1)
                done = min(max(int(i), 1), total)  # trainer.diffusion counts steps from 1
                bar.progress(done / total, text=f"Denoising step {done} of {total}")

            t0 = time.monotonic()
            try:
                with c.exclusive("generation", timeout_s=600):
                    image = generator.generate(prompt.strip(), seed=int(seed), steps=int(steps),
                                               guidance_scale=float(guidance), on_step=on_step)
                image = np.asarray(image)
                if image.dtype != np.uint8:
                    image = np.clip(image, 0, 255).astype(np.uint8)
                if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
                    raise ValueError(f"the model returned an array of shape {image.shape}")
                image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
            except PromptError as exc:
                bar.empty()
                st.error(f"That prompt cannot be used: {exc}", icon=":material/edit:")
            except TimeoutError:
                bar.empty()
                st.error("The generator stayed busy with other requests; please try again shortly.")
            except Exception as exc:
                bar.empty()
                st.error(f"Generation failed ({exc.__class__.__name__}: {str(exc)[:300]}).",
                         icon=":material/error:")
            else:
                bar.progress(1.0, text=f"Done in {time.monotonic() - t0:.1f} s")
                history.insert(0, {"image": image, "prompt": prompt.strip(), "seed": int(seed),
                                   "steps": int(steps), "guidance": float(guidance),
                                   "model": choices[which], "seconds": time.monotonic() - t0})
                del history[8:]

    if not history:
        st.info("Type a prompt and press **Generate**. Pictures are small (the model was trained "
                "on 32×32 CIFAR-10 images) and shown enlarged.", icon=":material/image:")
    else:
        last = history[0]
        img = Image.fromarray(last["image"])
        h, w = last["image"].shape[:2]
        scale = max(1, 384 // max(h, w))
        big = img.resize((w * scale, h * scale), Image.Resampling.LANCZOS) if scale > 1 else img
        st.image(big, caption=f"“{last['prompt']}” · seed {last['seed']} · {last['steps']} steps · "
                              f"guidance {last['guidance']:g}", width="content")
        st.caption(f"True size {w}×{h} pixels" + (f", shown {scale}× larger" if scale > 1 else "")
                   + f"; {last['model']}; {last['seconds']:.1f} s.")
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        st.download_button("Download (true size PNG)", buf.getvalue(), file_name="generated.png",
                           mime="image/png", icon=":material/download:", key="gen_download")
        if len(history) > 1:
            st.markdown("**Earlier in this session**")
            cols = st.columns(7)
            for col, item in zip(cols, history[1:]):
                col.image(Image.fromarray(item["image"]).resize((96, 96), Image.Resampling.LANCZOS),
                          caption=item["prompt"][:40], width="stretch")
