"""Stage 1 of the latent diffusion model: trains the autoencoder (pixels <-> latents) on its own.

    python -m trainer.diffusion.train_autoencoder                 # the shipped recipe
    python -m trainer.diffusion.train_autoencoder --epochs 1 --limit 500 --out /tmp/ae

The result (config.json, encoder/decoder weights, training.json) is what stage 2,
`python -m trainer.diffusion.train --autoencoder DIR`, trains on. Checkpoints go to
--checkpoint-dir every --checkpoint-every steps; the same command again resumes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import datetime, timezone

from trainer.artifacts import atomic_dir, cpu_name

DEFAULT_OUT = "tuning/text2image/autoencoder"
DEFAULT_CKPT = "checkpoints/text2image_autoencoder"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3, help="epochs over the training split (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
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
    for name in ("epochs", "batch_size", "checkpoint_every", "warmup"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.limit is not None and args.limit < 10:
        p.error("--limit must be at least 10 (one image per class)")
    return args


def main(argv=None):
    args = parse_args(argv)
    from trainer.runtime import configure
    configure(args.threads)
    from trainer.diffusion.training import Checkpoint, train_autoencoder

    from trainer.data import balanced_subset, load_cifar10
    from trainer.diffusion.autoencoder import build_decoder, build_encoder
    from trainer.diffusion.config import DiffusionConfig, tiny_config

    data = load_cifar10(args.data, splits=("train",))
    images, _ = balanced_subset(data.x_train, data.y_train, args.limit, args.seed)
    run = {"preset": args.preset, "n_images": len(images), "epochs": args.epochs, "batch_size": args.batch_size,
           "lr": args.lr, "warmup": args.warmup, "seed": args.seed}
    ckpt = Checkpoint(args.checkpoint_dir)
    if args.fresh and ckpt.folder.exists():
        shutil.rmtree(ckpt.folder)
    config = DiffusionConfig() if args.preset == "small" else tiny_config()
    if ckpt.exists():
        state = ckpt.state()
        if state["run"] != run:
            raise SystemExit(f"checkpoint in {ckpt.folder} is from another run ({state['run']}); "
                             "pass the same flags, --fresh, or another --checkpoint-dir")
        config = DiffusionConfig.load(ckpt.current / "config.json")
    else:
        state = {"run": run, "log": []}
    c = config
    encoder = build_encoder(c.image_size, c.ae_widths, c.latent_channels, c.ae_attention)
    decoder = build_decoder(c.latent_size, c.ae_widths, c.latent_channels, c.ae_attention)
    models = {"encoder": encoder, "decoder": decoder}
    if state.get("ae", {}).get("step"):
        ckpt.load_models(models)
        print(f"resuming from {ckpt.current}: step {state['ae']['step']}", flush=True)
    params = {name: int(m.count_params()) for name, m in models.items()}
    print(f"{len(images)} images, latents {c.latent_size}x{c.latent_size}x{c.latent_channels}; "
          f"parameters {params}", flush=True)

    def save(optimizers):
        ckpt.save(models, {"config.json": json.dumps(config.to_json(), indent=1)}, state, optimizers, {})

    train_autoencoder(encoder, decoder, config, images, run, state, save, ckpt, args.checkpoint_every, state["log"])
    training = {"stage": "autoencoder", "run": run, "training_time_s": round(state["ae"]["seconds"], 1),
                "steps": state["ae"]["step"], "params": params, "threads": args.threads or "tensorflow default",
                "cpu": cpu_name(), "loss_log": state["log"],
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with atomic_dir(args.out) as tmp:
        config.save(tmp / "config.json")
        for name, m in models.items():
            m.save_weights(tmp / f"{name}.weights.h5")
        (tmp / "training.json").write_text(json.dumps(training, indent=1))
    print(f"saved {args.out} ({training['training_time_s']} s of training)", flush=True)


if __name__ == "__main__":
    main()
