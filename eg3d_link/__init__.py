"""eg3d_link: the EG3D tri-plane backbone (Chan et al. 2022), pure PyTorch.

``build(model_cfg)`` turns the ``model`` section of the project config (EG3D settings in
``model.extra``, see :class:`~eg3d_link.options.EG3DOptions`) into ``(G, D)``;
``g_regularizers(model_cfg)`` gives the extra lazy G regularizers it brings to the loop.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from eg3d_link.networks import (
    DualDiscriminator,
    SuperResolution,
    TriplaneDecoder,
    TriplaneGenerator,
    sample_triplanes,
)
from eg3d_link.options import EG3DOptions, parse_options
from eg3d_link.regularizers import density_smoothness
from eg3d_link.renderer import RenderOptions, composite, render_rays
from link_core.train.phases import GRegularizer

__all__ = [
    "DualDiscriminator",
    "EG3DOptions",
    "RenderOptions",
    "SuperResolution",
    "TriplaneDecoder",
    "TriplaneGenerator",
    "build",
    "composite",
    "g_regularizers",
    "parse_options",
    "render_rays",
    "sample_triplanes",
]


def build(model_cfg: Any) -> tuple[TriplaneGenerator, DualDiscriminator]:
    """``(G, D)`` from a model config (``link_core.train.config.ModelConfig`` or lookalike).

    Reads ``resolution, z_dim, w_dim, mapping_layers, mapping_lr_mult, channel_base,
    channel_max, use_noise, style_init, mbstd_group, d_mapping_layers, d_channel_base,
    d_channel_max`` and the EG3D options in ``extra``. ``c_dim`` must be 25 (camera labels).
    """
    from link_core.errors import ConfigError

    cfg = model_cfg
    if cfg.c_dim != 25:
        raise ConfigError(f"model.c_dim: EG3D needs 25 (camera labels), got {cfg.c_dim}")
    opts = parse_options(cfg.extra, cfg.resolution)
    G = TriplaneGenerator(
        z_dim=cfg.z_dim,
        w_dim=cfg.w_dim,
        img_resolution=cfg.resolution,
        opts=opts,
        mapping_layers=cfg.mapping_layers,
        mapping_lr_mult=cfg.mapping_lr_mult,
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        use_noise=cfg.use_noise,
        style_init=cfg.style_init,
        # An EG3DOptions field once options.py has it; NVlabs imports want "nvlabs".
        depth_mode=opts.depth_mode,
    )
    D = DualDiscriminator(
        cfg.resolution,
        opts,
        channel_base=cfg.d_channel_base or cfg.channel_base,
        channel_max=cfg.d_channel_max or cfg.channel_max,
        mbstd_group=cfg.mbstd_group,
        cmap_layers=1 + getattr(cfg, "d_mapping_layers", 1),
    )
    return G, D


def g_regularizers(model_cfg: Any) -> list[GRegularizer]:
    """The density regularizer (when ``extra.density_reg > 0``)."""
    opts = parse_options(model_cfg.extra, model_cfg.resolution)
    if opts.density_reg <= 0:
        return []
    fn = partial(density_smoothness, opts=opts)
    return [GRegularizer("density", opts.density_reg_interval, opts.density_reg, fn)]
