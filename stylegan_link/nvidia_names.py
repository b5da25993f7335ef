"""Our StyleGAN2 tensor names <-> NVIDIA StyleGAN2-ADA's (``network-snapshot.pkl`` records).

Both store equalized-lr weights the same way (N(0, 1) / lr_mul, scaled at run time), so
a tensor moves across unchanged when the two layers use the same lr multiplier; where they
differ (:data:`D_CMAP_LR`) :func:`convert_d` rescales so the run-time weights are equal.
NVIDIA names blocks by resolution (``synthesis.b64``, ``b4.fc``), we by index.
"""

from __future__ import annotations

import re

import torch

# NVIDIA's discriminator conditions through a MappingNetwork(z_dim=0): an `embed` layer
# (lr 1) and fc0.. (lr 0.01); ours through `cmap` (every layer lr 1).
D_CMAP_LR = 0.01
# Filters and other constants NVIDIA keeps as buffers; ours are computed, not stored.
IGNORED = re.compile(r"(^|\.)(resample_filter|up_filter|down_filter)$")


def _block_res(index: int) -> int:
    return 4 * 2**index


def mapping_name(ours: str, nv_prefix: str = "mapping.") -> str | None:
    """``mapping_net.layers.i.X`` -> ``mapping.fc{i}.X``; ``embed``, ``w_avg`` keep theirs."""
    m = re.fullmatch(r"mapping_net\.layers\.(\d+)\.(.+)", ours)
    if m:
        return f"{nv_prefix}fc{m[1]}.{m[2]}"
    m = re.fullmatch(r"mapping_net\.(embed\..+|w_avg)", ours)
    return f"{nv_prefix}{m[1]}" if m else None


def synthesis_name(ours: str, our_prefix: str, nv_prefix: str) -> str | None:
    """``{our_prefix}blocks.j.X`` -> ``{nv_prefix}b{4·2^j}.X`` (same names inside a block)."""
    m = re.fullmatch(re.escape(our_prefix) + r"blocks\.(\d+)\.(.+)", ours)
    return f"{nv_prefix}b{_block_res(int(m[1]))}.{m[2]}" if m else None


def generator_name(ours: str) -> str | None:
    """NVIDIA's name of one of our StyleGAN2 generator's tensors (None: not NVIDIA's)."""
    return mapping_name(ours) or synthesis_name(ours, "synthesis_net.", "synthesis.")


def discriminator_name(ours: str, img_resolution: int, our_prefix: str = "") -> str | None:
    """NVIDIA's name of one of our ResNet discriminator's tensors (None: not NVIDIA's)."""
    if not ours.startswith(our_prefix):
        return None
    rest = ours[len(our_prefix) :]
    if rest.startswith("from_rgb."):
        return f"b{img_resolution}.fromrgb.{rest[9:]}"
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", rest)
    if m:
        return f"b{img_resolution // 2 ** int(m[1])}.{m[2]}"
    m = re.fullmatch(r"(conv|fc|out)\.(.+)", rest)
    if m:
        return f"b4.{m[1]}.{m[2]}"
    m = re.fullmatch(r"cmap\.(\d+)\.(.+)", rest)
    if m:
        i = int(m[1])
        return f"mapping.embed.{m[2]}" if i == 0 else f"mapping.fc{i - 1}.{m[2]}"
    return None


def convert_d(
    nv_name: str, tensor: torch.Tensor, to_ours: bool, lr_mult: float = D_CMAP_LR
) -> torch.Tensor:
    """A discriminator tensor in the other side's storage: the conditioning MLP's fc layers
    run at lr ``lr_mult`` at NVIDIA (their default 0.01) and 1 here, so their stored values
    differ by that factor."""
    if re.fullmatch(r"mapping\.fc\d+\.(weight|bias)", nv_name):
        return tensor * (lr_mult if to_ours else 1.0 / lr_mult)
    return tensor


def is_ignored(nv_name: str) -> bool:
    """NVIDIA buffers with no counterpart here (resampling filters we compute)."""
    return bool(IGNORED.search(nv_name))
