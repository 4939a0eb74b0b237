"""The two training stages of the latent diffusion model, as library functions.

Stage 1 trains the autoencoder on pixels; stage 2 trains the text encoder and UNet on the frozen
autoencoder's latents (Rombach et al. 2022 train them as separate runs too). Both stages step
through a seeded schedule of batches, so a run killed at any step resumes from its last
checkpoint and reaches the same weights as one that never stopped.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from trainer.artifacts import atomic_dir


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batches_for(step, n, batch, seed, salt):
    """The image indices of global step `step`: a fresh seeded permutation every epoch."""
    per_epoch = math.ceil(n / batch)
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, salt, epoch]).permutation(n)
    return perm[i * batch:(i + 1) * batch]


# -- checkpoints ---------------------------------------------------------------------------
class Checkpoint:
    """checkpoint_dir/current holds the latest state, swapped in whole so a kill never half-writes it."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.current = self.folder / "current"

    def exists(self) -> bool:
        return (self.current / "state.json").is_file()

    def state(self) -> dict:
        try:
            return json.loads((self.current / "state.json").read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"checkpoint {self.current} is unreadable ({exc}); delete {self.folder} "
                             "to start over") from exc

    def save(self, models: dict, files: dict, state: dict, optimizers: dict, arrays: dict) -> None:
        with atomic_dir(self.current) as tmp:
            for name, text in files.items():
                (tmp / name).write_text(text)
            for name, m in models.items():
                m.save_weights(tmp / f"{name}.weights.h5")
            for name, opt in optimizers.items():
                if opt.built:
                    np.savez(tmp / f"opt_{name}.npz", *[np.asarray(v) for v in opt.variables])
            for name, value in arrays.items():
                np.savez(tmp / f"{name}.npz", *value)
            (tmp / "state.json").write_text(json.dumps(state, indent=1))

    def load_models(self, models: dict) -> None:
        for name, m in models.items():
            path = self.current / f"{name}.weights.h5"
            try:
                m.load_weights(path)
            except Exception as exc:  # h5py and Keras raise many types for a bad file
                raise ValueError(f"checkpoint file {path} is unreadable ({exc}); delete {self.folder} "
                                 "to start over") from exc

    def restore_optimizer(self, name, opt, variables) -> bool:
        path = self.current / f"opt_{name}.npz"
        if not path.is_file():
            return False
        opt.build(variables)
        with np.load(path) as data:
            values = [data[f"arr_{i}"] for i in range(len(data.files))]
        if len(values) != len(opt.variables):
            raise ValueError(f"optimizer state {path} does not match the model; delete {self.folder}")
        for var, value in zip(opt.variables, values):
            var.assign(value)
        return True

    def load_arrays(self, name) -> list | None:
        path = self.current / f"{name}.npz"
        if not path.is_file():
            return None
        with np.load(path) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]


def open_checkpoint(folder, run: dict, fresh: bool) -> tuple[Checkpoint, dict | None]:
    """The checkpoint of `run` and its saved state (None when starting over); refuses a
    checkpoint written by other settings, which would otherwise be silently mixed in."""
    ckpt = Checkpoint(folder)
    if fresh and ckpt.folder.exists():
        shutil.rmtree(ckpt.folder)
    if not ckpt.exists():
        return ckpt, None
    state = ckpt.state()
    if state["run"] != run:
        raise SystemExit(f"checkpoint in {ckpt.folder} is from another run ({state['run']}); "
                         "pass the same flags, --fresh, or another --checkpoint-dir")
    return ckpt, state


# -- the step loop -------------------------------------------------------------------------
def run_stage(name, total_steps, step_fn, state, save, every, log):
    """Runs step_fn(step) -> (loss, lr) for the remaining steps, checkpointing every `every`."""
    import keras

    start = state["step"]
    if start >= total_steps:
        return
    print(f"[{name}] steps {start}..{total_steps}", flush=True)
    # A log file gets a line every few seconds instead of one per step.
    bar = keras.utils.Progbar(total_steps, interval=0.05 if sys.stdout.isatty() else 10.0,
                              stateful_metrics=["loss", "lr"])
    if start:
        bar.update(start)
    t0, base = time.time(), state["seconds"]
    window = []
    for step in range(start, total_steps):
        loss, lr = step_fn(step)
        window.append(loss)
        bar.update(step + 1, [("loss", loss), ("lr", lr)])
        if (step + 1) % 50 == 0 or step + 1 == total_steps:
            log.append({"step": step + 1, "loss": float(np.mean(window))})
            window = []
            if not sys.stdout.isatty():  # Progbar rewrites one line; a log wants plain lines too
                print(f"\n[{name}] step {step + 1}/{total_steps} loss {log[-1]['loss']:.4f} "
                      f"elapsed {base + time.time() - t0:.0f} s", flush=True)
        state["step"], state["seconds"] = step + 1, base + time.time() - t0
        if (step + 1) % every == 0 or step + 1 == total_steps:
            save()
    print(f"[{name}] done in {state['seconds']:.0f} s (this stage, all runs)", flush=True)


