"""The full-size path: `keras_cv.models.StableDiffusion` (v1.4 weights) from local files only.

KerasCV downloads its weights and the CLIP BPE file with `keras.utils.get_file` the first time a
component is used. Here every component is built with `download_weights=False`, loaded from the
folder in $SD_WEIGHTS_DIR and put into the StableDiffusion object's lazy slots, so nothing
is fetched at run time. Get the files once, on a machine with internet (URLs and SHA-256 from
KerasCV 0.9's source; see docs/TEXT_TO_IMAGE.md), and put them in one folder:

    kcv_encoder.h5            text encoder, 123M parameters
    kcv_diffusion_model.h5    UNet, 860M parameters
    kcv_decoder.h5            VAE decoder, 49M parameters
    bpe_simple_vocab_16e6.txt.gz   CLIP BPE merges (KerasCV builds the vocabulary from them)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trainer.diffusion.tokenizer import PromptError

ENV_VAR = "SD_WEIGHTS_DIR"
MAX_PROMPT_TOKENS = 77
FILES = {  # file name -> (URL, sha256), as in keras_cv/src/models/stable_diffusion/*.py
    "kcv_encoder.h5": ("https://huggingface.co/fchollet/stable-diffusion/resolve/main/kcv_encoder.h5",
                       "4789e63e07c0e54d6a34a29b45ce81ece27060c499a709d556c7755b42bb0dc4"),
    "kcv_diffusion_model.h5": ("https://huggingface.co/fchollet/stable-diffusion/resolve/main/kcv_diffusion_model.h5",
                               "8799ff9763de13d7f30a683d653018e114ed24a6a819667da4f5ee10f9e805fe"),
    "kcv_decoder.h5": ("https://huggingface.co/fchollet/stable-diffusion/resolve/main/kcv_decoder.h5",
                       "ad350a65cc8bc4a80c8103367e039a3329b4231c2469a1093869a345f55b1962"),
    "bpe_simple_vocab_16e6.txt.gz": ("https://github.com/openai/CLIP/blob/main/clip/bpe_simple_vocab_16e6.txt.gz?raw=true",
                                     "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"),
}


def official_weights_dir() -> Path | None:
    """$SD_WEIGHTS_DIR as a Path, or None when it is unset or empty (the folder is checked on load)."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def missing_files(weights_dir) -> list[str]:
    folder = Path(weights_dir)
    return [name for name in FILES if not (folder / name).is_file()]


class OfficialTextToImage:
    """keras_cv.models.StableDiffusion with locally loaded parts and the project's generate() API."""

    default_guidance_scale = 7.5  # KerasCV's default unconditional_guidance_scale

    def __init__(self, weights_dir, image_size: int = 512, jit_compile: bool = False):
        from keras_cv.models import StableDiffusion
        from keras_cv.models.stable_diffusion import Decoder, DiffusionModel, SimpleTokenizer, TextEncoder

        folder = Path(weights_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"official weights folder {folder} does not exist (set {ENV_VAR})")
        missing = missing_files(folder)
        if missing:
            raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; see docs/TEXT_TO_IMAGE.md "
                                    "('Full-size Stable Diffusion') for where to get them")
        sd = StableDiffusion(img_height=image_size, img_width=image_size, jit_compile=jit_compile)
        self.image_size = sd.img_height  # KerasCV rounds to a multiple of 128
        parts = {
            "_text_encoder": (TextEncoder(MAX_PROMPT_TOKENS, download_weights=False), "kcv_encoder.h5"),
            "_diffusion_model": (DiffusionModel(sd.img_height, sd.img_width, MAX_PROMPT_TOKENS,
                                                download_weights=False), "kcv_diffusion_model.h5"),
            "_decoder": (Decoder(sd.img_height, sd.img_width, download_weights=False), "kcv_decoder.h5"),
        }
        for slot, (model, name) in parts.items():
            try:
                model.load_weights(folder / name)
            except Exception as exc:  # h5py / Keras raise several types for a wrong file
                raise ValueError(f"cannot load {folder / name}: {exc.__class__.__name__}: {exc}") from exc
            if jit_compile:
                model.compile(jit_compile=True)
            setattr(sd, slot, model)  # filling the lazy slot stops KerasCV from calling get_file
        try:
            sd._tokenizer = SimpleTokenizer(bpe_path=str(folder / "bpe_simple_vocab_16e6.txt.gz"))
        except Exception as exc:
            raise ValueError(f"cannot read the CLIP BPE file in {folder}: {exc}") from exc
        self.sd = sd

    def check_prompt(self, prompt) -> None:
        if not isinstance(prompt, str):
            raise PromptError(f"a prompt must be a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise PromptError("the prompt is empty: describe the image you want")
        n = len(self.sd.tokenizer.encode(prompt))
        if n > MAX_PROMPT_TOKENS:
            raise PromptError(f"the prompt is {n} CLIP tokens long; Stable Diffusion reads at most {MAX_PROMPT_TOKENS}")

    def generate(self, prompt: str, seed: int = 0, steps: int = 50, guidance_scale: float | None = None,
                 on_step=None) -> np.ndarray:
        """uint8 (H, W, 3). KerasCV's DDIM loop, with the project's seeding and progress callback."""
        from trainer.diffusion.model import _check_steps
        from trainer.diffusion.schedule import alphas_cumprod, ddim_sample

        self.check_prompt(prompt)
        steps = _check_steps(steps)
        scale = self.default_guidance_scale if guidance_scale is None else float(guidance_scale)
        sd = self.sd
        context = np.asarray(sd.encode_text(prompt))
        uncond = np.asarray(sd._get_unconditional_context())
        noise = np.random.default_rng(int(seed)).standard_normal(
            (1, sd.img_height // 8, sd.img_width // 8, 4)).astype(np.float32)

        def predict(latent, t_emb, ctx):
            return sd.diffusion_model.predict_on_batch({"latent": latent, "timestep_embedding": t_emb, "context": ctx})

        latent = ddim_sample(predict, context, uncond, noise, steps, scale, alphas_cumprod(), 320, on_step)
        decoded = np.asarray(sd.decoder.predict_on_batch(latent))
        return np.clip((decoded[0] + 1) / 2 * 255, 0, 255).astype(np.uint8)


def load_official(weights_dir, image_size: int = 512) -> OfficialTextToImage:
    return OfficialTextToImage(weights_dir, image_size=image_size)
