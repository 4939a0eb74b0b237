"""The latent diffusion model as one object: build, save, load, encode, decode, generate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.artifacts import atomic_dir
from trainer.diffusion.config import DiffusionConfig
from trainer.diffusion.tokenizer import PromptError, WordTokenizer

COMPONENTS = ("encoder", "decoder", "text_encoder", "unet")
CONFIG_FILE, VOCAB_FILE = "config.json", "vocab.json"


def weights_file(component: str) -> str:
    return f"{component}.weights.h5"


class TextToImage:
    """Autoencoder + text encoder + UNet + tokenizer, sampled with DDIM and classifier-free guidance."""

    def __init__(self, config: DiffusionConfig, tokenizer: WordTokenizer):
        import keras

        from trainer.diffusion.autoencoder import build_decoder, build_encoder
        from trainer.diffusion.schedule import alphas_cumprod
        from trainer.diffusion.text_encoder import build_text_encoder
        from trainer.diffusion.unet import build_unet

        if tokenizer.max_length != config.max_length:
            raise ValueError(f"tokenizer reads {tokenizer.max_length} words, config says {config.max_length}")
        self.config, self.tokenizer = config, tokenizer
        c = config
        self.encoder = build_encoder(c.image_size, c.ae_widths, c.latent_channels, c.ae_attention)
        self.decoder = build_decoder(c.latent_size, c.ae_widths, c.latent_channels, c.ae_attention)
        self.text_encoder = build_text_encoder(tokenizer.vocab_size, c.max_length, c.text_dim,
                                               c.text_layers, c.text_heads)
        self.unet = build_unet(c.latent_size, c.latent_channels, c.max_length, c.text_dim,
                               c.unet_widths, c.unet_attention, c.unet_heads, c.unet_blocks, c.time_dim,
                               c.pooled_text)
        self.alphas = alphas_cumprod()
        self._positions = np.arange(c.max_length, dtype=np.int32)[None]
        self._keras = keras
        self._fns = {}

    # -- components ------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def default_guidance_scale(self) -> float:
        """What generate() uses when guidance_scale is None."""
        return float(self.config.guidance_scale)

    def models(self) -> dict:
        return {name: getattr(self, name) for name in COMPONENTS}

    def param_counts(self) -> dict:
        counts = {name: int(m.count_params()) for name, m in self.models().items()}
        counts["total"] = sum(counts.values())
        return counts

    def _compiled(self, name, fn):
        # tf.function once per component: predict_on_batch costs ~10 ms a call on this CPU.
        if name not in self._fns:
            import tensorflow as tf
            self._fns[name] = tf.function(fn, reduce_retracing=True)
        return self._fns[name]

    def encode_text(self, tokens: np.ndarray) -> np.ndarray:
        positions = np.repeat(self._positions, len(tokens), axis=0)
        fn = self._compiled("text", lambda t, p: self.text_encoder([t, p], training=False))
        return np.asarray(fn(tokens.astype(np.int32), positions))

    def predict_noise(self, latent, t_emb, context):
        fn = self._compiled("unet", lambda l, t, c: self.unet([l, t, c], training=False))
        return fn(np.asarray(latent, np.float32), np.asarray(t_emb, np.float32),
                  np.asarray(context, np.float32))

    def encode_images(self, images: np.ndarray, batch: int = 256, sample_seed=None) -> np.ndarray:
        """uint8 (N, H, W, 3) -> scaled latents; the posterior mean, or a sample when seeded."""
        from trainer.diffusion.autoencoder import split_moments

        fn = self._compiled("encoder", lambda x: self.encoder(x, training=False))
        rng = None if sample_seed is None else np.random.default_rng(sample_seed)
        out = []
        for start in range(0, len(images), batch):
            x = images[start:start + batch].astype(np.float32) / 127.5 - 1.0
            mean, logvar = (np.asarray(a) for a in split_moments(fn(x)))
            if rng is not None:
                mean = mean + np.exp(0.5 * logvar) * rng.standard_normal(mean.shape).astype(np.float32)
            out.append(mean * self.config.latent_scale)
        return np.concatenate(out)

    def decode_latents(self, latents: np.ndarray, batch: int = 256) -> np.ndarray:
        """Scaled latents -> uint8 images."""
        fn = self._compiled("decoder", lambda z: self.decoder(z, training=False))
        out = []
        for start in range(0, len(latents), batch):
            z = np.asarray(latents[start:start + batch], np.float32) / self.config.latent_scale
            x = np.asarray(fn(z))
            out.append(np.clip((x + 1.0) * 127.5, 0, 255).round().astype(np.uint8))
        return np.concatenate(out)

    # -- sampling --------------------------------------------------------------------------
    def generate_batch(self, prompts: list[str], seeds: list[int], steps: int = 50,
                       guidance_scale: float | None = None, on_step=None) -> np.ndarray:
        """uint8 (N, H, W, 3), one image per (prompt, seed); the same seed gives the same image."""
        from trainer.diffusion.schedule import ddim_sample

        if len(prompts) != len(seeds) or not prompts:
            raise ValueError("give one seed per prompt, and at least one prompt")
        steps = _check_steps(steps)
        scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        if not np.isfinite(scale) or scale < 0:
            raise ValueError(f"guidance scale must be a finite number >= 0, got {guidance_scale}")
        tokens = self.tokenizer.encode(prompts)  # raises PromptError
        context = self.encode_text(tokens)
        uncond = self.encode_text(self.tokenizer.encode([""] * len(prompts), check=False))
        size = self.config.latent_size
        noise = np.stack([np.random.default_rng(int(s)).standard_normal(
            (size, size, self.config.latent_channels)).astype(np.float32) for s in seeds])
        latent = ddim_sample(self.predict_noise, context, uncond, noise, steps, scale,
                             self.alphas, self.config.time_dim, on_step, self.config.prediction)
        return self.decode_latents(latent)

    def generate(self, prompt: str, seed: int = 0, steps: int = 50, guidance_scale: float | None = None,
                 on_step=None) -> np.ndarray:
        """uint8 (H, W, 3) for one prompt; on_step(i, total) after every denoising step."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        return self.generate_batch([prompt], [int(seed)], steps, guidance_scale, on_step)[0]

    # -- files -----------------------------------------------------------------------------
    def save(self, model_dir, extra_files: dict | None = None) -> Path:
        """Writes weights, config and vocabulary to a temp folder, then swaps it in whole."""
        model_dir = Path(model_dir)
        with atomic_dir(model_dir) as tmp:
            self.config.save(tmp / CONFIG_FILE)
            self.tokenizer.save(tmp / VOCAB_FILE)
            for name, model in self.models().items():
                model.save_weights(tmp / weights_file(name))
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text)
        return model_dir

    def load_weights(self, folder, components=COMPONENTS) -> None:
        folder = Path(folder)
        for name in components:
            path = folder / weights_file(name)
            if not path.is_file():
                raise FileNotFoundError(f"missing weights file {path}")
            try:
                getattr(self, name).load_weights(path)
            except Exception as exc:  # h5py and Keras raise many types for a bad file
                raise ValueError(f"cannot load weights {path} (corrupt or from another config): {exc}") from exc


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 1000:
        raise ValueError(f"steps must be an integer from 1 to 1000, got {steps!r}")
    return int(steps)


def load_model_dir(model_dir=None) -> TextToImage:
    """Rebuilds the model from config.json + vocab.json and loads its .weights.h5 files
    (default folder: the text-to-image deliverable)."""
    from trainer.deliverables import deliverable_dir

    model_dir = deliverable_dir("text_to_image") if model_dir is None else Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"no text-to-image model at {model_dir}: train one with "
                                "`python -m trainer.diffusion.train` or point at the right folder")
    for name in (CONFIG_FILE, VOCAB_FILE):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"{model_dir} is not a complete text-to-image model: {name} is missing")
    for name in COMPONENTS:  # fail before the (slow) model build
        if not (model_dir / weights_file(name)).is_file():
            raise FileNotFoundError(f"{model_dir} is not a complete text-to-image model: "
                                    f"{weights_file(name)} is missing")
    config = DiffusionConfig.load(model_dir / CONFIG_FILE)
    tokenizer = WordTokenizer.load(model_dir / VOCAB_FILE)
    try:
        model = TextToImage(config, tokenizer)
    except ValueError as exc:
        raise ValueError(f"{model_dir}: {exc}") from exc
    model.load_weights(model_dir)
    return model


__all__ = ["TextToImage", "load_model_dir", "PromptError", "COMPONENTS"]