# -- stage 1: the autoencoder ----------------------------------------------------------------
def autoencoder_step_fn(encoder, decoder, opt):
    """One optimiser step on a batch: L1 + L2 reconstruction and LDM's weak KL pull (1e-6)."""
    import tensorflow as tf

    from trainer.diffusion.autoencoder import kl_divergence, sample_latent, split_moments

    variables = encoder.trainable_variables + decoder.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(x, eps, lr):
        opt.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            mean, logvar = split_moments(encoder(x, training=True))
            recon = decoder(sample_latent(mean, logvar, eps), training=True)
            loss = (tf.reduce_mean(tf.abs(recon - x)) + tf.reduce_mean(tf.square(recon - x))
                    + 1e-6 * kl_divergence(mean, logvar))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step, variables


def train_autoencoder(encoder, decoder, config, images, run, state, save, ckpt, every, log):
    """run: {"epochs", "batch_size", "lr", "warmup", "seed"}; state["ae"] counts steps and seconds."""
    import keras

    n = len(images)
    total = run["epochs"] * math.ceil(n / run["batch_size"])
    opt = keras.optimizers.AdamW(run["lr"], weight_decay=0.0, global_clipnorm=1.0)
    step_fn, variables = autoencoder_step_fn(encoder, decoder, opt)
    state.setdefault("ae", {"step": 0, "seconds": 0.0})
    if state["ae"]["step"]:
        ckpt.restore_optimizer("ae", opt, variables)
    lat = config.latent_size

    def one(step):
        idx = batches_for(step, n, run["batch_size"], run["seed"], 1)
        x = images[idx].astype(np.float32) / 127.5 - 1.0
        eps = np.random.default_rng([run["seed"], 2, step]).standard_normal(
            (len(idx), lat, lat, config.latent_channels)).astype(np.float32)
        lr = lr_at(step, total, run["lr"], run["warmup"])
        return float(step_fn(x, eps, np.float32(lr))), lr

    run_stage("autoencoder", total, one, state["ae"], lambda: save({"ae": opt}), every, log)



# -- stage 2: text encoder + UNet on the frozen latents ----------------------------------------
def encode_training_set(encoder, images, batch: int = 500):
    """Posterior mean and std of every training image, and the latent scale 1/std (SD: 0.18215)."""
    import tensorflow as tf

    from trainer.diffusion.autoencoder import split_moments

    fn = tf.function(lambda x: encoder(x, training=False))
    means, stds = [], []
    for start in range(0, len(images), batch):
        x = images[start:start + batch].astype(np.float32) / 127.5 - 1.0
        mean, logvar = (np.asarray(a) for a in split_moments(fn(x)))
        means.append(mean)
        stds.append(np.exp(0.5 * logvar))
    means, stds = np.concatenate(means), np.concatenate(stds)
    sample = means + stds * np.random.default_rng(0).standard_normal(means.shape).astype(np.float32)
    return means, stds, float(1.0 / sample.std())


def loss_weights(alphas_cumprod: np.ndarray, prediction: str, snr_gamma: float) -> np.ndarray:
    """Per-timestep weight of the squared error; min-SNR-gamma caps easy (low-noise) steps."""
    snr = alphas_cumprod / (1.0 - alphas_cumprod)
    if not snr_gamma:
        return np.ones_like(snr, np.float32)
    capped = np.minimum(snr, snr_gamma)
    # For v-prediction the loss is already (SNR + 1) times the epsilon loss's scale.
    return (capped / (snr + 1.0) if prediction == "v" else capped / snr).astype(np.float32)


