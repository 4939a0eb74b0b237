"""Trains the text-to-image latent diffusion model on CIFAR-10 with colour captions.

    python -m trainer.diffusion.train                      # 1 epoch, saves saved_models/text2image
    python -m trainer.diffusion.train --epochs 3 --threads 1

Two stages, as in the LDM paper: (1) the autoencoder (pixels <-> 8x8x4 latents), `--ae-epochs`
over the training split; (2) the text encoder and UNet on the frozen autoencoder's latents,
`--epochs` over the training split (default exactly one). Each stage checkpoints to
`--checkpoint-dir` every `--checkpoint-every` steps; running the same command again resumes from
the last checkpoint (`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from trainer.artifacts import atomic_dir, cpu_name

DEFAULT_OUT = "saved_models/text2image"
DEFAULT_CKPT = "checkpoints/text2image"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=1, help="diffusion epochs over the training split (default 1)")
    p.add_argument("--ae-epochs", type=int, default=1, help="autoencoder epochs (stage 1, default 1)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--ae-batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the UNet + text encoder")
    p.add_argument("--ae-lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps per stage")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay cap for the saved UNet/text weights (0 = off)")
    p.add_argument("--preset", choices=("small", "tiny"), default="small", help="model size (tiny: for tests)")
    p.add_argument("--limit", type=int, default=None, help="train on a class-balanced subset of this many images")
    p.add_argument("--data", default=None, help="path of cifar-10-python.tar.gz (default: found automatically)")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--checkpoint-dir", default=DEFAULT_CKPT)
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0 = TensorFlow's default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "ae_batch_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.ae_epochs < 0:
        p.error("--ae-epochs must be >= 0")
    if args.limit is not None and args.limit < 10:
        p.error("--limit must be at least 10 (one image per class)")
    if not 0.0 <= args.ema < 1.0:
        p.error("--ema must be in [0, 1)")
    return args


def set_threads(threads: int) -> None:
    """Must run before TensorFlow starts its thread pools (i.e. before any op runs)."""
    if threads > 0:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


# -- checkpoints ---------------------------------------------------------------------------
class Checkpoint:
    """checkpoint_dir/current holds the latest state, swapped in whole so a kill never half-writes it."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.current = self.folder / "current"

    def exists(self) -> bool:
        return (self.current / "state.json").is_file()

    def state(self) -> dict:
        return json.loads((self.current / "state.json").read_text())

    def save(self, model, state: dict, optimizers: dict, arrays: dict) -> None:
        with atomic_dir(self.current) as tmp:
            model.config.save(tmp / "config.json")
            model.tokenizer.save(tmp / "vocab.json")
            for name, m in model.models().items():
                m.save_weights(tmp / f"{name}.weights.h5")
            for name, opt in optimizers.items():
                if opt.built:
                    np.savez(tmp / f"opt_{name}.npz", *[np.asarray(v) for v in opt.variables])
            for name, value in arrays.items():
                np.savez(tmp / f"{name}.npz", *value)
            (tmp / "state.json").write_text(json.dumps(state, indent=1))

    def restore_optimizer(self, name, opt, variables) -> bool:
        path = self.current / f"opt_{name}.npz"
        if not path.is_file():
            return False
        opt.build(variables)
        with np.load(path) as data:
            values = [data[f"arr_{i}"] for i in range(len(data.files))]
        if len(values) != len(opt.variables):
            raise ValueError(f"optimizer state {path} does not match the model")
        for var, value in zip(opt.variables, values):
            var.assign(value)
        return True

    def load_arrays(self, name) -> list | None:
        path = self.current / f"{name}.npz"
        if not path.is_file():
            return None
        with np.load(path) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]


# -- the training stages -------------------------------------------------------------------
def progress_bar(total: int, start: int):
    import keras
    # A log file gets a line every few seconds instead of one per step.
    bar = keras.utils.Progbar(total, interval=0.05 if sys.stdout.isatty() else 10.0,
                              stateful_metrics=["loss", "lr"])
    if start:
        bar.update(start)
    return bar


def run_stage(name, total_steps, step_fn, state, save, every, log):
    """Runs step_fn(step) -> loss for the remaining steps of a stage, checkpointing every `every`."""
    start = state["step"]
    if start >= total_steps:
        return
    print(f"[{name}] steps {start}..{total_steps}", flush=True)
    bar = progress_bar(total_steps, start)
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


def batches_for(step, n, batch, seed, salt):
    """The image indices of global step `step`: a fresh seeded permutation every epoch."""
    per_epoch = math.ceil(n / batch)
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, salt, epoch]).permutation(n)
    return perm[i * batch:(i + 1) * batch]


