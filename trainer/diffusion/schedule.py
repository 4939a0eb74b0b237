"""The DDPM noise schedule, the time-step embedding and the DDIM sampler.

The schedule is KerasCV's `NoiseScheduler` with Stable Diffusion's settings (scaled-linear betas
0.00085..0.012 over 1,000 steps; its alphas_cumprod equal KerasCV's `_ALPHAS_CUMPROD` table).
The DDIM update and the time-step spacing follow `StableDiffusionBase.generate_image`; the
changes are listed in docs/TEXT_TO_IMAGE.md (batched conditional/unconditional pass, time
embedding for a batch of different steps, a per-step callback, no Progbar).
"""

from __future__ import annotations

import math

import numpy as np
from keras_cv.src.models.stable_diffusion.noise_scheduler import NoiseScheduler

TRAIN_TIMESTEPS = 1000


def make_scheduler() -> NoiseScheduler:
    return NoiseScheduler(train_timesteps=TRAIN_TIMESTEPS, beta_start=0.00085, beta_end=0.012,
                          beta_schedule="scaled_linear")


def alphas_cumprod(scheduler: NoiseScheduler | None = None) -> np.ndarray:
    return np.asarray((scheduler or make_scheduler()).alphas_cumprod, np.float64)


def timestep_embedding(timesteps, dim: int, max_period: int = 10000) -> np.ndarray:
    """KerasCV's `_get_timestep_embedding` (cos then sin), for a batch of different steps."""
    half = dim // 2
    freqs = np.exp(-math.log(max_period) * np.arange(half, dtype=np.float32) / half)
    args = np.asarray(timesteps, np.float32).reshape(-1, 1) * freqs[None]
    return np.concatenate([np.cos(args), np.sin(args)], axis=1).astype(np.float32)


def ddim_timesteps(num_steps: int) -> np.ndarray:
    """The same spacing as KerasCV: num_steps steps from 0 to 999, visited in reverse."""
    if num_steps < 1:
        raise ValueError(f"steps must be at least 1, got {num_steps}")
    ratio = (TRAIN_TIMESTEPS - 1) / (num_steps - 1) if num_steps > 1 else TRAIN_TIMESTEPS
    return np.minimum((np.arange(num_steps) * ratio).round(), TRAIN_TIMESTEPS - 1).astype(np.int64)


def ddim_sample(predict_noise, context, uncond_context, noise, num_steps: int,
                guidance_scale: float, alphas: np.ndarray, time_dim: int, on_step=None,
                prediction: str = "epsilon"):
    """Deterministic DDIM (eta = 0) with classifier-free guidance.

    predict_noise(latent, t_emb, context) -> the UNet's output (epsilon, or v when
    prediction == "v"), all batched; the conditional and unconditional predictions share one call
    by stacking them on the batch axis. Guidance is linear, so mixing in v-space equals mixing
    the epsilons.
    """
    timesteps = ddim_timesteps(num_steps)
    a_cum = [float(alphas[t]) for t in timesteps]
    a_prev = [1.0] + a_cum[:-1]
    latent = np.asarray(noise, np.float32)
    n = latent.shape[0]
    both_context = np.concatenate([context, uncond_context], axis=0)
    total = len(timesteps)
    for done, index in enumerate(reversed(range(total)), start=1):
        t_emb = timestep_embedding(np.full(2 * n, timesteps[index]), time_dim)
        eps = np.asarray(predict_noise(np.concatenate([latent, latent]), t_emb, both_context))
        cond, uncond = eps[:n], eps[n:]
        out = uncond + guidance_scale * (cond - uncond)
        a_t, a_p = a_cum[index], a_prev[index]
        if prediction == "v":
            eps = math.sqrt(a_t) * out + math.sqrt(1 - a_t) * latent
            pred_x0 = math.sqrt(a_t) * latent - math.sqrt(1 - a_t) * out
        else:
            eps = out
            pred_x0 = (latent - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        latent = (eps * math.sqrt(1.0 - a_p) + math.sqrt(a_p) * pred_x0).astype(np.float32)
        if on_step is not None:
            on_step(done, total)
    return latent