def diffusion_step_fn(model, opt, ema, variables):
    """One optimiser step: noise the latents, predict epsilon or v, weighted MSE, EMA update."""
    import tensorflow as tf

    from trainer.diffusion.schedule import alphas_cumprod

    cfg = model.config
    alphas = alphas_cumprod()
    sqrt_a = tf.constant(np.sqrt(alphas), tf.float32)
    sqrt_1ma = tf.constant(np.sqrt(1.0 - alphas), tf.float32)
    weights = tf.constant(loss_weights(alphas, cfg.prediction, cfg.snr_gamma))
    positions = tf.constant(np.arange(cfg.max_length, dtype=np.int32)[None])

    @tf.function(reduce_retracing=True)
    def step(z, noise, t, t_emb, tokens, lr, decay):
        opt.learning_rate.assign(lr)
        a = tf.reshape(tf.gather(sqrt_a, t), (-1, 1, 1, 1))
        s = tf.reshape(tf.gather(sqrt_1ma, t), (-1, 1, 1, 1))
        noisy = a * z + s * noise
        target = a * noise - s * z if cfg.prediction == "v" else noise
        pos = tf.repeat(positions, tf.shape(tokens)[0], axis=0)
        with tf.GradientTape() as tape:
            context = model.text_encoder([tokens, pos], training=True)
            pred = model.unet([noisy, t_emb, context], training=True)
            per_image = tf.reduce_mean(tf.square(pred - target), axis=(1, 2, 3))
            loss = tf.reduce_mean(tf.gather(weights, t) * per_image)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        for e, v in zip(ema, variables):
            e.assign(decay * e + (1.0 - decay) * v)
        return loss

    return step


def train_diffusion(model, means, stds, tokens_full, tokens_class, run, state, save, ckpt, every, log,
                    on_step=None):
    """run: {"epochs", "batch_size", "lr", "warmup", "ema", "seed"}; the saved model gets the EMA weights.

    on_step(step, total, ema_weights) runs after every step (e.g. to snapshot a learning curve).
    """
    import keras
    import tensorflow as tf

    from trainer.diffusion.schedule import TRAIN_TIMESTEPS, timestep_embedding

    cfg = model.config
    n = len(means)
    total = run["epochs"] * math.ceil(n / run["batch_size"])
    opt = keras.optimizers.AdamW(run["lr"], weight_decay=0.0, global_clipnorm=1.0)
    variables = model.text_encoder.trainable_variables + model.unet.trainable_variables
    ema = [tf.Variable(v, trainable=False) for v in variables]
    state.setdefault("ldm", {"step": 0, "seconds": 0.0})
    if state["ldm"]["step"]:
        ckpt.restore_optimizer("ldm", opt, variables)
        saved = ckpt.load_arrays("ema")
        if saved is not None:
            for var, value in zip(ema, saved):
                var.assign(value)
    step_fn = diffusion_step_fn(model, opt, ema, variables)

    def one(step):
        idx = batches_for(step, n, run["batch_size"], run["seed"], 3)
        rng = np.random.default_rng([run["seed"], 4, step])
        z = (means[idx] + stds[idx] * rng.standard_normal(means[idx].shape).astype(np.float32)) * cfg.latent_scale
        noise = rng.standard_normal(z.shape).astype(np.float32)
        t = rng.integers(0, TRAIN_TIMESTEPS, len(idx))
        # Caption dropout: empty captions train the unconditional branch of classifier-free
        # guidance; colour-less captions train the "a photo of a <class>" prompts.
        u = rng.random(len(idx))
        tokens = np.where((u < cfg.p_uncond + cfg.p_class_only)[:, None], tokens_class[idx], tokens_full[idx])
        tokens = np.where((u < cfg.p_uncond)[:, None], 0, tokens).astype(np.int32)
        lr = lr_at(step, total, run["lr"], run["warmup"])
        decay = min(run["ema"], (1 + step) / (10 + step)) if run["ema"] else 0.0
        loss = step_fn(z.astype(np.float32), noise, t.astype(np.int32), timestep_embedding(t, cfg.time_dim),
                       tokens, np.float32(lr), np.float32(decay))
        if on_step is not None:
            on_step(step + 1, total, ema if run["ema"] else variables)
        return float(loss), lr

    def save_all():
        save({"ldm": opt}, {"ema": [np.asarray(e) for e in ema]})

    run_stage("diffusion", total, one, state["ldm"], save_all, every, log)
    if run["ema"]:  # the saved model carries the averaged weights
        for var, e in zip(variables, ema):
            var.assign(e)
