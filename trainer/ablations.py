"""The one-change variants `python -m trainer.ablate` measures, as data, and which apply to which net."""

from __future__ import annotations

# name -> (what changes, extra train flags, hyperparameter overrides)
VARIANTS = {
    "base": ("the recipe as configured", [], {}),
    "cutout8": ("cutout 8: a 9x9 black square (DeVries & Taylor 2017)", ["--cutout", "8"], {}),
    "no_label_smoothing": ("label smoothing 0 instead of 0.1", [], {"label_smoothing": 0.0}),
    "separable_stage1": ("16x16 stage as separable blocks instead of full 3x3 convs", [],
                         {"first_stage": "separable"}),
    # airnet only (variants_for refuses them elsewhere): airbench's frozen BN scale, and what the
    # separable blocks cost against airbench's own full-conv blocks narrowed under 1M parameters.
    "learned_bn_scale": ("BatchNorm learns its scale (airbench freezes it at 1)", [], {"bn_scale": True}),
    "dense_blocks": ("all three blocks full 3x3 convs (airbench's own), widths 64/160/192, 2 convs each", [],
                     {"block_types": ["conv", "conv", "conv"], "widths": [64, 160, 192], "convs": [2, 2, 2]}),
}


def variants_for(arch: str, requested: list[str] | None) -> list[str]:
    """The requested variants (default: all that apply), refusing before any training one whose
    overrides the architecture would silently ignore."""
    from trainer.recipes import default_hyperparameters

    known = set(default_hyperparameters(arch))
    applies = {name: set(spec[2]) <= known for name, spec in VARIANTS.items()}
    if requested is None:
        return [name for name in VARIANTS if applies[name]]
    for name in requested:
        if not applies[name]:
            missing = ", ".join(sorted(set(VARIANTS[name][2]) - known))
            raise ValueError(f"variant {name} does not apply to arch {arch!r} (it has no hyperparameter {missing})")
    return requested
