"""Model sizes and training settings, saved as config.json beside the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass
class DiffusionConfig:
    image_size: int = 32
    latent_channels: int = 4
    # One width per level; 2 levels = one 2x downsampling (f=2, 16x16x4 latents). f=4 (8x8x4)
    # capped what a classifier could recognise in reconstructions far below the originals.
    ae_widths: tuple = (32, 64)
    ae_attention: bool = False
    text_dim: int = 128
    text_layers: int = 2
    text_heads: int = 4
    max_length: int = 12                     # words per prompt
    unet_widths: tuple = (32, 64, 128)       # latent 16x16, 8x8 and 4x4; narrow where the map is large
    unet_attention: tuple = (False, True, True)  # cross-attention where the map is small
    unet_heads: int = 4
    unet_blocks: int = 2
    time_dim: int = 64
    # The mean of the text states, added to the time embedding (as Imagen and SDXL do): every
    # ResBlock sees the prompt, not only the attention layers.
    pooled_text: bool = True
    prediction: str = "epsilon"              # what the UNet predicts: "epsilon" or "v" (Salimans & Ho)
    snr_gamma: float = 0.0                   # min-SNR-gamma loss weighting (Hang et al. 2023); 0 = off
    latent_scale: float = 1.0                # measured after stage 1 (KerasCV hard-codes 0.18215)
    guidance_scale: float = 4.0              # default classifier-free guidance for generate()
    p_uncond: float = 0.1                    # caption dropout: empty caption
    p_class_only: float = 0.2                # caption without its colour word

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.ae_widths) - 1)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "DiffusionConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        config = cls(**data)
        if config.prediction not in ("epsilon", "v"):
            raise ValueError(f"prediction must be 'epsilon' or 'v', got {config.prediction!r}")
        return config

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path) -> "DiffusionConfig":
        path = Path(path)
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            raise
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"model config {path} is corrupt: {exc}") from exc


def tiny_config() -> DiffusionConfig:
    """For tests: seconds to build and train."""
    return DiffusionConfig(ae_widths=(32, 32), ae_attention=False, text_dim=32, text_layers=1,
                           text_heads=2, max_length=10, unet_widths=(32, 64),
                           unet_attention=(False, True), unet_heads=2, unet_blocks=1, time_dim=32)


def with_autoencoder(config: DiffusionConfig, autoencoder: DiffusionConfig) -> DiffusionConfig:
    """`config` with the first-stage fields (image size, latent shape, widths) of a trained autoencoder."""
    from dataclasses import replace

    return replace(config, image_size=autoencoder.image_size, latent_channels=autoencoder.latent_channels,
                   ae_widths=autoencoder.ae_widths, ae_attention=autoencoder.ae_attention)
