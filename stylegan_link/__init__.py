"""stylegan_link: the StyleGAN2 backbone (Karras et al. 2020), pure PyTorch.

``build(model_cfg)`` turns the ``model`` section of the project config into ``(G, D)``.
"""

from __future__ import annotations

from typing import Any

from stylegan_link.networks import (
    Discriminator,
    Generator,
    MappingNetwork,
    SynthesisBlock,
    SynthesisNetwork,
)

__all__ = [
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "SynthesisBlock",
    "SynthesisNetwork",
    "build",
]

IMG_CHANNELS = 3


def build(model_cfg: Any) -> tuple[Generator, Discriminator]:
    """Build ``(G, D)`` from a model config (``link_core.train.config.ModelConfig`` or lookalike).

    Reads ``resolution, z_dim, w_dim, c_dim, mapping_layers, mapping_lr_mult, channel_base,
    channel_max, use_noise, style_init, mbstd_group, d_mapping_layers, d_channel_base,
    d_channel_max``; the two D channel values may be 0 or None, meaning the generator's values.
    """
    cfg = model_cfg
    channel_base = cfg.channel_base
    channel_max = cfg.channel_max
    G = Generator(
        z_dim=cfg.z_dim,
        c_dim=cfg.c_dim,
        w_dim=cfg.w_dim,
        img_resolution=cfg.resolution,
        img_channels=IMG_CHANNELS,
        mapping_layers=cfg.mapping_layers,
        mapping_lr_mult=cfg.mapping_lr_mult,
        channel_base=channel_base,
        channel_max=channel_max,
        use_noise=cfg.use_noise,
        style_init=cfg.style_init,
    )
    D = Discriminator(
        c_dim=cfg.c_dim,
        img_resolution=cfg.resolution,
        img_channels=IMG_CHANNELS,
        channel_base=cfg.d_channel_base or channel_base,
        channel_max=cfg.d_channel_max or channel_max,
        mbstd_group_size=cfg.mbstd_group,
        # D's conditioning MLP: the label embedding, then d_mapping_layers lrelu layers.
        cmap_layers=1 + getattr(cfg, "d_mapping_layers", 1),
    )
    return G, D
