"""Prompt to image: the text-to-image model trained in this project (and, if configured,
the official Stable Diffusion weights)."""

import io
import time

import numpy as np
import streamlit as st
from PIL import Image

from dashboard import caching as cache
from dashboard import discovery as d
from dashboard import formatting as f
from trainer.constants import REPO_ROOT

f.page_header("Prompt to image",
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


GRID = 4  # a 2x2 grid of seeds per prompt: one seed can be a lucky or an unlucky draw
DOC = "docs/TEXT_TO_IMAGE.md"
COLOURS = ("red", "white", "brown", "green", "blue", "yellow", "black", "gray")


def known_examples(tokenizer, limit: int = 4) -> list[str]:
    """Example prompts made only of words this model's vocabulary holds (one per class, in turn)."""
    if tokenizer is None or not hasattr(tokenizer, "unknown_words"):
        return []
    out = []
    for name, colour in zip(("truck", "ship", "horse", "frog", "airplane", "cat", "bird", "dog", "deer",
                             "automobile"), COLOURS + COLOURS):
        for prompt in (f"a photo of a {colour} {name}", f"a photo of a {name}"):
            try:
                if not tokenizer.unknown_words(prompt):
                    out.append(prompt)
                    break
            except Exception:
                return out
        if len(out) >= limit:
            break
    return out


def vocabulary_words(tokenizer) -> list[str]:
    words = [w for w in getattr(tokenizer, "vocabulary", []) if w and not w.startswith("[")]
    return sorted(words)


def judge_text() -> str:
    """The classifier that judged the pictures, as the model's metrics.json names it."""
    found = d.judge()
    if found is None:
        metrics = d.text2image_metrics()
        name = metrics.get("classifier")
        if not name:
            return "a CIFAR-10 classifier"
        found = (str(name).rstrip("/").split("/")[-1], d.num(metrics.get("classifier_test_accuracy")))
    name, accuracy = found
    return f"the classifier **{name}**" + (f" ({f.pct(accuracy)} test accuracy)" if accuracy is not None else "")


def folder_signature(path):
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir()))
    except OSError:
        return ()


api, why = diffusion_api()
if api is None:
    f.show_problem("The text-to-image model is not available in this copy of the project yet, "
                   "so this page cannot draw pictures. The other pages work as usual.",
                   icon=":material/brush:")
    st.caption(f"Details: {why}")
    st.stop()

ours_dir = d.text2image_dir()
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
    f.show_problem(f"No trained text-to-image model was found at `{d.display_path(ours_dir)}`. "
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
    examples = known_examples(tokenizer)
    placeholder = f"e.g. {examples[0]}" if examples else "e.g. a photo of a red truck"

    def use_example() -> None:
        if st.session_state.get("gen_example"):
            st.session_state["gen_prompt"] = st.session_state["gen_example"]
        st.session_state["gen_example"] = None

    if examples:
        st.pills("Examples", examples, key="gen_example", on_change=use_example,
                 format_func=lambda e: e.removeprefix("a photo of a ").removeprefix("a photo of an "))
    with st.form("gen_form", border=True):
        prompt = st.text_area("Prompt", key="gen_prompt", max_chars=300, height=90,
                              placeholder=placeholder)
        cols = st.columns(3)
        seed = cols[0].number_input("First seed", 0, 2**31 - 4, 0, step=1, key="gen_seed",
                                    help=f"Draws {GRID} pictures, from this seed and the next "
                                         f"{GRID - 1}. Same prompt + same seed = same picture")
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

    summary = f.text2image_kpis(d.text2image_metrics()) if which == "ours" else None
    if summary:
        with st.expander("How good is this model?"):
            st.markdown(f.kpi_grid(summary, columns=2), unsafe_allow_html=True)
            st.caption(f"Prompt accuracy: how often {judge_text()} recognises the class asked "
                       "for in generated pictures (chance is 10%). Fréchet distance: how far the "
                       "generated pictures are from real test images in that classifier's feature "
                       "space (lower is better)." + (f" Details: {DOC}." if (REPO_ROOT / DOC).is_file() else ""))

history: list = st.session_state.setdefault("gen_history", [])

def as_rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"the model returned an array of shape {image.shape}")
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def draw(prompt: str, seeds: list[int], steps: int, guidance: float, on_step) -> list[np.ndarray]:
    """One picture per seed: in one batch when the model can (one denoising loop for all four)."""
    if hasattr(generator, "generate_batch"):
        images = generator.generate_batch([prompt] * len(seeds), seeds, steps=steps,
                                          guidance_scale=guidance, on_step=on_step)
        return [as_rgb(im) for im in images]
    out = []
    for k, s in enumerate(seeds):
        out.append(as_rgb(generator.generate(
            prompt, seed=s, steps=steps, guidance_scale=guidance,
            on_step=lambda i, total, k=k: on_step(k * int(total) + int(i), len(seeds) * int(total)))))
    return out


