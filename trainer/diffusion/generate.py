"""Generates images from prompts with the trained model (or the official weights).

    python -m trainer.diffusion.generate "a photo of a red truck" --seed 0 --steps 50 --out truck.png
    python -m trainer.diffusion.generate --grid "a photo of a ship" "a photo of a red automobile" \
        --seeds 0 1 2 3 --out docs/text2image_samples.png
    python -m trainer.diffusion.generate "a photo of an astronaut" --official   # uses $SD_WEIGHTS_DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_GUIDANCE = 20.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompts", nargs="+", help="one prompt (or several with --grid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="grid columns (default 0..3)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps, 1-1000 (default 50)")
    p.add_argument("--guidance", type=float, default=None,
                   help=f"guidance scale, 0-{MAX_GUIDANCE:g} (default: the model's)")
    p.add_argument("--model", default=None, help="model folder (default: the text-to-image deliverable)")
    p.add_argument("--official", action="store_true", help="full-size Stable Diffusion from $SD_WEIGHTS_DIR")
    p.add_argument("--grid", action="store_true", help="rows = prompts, columns = seeds, labelled")
    p.add_argument("--scale", type=int, default=4, help="upscaling of grid cells / single images (nearest)")
    p.add_argument("--out", default="generated.png", help="image file: " + ", ".join(IMAGE_SUFFIXES))
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    # Everything a user can get wrong is refused here, before the (slow) model load and sampling.
    if not args.grid and len(args.prompts) != 1:
        p.error("give one prompt, or --grid for several (quote prompts with spaces)")
    if args.scale < 1 or args.scale > 64:
        p.error("--scale must be from 1 to 64")
    if not 1 <= args.steps <= 1000:
        p.error("--steps must be from 1 to 1000")
    if args.guidance is not None and not 0.0 <= args.guidance <= MAX_GUIDANCE:
        p.error(f"--guidance must be from 0 to {MAX_GUIDANCE:g}")
    if any(s < 0 for s in [args.seed] + (args.seeds or [])):
        p.error("seeds must be non-negative integers")
    if args.threads < 0:
        p.error("--threads must be >= 0")
    out = Path(args.out)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        p.error(f"--out must end in one of {', '.join(IMAGE_SUFFIXES)}, got {args.out!r}")
    if out.is_dir():
        p.error(f"--out {args.out!r} is a folder; give a file name such as {out / 'generated.png'}")
    for prompt in args.prompts:
        if not prompt.strip():
            p.error("a prompt is empty: write a few words, e.g. 'a photo of a red truck'")
    return args


def make_grid(model, prompts, seeds, steps=50, guidance_scale=None, scale=4):
    """A labelled PIL image: one row per prompt, one column per seed."""
    from PIL import Image, ImageDraw

    rows = []
    for prompt in prompts:
        if hasattr(model, "generate_batch"):
            rows.append(model.generate_batch([prompt] * len(seeds), list(seeds), steps, guidance_scale))
        else:
            rows.append(np.stack([model.generate(prompt, seed=s, steps=steps, guidance_scale=guidance_scale)
                                  for s in seeds]))
    size = rows[0].shape[1] * scale
    label_w, pad = 230, 4
    grid = Image.new("RGB", (label_w + len(seeds) * (size + pad), len(prompts) * (size + pad) + 20), "white")
    draw = ImageDraw.Draw(grid)
    for j, seed in enumerate(seeds):
        draw.text((label_w + j * (size + pad) + 2, 4), f"seed {seed}", fill="black")
    for i, (prompt, images) in enumerate(zip(prompts, rows)):
        y = 20 + i * (size + pad)
        draw.text((4, y + size // 2 - 6), prompt, fill="black")
        for j, img in enumerate(images):
            cell = Image.fromarray(img).resize((size, size), Image.NEAREST)
            grid.paste(cell, (label_w + j * (size + pad), y))
    return grid


def main(argv=None) -> Path:
    args = parse_args(argv)
    from trainer.runtime import configure
    configure(args.threads)

    from PIL import Image

    from trainer.deliverables import deliverable_dir
    from trainer.diffusion import PromptError, load_official, load_text_to_image, official_weights_dir

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.official:
        folder = official_weights_dir()
        if folder is None:
            raise SystemExit("error: set SD_WEIGHTS_DIR to the folder with the official weights "
                             "(docs/TEXT_TO_IMAGE.md)")
        model = load_official(folder)
    else:
        try:
            model = load_text_to_image(args.model or deliverable_dir("text_to_image"))
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f"error: {exc}")
        for prompt in args.prompts:
            try:
                model.tokenizer.check(prompt)
            except PromptError as exc:
                raise SystemExit(f"error: bad prompt {prompt!r}: {exc}")
            unknown = model.tokenizer.unknown_words(prompt)
            if unknown:
                print(f"warning: the model does not know {', '.join(map(repr, unknown))} in {prompt!r} and "
                      f"ignores it; it knows: {', '.join(model.tokenizer.vocabulary[2:])}", file=sys.stderr)
    if args.grid:
        image = make_grid(model, args.prompts, args.seeds or [0, 1, 2, 3], args.steps, args.guidance, args.scale)
    else:
        def progress(i, total):
            print(f"\rstep {i}/{total}", end="" if i < total else "\n", file=sys.stderr, flush=True)
        array = model.generate(args.prompts[0], seed=args.seed, steps=args.steps,
                               guidance_scale=args.guidance, on_step=progress)
        image = Image.fromarray(array)
        if args.scale > 1:
            image = image.resize((array.shape[1] * args.scale, array.shape[0] * args.scale), Image.NEAREST)
    image.save(out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