def train_autoencoder(model, images, args, state, save, log):
    import keras
    import tensorflow as tf

    from trainer.diffusion.autoencoder import kl_divergence, sample_latent, split_moments

    n = len(images)
    total = args.ae_epochs * math.ceil(n / args.ae_batch_size)
    opt = keras.optimizers.AdamW(args.ae_lr, weight_decay=0.0, global_clipnorm=1.0)
    variables = model.encoder.trainable_variables + model.decoder.trainable_variables
    state.setdefault("ae", {"step": 0, "seconds": 0.0})
    if state["ae"]["step"]:
        state["_ckpt"].restore_optimizer("ae", opt, variables)

    @tf.function(reduce_retracing=True)
    def step_fn(x, eps, lr):
        opt.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            mean, logvar = split_moments(model.encoder(x, training=True))
            recon = model.decoder(sample_latent(mean, logvar, eps), training=True)
            # L1 + L2 reconstruction with a weak KL pull towards N(0, I) (LDM's "KL-reg", weight 1e-6).
            loss = (tf.reduce_mean(tf.abs(recon - x)) + tf.reduce_mean(tf.square(recon - x))
                    + 1e-6 * kl_divergence(mean, logvar))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    lat = model.config.latent_size
    def one(step):
        idx = batches_for(step, n, args.ae_batch_size, args.seed, 1)
        x = images[idx].astype(np.float32) / 127.5 - 1.0
        eps = np.random.default_rng([args.seed, 2, step]).standard_normal(
            (len(idx), lat, lat, model.config.latent_channels)).astype(np.float32)
        lr = lr_at(step, total, args.ae_lr, args.warmup)
        return float(step_fn(x, eps, np.float32(lr))), lr

    run_stage("autoencoder", total, one, state["ae"], lambda: save({"ae": opt}), args.checkpoint_every, log)


def encode_training_set(model, images):
    """Posterior mean and std of every training image, and the latent scale 1/std (SD: 0.18215)."""
    from trainer.diffusion.autoencoder import split_moments

    import tensorflow as tf
    fn = tf.function(lambda x: model.encoder(x, training=False))
    means, stds = [], []
    for start in range(0, len(images), 500):
        x = images[start:start + 500].astype(np.float32) / 127.5 - 1.0
        mean, logvar = (np.asarray(a) for a in split_moments(fn(x)))
        means.append(mean)
        stds.append(np.exp(0.5 * logvar))
    means, stds = np.concatenate(means), np.concatenate(stds)
    sample = means + stds * np.random.default_rng(0).standard_normal(means.shape).astype(np.float32)
    return means, stds, float(1.0 / sample.std())


def train_diffusion(model, means, stds, tokens_full, tokens_class, args, state, save, log):
    import keras
    import tensorflow as tf

    from trainer.diffusion.schedule import TRAIN_TIMESTEPS, make_scheduler, timestep_embedding

    cfg = model.config
    n = len(means)
    total = args.epochs * math.ceil(n / args.batch_size)
    scheduler = make_scheduler()
    opt = keras.optimizers.AdamW(args.lr, weight_decay=0.0, global_clipnorm=1.0)
    variables = model.text_encoder.trainable_variables + model.unet.trainable_variables
    ema = [tf.Variable(v, trainable=False) for v in variables]
    state.setdefault("ldm", {"step": 0, "seconds": 0.0})
    if state["ldm"]["step"]:
        state["_ckpt"].restore_optimizer("ldm", opt, variables)
        saved = state["_ckpt"].load_arrays("ema")
        if saved is not None:
            for var, value in zip(ema, saved):
                var.assign(value)
    positions = np.arange(cfg.max_length, dtype=np.int32)[None]

    @tf.function(reduce_retracing=True)
    def step_fn(z, noise, t, t_emb, tokens, lr, decay):
        opt.learning_rate.assign(lr)
        noisy = scheduler.add_noise(z, noise, t)
        # Eager mode (the tests) must not mix numpy arrays and tensors in one call.
        tokens, t_emb = tf.convert_to_tensor(tokens), tf.convert_to_tensor(t_emb)
        pos = tf.repeat(positions, tf.shape(tokens)[0], axis=0)
        with tf.GradientTape() as tape:
            context = model.text_encoder([tokens, pos], training=True)
            pred = model.unet([noisy, t_emb, context], training=True)
            loss = tf.reduce_mean(tf.square(pred - noise))  # the LDM epsilon-prediction loss
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        for e, v in zip(ema, variables):
            e.assign(decay * e + (1.0 - decay) * v)
        return loss

    def one(step):
        idx = batches_for(step, n, args.batch_size, args.seed, 3)
        rng = np.random.default_rng([args.seed, 4, step])
        z = (means[idx] + stds[idx] * rng.standard_normal(means[idx].shape).astype(np.float32)) * cfg.latent_scale
        noise = rng.standard_normal(z.shape).astype(np.float32)
        t = rng.integers(0, TRAIN_TIMESTEPS, len(idx))
        # Caption dropout: empty captions train the unconditional branch of classifier-free
        # guidance; colour-less captions train the "a photo of a <class>" prompts.
        u = rng.random(len(idx))
        tokens = np.where((u < cfg.p_uncond + cfg.p_class_only)[:, None], tokens_class[idx], tokens_full[idx])
        tokens = np.where((u < cfg.p_uncond)[:, None], 0, tokens).astype(np.int32)
        lr = lr_at(step, total, args.lr, args.warmup)
        decay = min(args.ema, (1 + step) / (10 + step)) if args.ema else 0.0
        loss = step_fn(z.astype(np.float32), noise, t.astype(np.int32), timestep_embedding(t, cfg.time_dim),
                       tokens, np.float32(lr), np.float32(decay))
        return float(loss), lr

    def save_all():
        save({"ldm": opt}, {"ema": [np.asarray(e) for e in ema]})

    run_stage("diffusion", total, one, state["ldm"], save_all, args.checkpoint_every, log)
    if args.ema:  # the saved model carries the averaged weights
        for var, e in zip(variables, ema):
            var.assign(e)


