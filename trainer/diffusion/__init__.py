"""Text-to-image latent diffusion (LDM, Rombach et al. 2022) built from KerasCV's Stable Diffusion parts.

    from trainer.diffusion import load_text_to_image
    model = load_text_to_image()                    # the deliverable named in saved_models/DELIVERABLES.json
    image = model.generate("a photo of a red truck", seed=0, steps=50)   # uint8 (32, 32, 3)

Heavy imports (TensorFlow, Keras) happen inside the functions, so importing this package is cheap.
"""

from __future__ import annotations

from trainer.diffusion.tokenizer import PromptError

def load_text_to_image(model_dir=None):
    """The trained small model (default: the text-to-image deliverable); FileNotFoundError /
    ValueError (with the path) if missing or corrupt."""
    from trainer.diffusion.model import load_model_dir

    return load_model_dir(model_dir)


def official_weights_dir():
    """Path from $SD_WEIGHTS_DIR (official KerasCV weights + CLIP vocab), or None when unset."""
    from trainer.diffusion.official import official_weights_dir as _dir

    return _dir()


def load_official(weights_dir, image_size: int = 512):
    """Full-size keras_cv.models.StableDiffusion from local files only, with the same .generate()."""
    from trainer.diffusion.official import load_official as _load

    return _load(weights_dir, image_size=image_size)


__all__ = ["PromptError", "load_text_to_image", "official_weights_dir", "load_official"]
