"""The command-line options both training stages share, and their checks.

Everything a user can get wrong is refused at parse time, before data loading or training: an
--out that is the models root, the repository, a folder above them or a folder this project did
not write would otherwise be found only when the finished model is saved.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def training_parser(doc: str, epochs: int, batch_size: int, lr: float, warmup: int, out: str,
                    checkpoint_dir: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs over the training split (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=warmup, help="linear warm-up steps")
    p.add_argument("--preset", choices=("small", "tiny"), default="small", help="model size (tiny: for tests)")
    p.add_argument("--limit", type=int, default=None, help="train on a class-balanced subset of this many images")
    p.add_argument("--data", default=None, help="path of cifar-10-python.tar.gz (default: found automatically)")
    p.add_argument("--out", default=out)
    p.add_argument("--checkpoint-dir", default=checkpoint_dir)
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0 = TensorFlow's default)")
    p.add_argument("--seed", type=int, default=0)
    return p


def check_training_args(p: argparse.ArgumentParser, args) -> None:
    from trainer.artifacts import NotAnArtifactError, check_replaceable

    for name in ("epochs", "batch_size", "checkpoint_every", "warmup"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.limit is not None and args.limit < 10:
        p.error("--limit must be at least 10 (one image per class)")
    if args.lr <= 0 or args.threads < 0:
        p.error("--lr must be > 0 and --threads >= 0")
    from trainer.paths import BadPathError, check_output_dir

    try:
        check_output_dir(args.checkpoint_dir, "--checkpoint-dir")
        check_replaceable(Path(args.checkpoint_dir) / "current")
        check_replaceable(Path(args.out))
    except (BadPathError, NotAnArtifactError) as exc:
        p.error(str(exc))