# -- main ----------------------------------------------------------------------------------
def main(argv=None) -> Path:
    args = parse_args(argv)
    set_threads(args.threads)

    from trainer.data import balanced_subset, load_cifar10
    from trainer.diffusion.captions import drop_colour, make_captions
    from trainer.diffusion.config import DiffusionConfig, tiny_config
    from trainer.diffusion.model import TextToImage
    from trainer.diffusion.tokenizer import WordTokenizer

    data = load_cifar10(args.data, splits=("train",))
    images, labels = balanced_subset(data.x_train, data.y_train, args.limit, args.seed)
    captions = make_captions(images, labels)
    class_captions = [drop_colour(c) for c in captions]
    run_key = {"preset": args.preset, "n_images": len(images), "seed": args.seed, "epochs": args.epochs,
               "ae_epochs": args.ae_epochs, "batch_size": args.batch_size, "ae_batch_size": args.ae_batch_size,
               "lr": args.lr, "ae_lr": args.ae_lr, "warmup": args.warmup, "ema": args.ema}

    ckpt = Checkpoint(args.checkpoint_dir)
    if args.fresh and ckpt.folder.exists():
        shutil.rmtree(ckpt.folder)
    if ckpt.exists():
        state = ckpt.state()
        if state["run"] != run_key:
            raise SystemExit(f"checkpoint in {ckpt.folder} is from another run ({state['run']}); "
                             "pass the same flags, --fresh, or another --checkpoint-dir")
        config = DiffusionConfig.load(ckpt.current / "config.json")
        tokenizer = WordTokenizer.load(ckpt.current / "vocab.json")
        model = TextToImage(config, tokenizer)
        model.load_weights(ckpt.current)
        print(f"resuming from {ckpt.current}: autoencoder step {state.get('ae', {}).get('step', 0)}, "
              f"diffusion step {state.get('ldm', {}).get('step', 0)}", flush=True)
    else:
        config = DiffusionConfig() if args.preset == "small" else tiny_config()
        tokenizer = WordTokenizer.fit(captions + class_captions, config.max_length)
        model = TextToImage(config, tokenizer)
        state = {"run": run_key, "log": {"ae": [], "ldm": []}}
    counts = model.param_counts()
    print(f"{len(images)} images, vocabulary {tokenizer.vocab_size} words; parameters: {counts}", flush=True)

    def save(optimizers, arrays=None):
        clean = {k: v for k, v in state.items() if not k.startswith("_")}
        ckpt.save(model, clean, optimizers, arrays or {})

    state["_ckpt"] = ckpt
    train_autoencoder(model, images, args, state, save, state["log"]["ae"])

    means, stds, scale = encode_training_set(model, images)
    if "latent_scale" not in state:
        state["latent_scale"] = scale
    model.config.latent_scale = state["latent_scale"]
    print(f"latent scale 1/std = {model.config.latent_scale:.4f}", flush=True)

    tokens_full = tokenizer.encode(captions)
    tokens_class = tokenizer.encode(class_captions)
    train_diffusion(model, means, stds, tokens_full, tokens_class, args, state, save, state["log"]["ldm"])

    training = {
        "stages_s": {"autoencoder": round(state["ae"]["seconds"], 1),
                     "diffusion": round(state["ldm"]["seconds"], 1)},
        "training_time_s": round(state["ae"]["seconds"] + state["ldm"]["seconds"], 1),
        "images": len(images), "run": run_key, "threads": args.threads or "tensorflow default",
        "params": counts, "latent_scale": model.config.latent_scale,
        "loss_log": state["log"], "machine": platform.processor() or platform.machine(),
        "cpu": cpu_name(), "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = model.save(args.out, extra_files={"training.json": json.dumps(training, indent=1)})
    print(f"saved {out} ({training['training_time_s']} s of training)", flush=True)
    return out


if __name__ == "__main__":
    main()
