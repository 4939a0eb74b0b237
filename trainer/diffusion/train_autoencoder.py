"""Stage 1 of the latent diffusion model: trains the autoencoder (pixels <-> latents) on its own.

    python -m trainer.diffusion.train_autoencoder                 # the shipped recipe
    python -m trainer.diffusion.train_autoencoder --epochs 1 --limit 500 --out /tmp/ae

The result (config.json, encoder/decoder weights, training.json) is what stage 2,
`python -m trainer.diffusion.train --autoencoder DIR`, trains on. Checkpoints go to
--checkpoint-dir every --checkpoint-every steps; the same command again resumes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from trainer.artifacts import atomic_dir, cpu_name
from trainer.diffusion.arguments import check_training_args, training_parser

DEFAULT_OUT = "tuning/text2image/autoencoder"
DEFAULT_CKPT = "checkpoints/text2image_autoencoder"


def parse_args(argv=None):
    p = training_parser(__doc__, epochs=3, batch_size=64, lr=1e-3, warmup=100, out=DEFAULT_OUT,
                        checkpoint_dir=DEFAULT_CKPT)
    args = p.parse_args(argv)
    check_training_args(p, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    from trainer.runtime import configure
    configure(args.threads)
    from trainer.diffusion.training import open_checkpoint, train_autoencoder

    from trainer.data import balanced_subset, load_cifar10
    from trainer.diffusion.autoencoder import build_decoder, build_encoder
    from trainer.diffusion.config import DiffusionConfig, tiny_config

    data = load_cifar10(args.data, splits=("train",))
    images, _ = balanced_subset(data.x_train, data.y_train, args.limit, args.seed)
    run = {"preset": args.preset, "n_images": len(images), "epochs": args.epochs, "batch_size": args.batch_size,
           "lr": args.lr, "warmup": args.warmup, "seed": args.seed}
    ckpt, state = open_checkpoint(args.checkpoint_dir, run, args.fresh)
    if state is not None:
        config = DiffusionConfig.load(ckpt.current / "config.json")
    else:
        config = DiffusionConfig() if args.preset == "small" else tiny_config()
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
