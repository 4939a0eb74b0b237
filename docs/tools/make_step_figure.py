"""Pictures for docs/HOW_IT_WORKS.md, made from the real text-to-image model.

    .venv/bin/python docs/tools/make_step_figure.py                       # all three figures
    .venv/bin/python docs/tools/make_step_figure.py --seed 3

Writes (all PNG, pixels enlarged with nearest-neighbour so nothing is smoothed or invented):

- docs/how_it_works_steps.png     one seed, one prompt per block, shown at several denoising
                                  steps: top row = the picture as it stands after that step (the
                                  current latent, decoded), bottom row = the model's guess of the
                                  finished picture at that step (the DDIM "predicted x0", decoded);
- docs/how_it_works_latent.png    a real CIFAR-10 test image -> its latent (16x16x4 for the
                                  current model) -> decoded back;
- docs/how_it_works_guidance.png  the same prompt and seed at several guidance scales.

It does not change or copy the sampler: it calls the package's own `ddim_sample` with a thin
wrapper around `model.predict_noise` that records what the sampler feeds the UNet, then decodes
those latents with the model's own decoder. The last column is checked to be identical to
`model.generate(prompt, seed, steps)` (the script stops if it is not).
A JSON record of what was drawn goes to docs/tools/how_it_works_figures.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trainer.deliverables import deliverable_dir  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(deliverable_dir("text_to_image")))
    p.add_argument("--prompts", nargs="+", default=["a photo of a blue ship", "a photo of a red truck"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--show", type=int, nargs="+", default=[0, 5, 10, 20, 30, 40, 50],
                   help="steps to show (0 = the starting noise)")
    p.add_argument("--guidance", type=float, default=None, help="default: the model's own")
    p.add_argument("--guidance-scales", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 5.0, 7.5])
    p.add_argument("--scale", type=int, default=4, help="pixel enlargement")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--outdir", default=str(ROOT / "docs"))
    p.add_argument("--record", default=str(ROOT / "docs" / "tools" / "how_it_works_figures.json"))
    p.add_argument("--only", choices=["steps", "latent", "guidance"], default=None)
    return p.parse_args(argv)


def font(size=14):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def sample_with_trace(model, prompt: str, seed: int, steps: int, guidance: float):
    """Runs the package's ddim_sample and returns {step: (current latent, predicted x0 latent)}."""
    from trainer.diffusion.schedule import ddim_sample, ddim_timesteps

    tokens = model.tokenizer.encode([prompt])
    context = model.encode_text(tokens)
    uncond = model.encode_text(model.tokenizer.encode([""], check=False))
    size, ch = model.config.latent_size, model.config.latent_channels
    noise = np.random.default_rng(int(seed)).standard_normal((size, size, ch)).astype(np.float32)[None]

    timesteps = ddim_timesteps(steps)[::-1]  # the order the sampler visits them
    trace = {}
    calls = []

    def recording_predict_noise(latent, t_emb, ctx):
        eps = np.asarray(model.predict_noise(latent, t_emb, ctx))
        calls.append((np.asarray(latent)[:1].copy(), eps))
        return eps

    final = ddim_sample(recording_predict_noise, context, uncond, noise, steps, guidance,
                        model.alphas, model.config.time_dim)
    for k, (latent, eps_both) in enumerate(calls):  # call k happens before step k+1
        cond, unc = eps_both[:1], eps_both[1:2]
        eps = unc + guidance * (cond - unc)
        a_t = float(model.alphas[timesteps[k]])
        pred_x0 = (latent - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        trace[k] = (latent, pred_x0)
    trace[steps] = (final, final)
    return trace, final, timesteps


def label_block(draw, x, y, text, fnt, fill="black"):
    draw.text((x, y), text, fill=fill, font=fnt)


def steps_figure(model, args, guidance, record):
    from PIL import Image, ImageDraw

    cell = model.image_size * args.scale
    pad, label_w, head_h, block_gap = 6, 250, 46, 18
    show = [s for s in args.show if 0 <= s <= args.steps]
    rows_per_prompt = 2
    height = head_h + len(args.prompts) * (rows_per_prompt * (cell + pad) + block_gap + 22) + 10
    width = label_w + len(show) * (cell + pad) + 10
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    f_big, f_small = font(16), font(13)
    draw.text((10, 8), f"From noise to picture: seed {args.seed}, {args.steps} denoising steps, "
                       f"guidance {guidance:g}", fill="black", font=f_big)
    for j, s in enumerate(show):
        txt = "start (noise)" if s == 0 else f"after step {s}"
        draw.text((label_w + j * (cell + pad), 30), txt, fill="black", font=f_small)
    y = head_h
    record["steps_figure"] = {"seed": args.seed, "steps": args.steps, "guidance": guidance,
                              "shown_steps": show, "prompts": []}
    for prompt in args.prompts:
        t0 = time.perf_counter()
        trace, final, timesteps = sample_with_trace(model, prompt, args.seed, args.steps, guidance)
        seconds = time.perf_counter() - t0
        check = model.generate(prompt, seed=args.seed, steps=args.steps, guidance_scale=guidance)
        decoded_final = model.decode_latents(final)[0]
        if not np.array_equal(check, decoded_final):
            raise SystemExit(f"traced sampling differs from model.generate for {prompt!r}: not drawing")
        draw.text((10, y), f'"{prompt}"', fill="black", font=f_big)
        y += 22
        current = model.decode_latents(np.concatenate([trace[s][0] for s in show]))
        guess = model.decode_latents(np.concatenate([trace[s][1] for s in show]))
        for r, (name, images) in enumerate([("the picture so far", current),
                                            ("the model's guess of\nthe finished picture", guess)]):
            draw.multiline_text((10, y + cell // 2 - 14), name, fill="black", font=f_small)
            for j, im in enumerate(images):
                tile = Image.fromarray(im).resize((cell, cell), Image.NEAREST)
                img.paste(tile, (label_w + j * (cell + pad), y))
            y += cell + pad
        y += block_gap
        noise_level = [round(math.sqrt(1 - float(model.alphas[timesteps[s]])), 3) if s < args.steps else 0.0
                       for s in show]
        record["steps_figure"]["prompts"].append({"prompt": prompt, "sampling_seconds": round(seconds, 2),
                                                  "noise_std_at_shown_steps": noise_level,
                                                  "matches_model_generate": True})
        print(f"steps figure: {prompt!r} traced in {seconds:.1f} s, final image == model.generate()", flush=True)
    out = Path(args.outdir) / "how_it_works_steps.png"
    img.save(out)
    print(f"wrote {out}")


def latent_figure(model, args, record):
    from PIL import Image, ImageDraw

    from trainer.data import CLASS_NAMES, load_cifar10
    from trainer.diffusion.captions import make_captions

    data = load_cifar10(None, splits=("test",))
    idx = [3, 6, 8]  # three CIFAR-10 test images; their captions are computed and drawn below
    images, labels = data.x_test[idx], data.y_test[idx]
    captions = make_captions(images, labels)
    z = model.encode_images(images)
    recon = model.decode_latents(z)
    s = args.scale
    size, ch = model.config.latent_size, model.config.latent_channels
    cell = model.image_size * s
    small = size * max(1, s * 8 // size)  # each latent channel drawn at ~32 px whatever its size
    pad, head = 8, 34
    width = 10 + cell + 40 + (2 * small + 4) + 40 + cell + 240
    height = head + len(idx) * (cell + 2 * pad + 16) + 10
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    f_big, f_small = font(15), font(12)
    n_px, n_lat = int(np.prod(images.shape[1:])), size * size * ch
    draw.text((10, 6), f"picture ({model.image_size}x{model.image_size}x3 = {n_px:,} numbers)  ->  "
                       f"latent ({size}x{size}x{ch} = {n_lat:,} numbers)  ->  decoded picture",
              fill="black", font=f_big)
    y = head
    lo, hi = float(np.percentile(z, 1)), float(np.percentile(z, 99))
    for i in range(len(idx)):
        x = 10
        img.paste(Image.fromarray(images[i]).resize((cell, cell), Image.NEAREST), (x, y))
        x += cell + 40
        draw.text((x - 30, y + cell // 2 - 8), "->", fill="black", font=f_big)
        for c in range(ch):  # 4 channels as a 2x2 block of grey maps
            m = np.clip((z[i, :, :, c] - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
            tile = Image.fromarray(m, mode="L").resize((small, small), Image.NEAREST).convert("RGB")
            img.paste(tile, (x + (c % 2) * (small + 4), y + (c // 2) * (small + 4)))
        x += 2 * small + 4 + 40
        draw.text((x - 30, y + cell // 2 - 8), "->", fill="black", font=f_big)
        img.paste(Image.fromarray(recon[i]).resize((cell, cell), Image.NEAREST), (x, y))
        draw.text((x + cell + 10, y + cell // 2 - 8), f"test image {idx[i]}: {captions[i]}", fill="black",
                  font=f_small)
        y += cell + 2 * pad + 16
    out = Path(args.outdir) / "how_it_works_latent.png"
    img.save(out)
    mse = float(((recon.astype(np.float64) - images) ** 2).mean())
    record["latent_figure"] = {"test_indices": idx, "captions": captions,
                               "classes": [CLASS_NAMES[int(c)] for c in labels],
                               "pixels_per_image": int(np.prod(images.shape[1:])),
                               "latent_numbers_per_image": int(np.prod(z.shape[1:])),
                               "reconstruction_mse_0_255_these_images": round(mse, 2)}
    print(f"wrote {out}")


def guidance_figure(model, args, record):
    from PIL import Image, ImageDraw

    scales = args.guidance_scales
    cell, pad, label_w, head = 32 * args.scale, 6, 250, 40
    img = Image.new("RGB", (label_w + len(scales) * (cell + pad) + 10,
                            head + len(args.prompts) * (cell + pad) + 10), "white")
    draw = ImageDraw.Draw(img)
    f_big, f_small = font(15), font(13)
    for j, g in enumerate(scales):
        txt = f"guidance {g:g}" + ("\n(text ignored)" if g == 0 else "")
        draw.multiline_text((label_w + j * (cell + pad), 4), txt, fill="black", font=f_small)
    for i, prompt in enumerate(args.prompts):
        y = head + i * (cell + pad)
        draw.text((10, y + cell // 2 - 8), f'"{prompt}"', fill="black", font=f_small)
        for j, g in enumerate(scales):
            im = model.generate(prompt, seed=args.seed, steps=args.steps, guidance_scale=g)
            img.paste(Image.fromarray(im).resize((cell, cell), Image.NEAREST), (label_w + j * (cell + pad), y))
    out = Path(args.outdir) / "how_it_works_guidance.png"
    img.save(out)
    record["guidance_figure"] = {"scales": scales, "seed": args.seed, "steps": args.steps, "prompts": args.prompts}
    print(f"wrote {out}")


def main(argv=None):
    args = parse_args(argv)
    from trainer.runtime import configure as set_threads
    set_threads(args.threads)
    from trainer.diffusion import load_text_to_image

    model = load_text_to_image(args.model)
    guidance = model.default_guidance_scale if args.guidance is None else args.guidance
    rec_path = Path(args.record)
    record = json.loads(rec_path.read_text()) if rec_path.is_file() and args.only else {}
    model_path = Path(args.model).resolve()
    record["model"] = str(model_path.relative_to(ROOT)) if model_path.is_relative_to(ROOT) else str(args.model)
    if args.only in (None, "steps"):
        steps_figure(model, args, guidance, record)
    if args.only in (None, "latent"):
        latent_figure(model, args, record)
    if args.only in (None, "guidance"):
        guidance_figure(model, args, record)
    rec_path.write_text(json.dumps(record, indent=1))
    print(f"wrote {rec_path}")


if __name__ == "__main__":
    main()