with right:
    if submitted:
        text = (prompt or "").strip()
        unknown = []
        if text and tokenizer is not None and hasattr(tokenizer, "unknown_words"):
            try:
                unknown = list(dict.fromkeys(tokenizer.unknown_words(text)))
            except PromptError:
                unknown = []
        if not text:
            st.error(f"Please type a prompt first, for example *{examples[0] if examples else 'a photo of a red truck'}*.",
                     icon=":material/edit:")
        elif unknown:
            st.error(f"This model does not know the word{'s' if len(unknown) > 1 else ''} "
                     f"{', '.join(repr(w) for w in unknown[:10])}: it was trained on short captions of "
                     "CIFAR-10 pictures and knows only these words: "
                     f"{', '.join(vocabulary_words(tokenizer))}.", icon=":material/edit:")
        else:
            if cache.lock_busy("generation"):
                st.info("Someone else is generating pictures; yours start when theirs are done.",
                        icon=":material/hourglass_top:")
            bar = st.progress(0.0, text="Starting…")

            def on_step(i, total):
                total = max(int(total), 1)
                done = min(max(int(i), 1), total)  # trainer.diffusion counts steps from 1
                bar.progress(done / total, text=f"Denoising step {done} of {total}")

            seeds = [int(seed) + k for k in range(GRID)]
            t0 = time.monotonic()
            try:
                with cache.exclusive("generation", timeout_s=600):
                    images = draw(text, seeds, int(steps), float(guidance), on_step)
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
                history.insert(0, {"images": images, "seeds": seeds, "prompt": text,
                                   "steps": int(steps), "guidance": float(guidance),
                                   "model": choices[which], "seconds": time.monotonic() - t0})
                del history[6:]

    if not history:
        st.info(f"Type a prompt and press **Generate**: the model draws it {GRID} times, from {GRID} "
                "seeds. Pictures are small (the model was trained on 32×32 CIFAR-10 images) and "
                "shown enlarged.", icon=":material/image:")
    else:
        last = history[0]
        h, w = last["images"][0].shape[:2]
        scale = max(1, 192 // max(h, w))
        st.markdown(f"**“{last['prompt']}”** · {last['steps']} steps · guidance {last['guidance']:g}")
        for row in range(0, len(last["images"]), 2):
            cols = st.columns(2)
            for col, image, s in zip(cols, last["images"][row:row + 2], last["seeds"][row:row + 2]):
                img = Image.fromarray(image)
                big = img.resize((w * scale, h * scale), Image.Resampling.LANCZOS) if scale > 1 else img
                col.image(big, caption=f"seed {s}", width="stretch")
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                col.download_button("Download (true size PNG)", buf.getvalue(), file_name=f"generated_seed{s}.png",
                                    mime="image/png", icon=":material/download:", key=f"gen_download_{s}",
                                    type="tertiary")
        st.caption(f"True size {w}×{h} pixels" + (f", shown {scale}× larger" if scale > 1 else "")
                   + f"; {last['model']}; {last['seconds']:.1f} s for {len(last['images'])} pictures.")
        if len(history) > 1:
            st.markdown("**Earlier in this session**")
            cols = st.columns(6)
            for col, item in zip(cols, history[1:]):
                col.image(Image.fromarray(item["images"][0]).resize((96, 96), Image.Resampling.LANCZOS),
                          caption=item["prompt"][:40], width="stretch")
