"""Stage 2 of the latent diffusion model: the text encoder and UNet on a trained autoencoder's latents.

    python -m trainer.diffusion.train                      # 1 epoch, saves saved_models/text2image
    python -m trainer.diffusion.train --batch-size 64 --prediction epsilon --out /tmp/t2i

The autoencoder (stage 1) is its own run, `python -m trainer.diffusion.train_autoencoder`; its
folder (default tuning/text2image/autoencoder) is frozen here and copied into the saved model.
Checkpoints go to --checkpoint-dir every --checkpoint-every steps; the same command again resumes
(--fresh starts over). --snapshots saves the EMA weights at fractions of the run (a learning curve)
to <checkpoint-dir>/snapshots/at<fraction>.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from trainer.artifacts import cpu_name
from trainer.diffusion.arguments import check_training_args, training_parser

DEFAULT_OUT = "saved_models/text2image"
DEFAULT_AE = "tuning/text2image/autoencoder"
DEFAULT_CKPT = "checkpoints/text2image"


def parse_args(argv=None):
    p = training_parser(__doc__, epochs=1, batch_size=32, lr=7e-4, warmup=200, out=DEFAULT_OUT,
                        checkpoint_dir=DEFAULT_CKPT)
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay cap for the saved weights (0 = off)")
    p.add_argument("--prediction", choices=("epsilon", "v"), default="epsilon", help="the UNet's target")
    p.add_argument("--snr-gamma", type=float, default=5.0, help="min-SNR-gamma loss weighting (0 = off)")
    p.add_argument("--no-pooled-text", action="store_true",
                   help="condition through cross-attention only (no pooled text in the time embedding)")
    p.add_argument("--autoencoder", default=DEFAULT_AE, help="stage-1 folder from trainer.diffusion.train_autoencoder")
    p.add_argument("--snapshots", default="", help="comma-separated fractions of the run, e.g. 0.25,0.5: "
                   "EMA weights saved to <checkpoint-dir>/snapshots/at<fraction> for a learning curve")
    args = p.parse_args(argv)
    check_training_args(p, args)
    if not 0.0 <= args.ema < 1.0:
        p.error("--ema must be in [0, 1)")
    if args.snr_gamma < 0 or args.lr <= 0:
        p.error("--snr-gamma must be >= 0 and --lr > 0")
    try:
        args.snapshots = sorted({float(f) for f in args.snapshots.split(",") if f.strip()})
    except ValueError:
        p.error("--snapshots takes fractions such as 0.25,0.5")
    if any(not 0 < f < 1 for f in args.snapshots):
        p.error("--snapshots fractions must lie strictly between 0 and 1")
    return args


def main(argv=None) -> Path:
    args = parse_args(argv)
    from trainer.runtime import configure
    configure(args.threads)
    from trainer.diffusion.training import open_checkpoint

    from trainer.data import balanced_subset, load_cifar10
    from trainer.diffusion.captions import drop_colour, make_captions
    from trainer.diffusion.config import DiffusionConfig, tiny_config, with_autoencoder
    from trainer.diffusion.model import TextToImage
    from trainer.diffusion.tokenizer import WordTokenizer
    from trainer.diffusion.training import encode_training_set, train_diffusion

    ae_dir = Path(args.autoencoder)
    ae_config = DiffusionConfig.load(ae_dir / "config.json")  # FileNotFoundError names the folder
    ae_training = json.loads((ae_dir / "training.json").read_text())
    data = load_cifar10(args.data, splits=("train",))
    images, labels = balanced_subset(data.x_train, data.y_train, args.limit, args.seed)
    captions = make_captions(images, labels)
    class_captions = [drop_colour(c) for c in captions]
    run = {"preset": args.preset, "n_images": len(images), "seed": args.seed, "epochs": args.epochs,
           "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup, "ema": args.ema,
           "prediction": args.prediction, "snr_gamma": args.snr_gamma, "pooled_text": not args.no_pooled_text,
           "autoencoder": str(ae_dir), "autoencoder_finished_at": ae_training.get("finished_at")}

    ckpt, state = open_checkpoint(args.checkpoint_dir, run, args.fresh)
    if state is not None:
        config = DiffusionConfig.load(ckpt.current / "config.json")
        tokenizer = WordTokenizer.load(ckpt.current / "vocab.json")
    else:
        base = DiffusionConfig() if args.preset == "small" else tiny_config()
        config = replace(with_autoencoder(base, ae_config), prediction=args.prediction,
                         snr_gamma=args.snr_gamma, pooled_text=not args.no_pooled_text)
        tokenizer = WordTokenizer.fit(captions + class_captions, config.max_length)
        state = {"run": run, "log": []}
    model = TextToImage(config, tokenizer)
    model.load_weights(ae_dir, components=("encoder", "decoder"))
    stage2 = {"text_encoder": model.text_encoder, "unet": model.unet}
    if ckpt.exists():
        ckpt.load_models(stage2)
        print(f"resuming from {ckpt.current}: step {state['ldm']['step']}", flush=True)
    counts = model.param_counts()
    print(f"{len(images)} images, vocabulary {tokenizer.vocab_size} words; parameters: {counts}", flush=True)

    means, stds, scale = encode_training_set(model.encoder, images)
    state.setdefault("latent_scale", scale)
    model.config.latent_scale = state["latent_scale"]
    print(f"latent scale 1/std = {model.config.latent_scale:.4f}", flush=True)

    def save(optimizers, arrays=None):
        files = {"config.json": json.dumps(model.config.to_json(), indent=1),
                 "vocab.json": json.dumps(tokenizer.to_json(), indent=1)}
        ckpt.save(stage2, files, state, optimizers, arrays or {})

    def training_record(seconds, steps):
        return {"stages_s": {"autoencoder": ae_training["training_time_s"], "diffusion": round(seconds, 1)},
                "training_time_s": round(ae_training["training_time_s"] + seconds, 1),
                "autoencoder": {k: ae_training[k] for k in ("run", "steps", "training_time_s", "cpu")},
                "diffusion_steps": steps, "images": len(images), "run": run,
                "threads": args.threads or "tensorflow default", "params": counts,
                "latent_scale": model.config.latent_scale, "loss_log": state["log"], "cpu": cpu_name(),
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    pending = list(args.snapshots)

    def on_step(step, total, weights):
        # A snapshot is a full model folder with the EMA weights of that moment.
        while pending and step >= round(pending[0] * total):
            fraction = pending.pop(0)
            if step != round(fraction * total):
                continue  # passed while the run was stopped: the weights of that moment are gone
            live = [v.numpy() for v in model.text_encoder.trainable_variables + model.unet.trainable_variables]
            for var, w in zip(model.text_encoder.trainable_variables + model.unet.trainable_variables, weights):
                var.assign(w)
            out = ckpt.folder / "snapshots" / f"at{fraction:g}"
            model.save(out, extra_files={"training.json": json.dumps(
                {**training_record(state["ldm"]["seconds"], step), "fraction_of_run": fraction}, indent=1)})
            for var, w in zip(model.text_encoder.trainable_variables + model.unet.trainable_variables, live):
                var.assign(w)
            print(f"\nsnapshot at {fraction:g} of the run (step {step}): {out}", flush=True)

    train_diffusion(model, means, stds, tokenizer.encode(captions), tokenizer.encode(class_captions),
                    run, state, save, ckpt, args.checkpoint_every, state["log"], on_step=on_step)
    out = model.save(args.out, extra_files={"training.json": json.dumps(
        training_record(state["ldm"]["seconds"], state["ldm"]["step"]), indent=1)})
    print(f"saved {out}", flush=True)
    return out


if __name__ == "__main__":
    main()
