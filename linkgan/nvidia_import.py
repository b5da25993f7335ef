"""``linkgan import``: an NVIDIA StyleGAN2-ADA snapshot -> our safetensors base model.

The pickle is read by :mod:`link_core.safe_pickle` (nothing in it runs); the architecture
is read off the tensors' shapes (the persistence records' constructor arguments fill in
what shapes cannot say); every one of our tensors must find its NVIDIA counterpart with
the same shape, and every NVIDIA tensor must be used (or be a known constant such as a
resampling filter), else the import stops and names the tensor. The result is a file like
``linkgan publish`` writes (EMA G + D, config, card), usable as ``--ckpt`` and as
``train.init`` for fine-tuning with links (the paper's recipe).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from link_core import checkpoint as ckpt
from link_core.config import config_from_dict, config_to_dict
from link_core.errors import CheckpointError, UserError
from link_core.safe_pickle import Record, load_nvidia_pickle
from stylegan_link import nvidia_names as names

NameFn = Callable[[str], str | None]


def _kind(record: Record, where: str) -> str:
    name = record.class_name
    if "stylegan3" in name or "networks_stylegan3" in name:
        raise CheckpointError(f"{where}: StyleGAN3 networks ({name}) are not supported")
    if name.endswith("TriPlaneGenerator"):
        raise CheckpointError(
            f"{where}: EG3D import is not implemented yet (StyleGAN2-ADA only so far)"
        )
    if name.endswith(".Generator") or name == "Generator":
        return "stylegan2"
    raise CheckpointError(f"{where}: G is a {name!r}, not a StyleGAN2-ADA Generator")


def _resolutions(keys: list[str], pattern: str) -> list[int]:
    return sorted({int(m[1]) for k in keys if (m := re.match(pattern, k))})


def _channel_schedule(channels: dict[int, int], where: str) -> tuple[int, int]:
    """(channel_base, channel_max) such that ``min(base // r, max) == channels[r]``."""
    cmax = max(channels.values())
    below = [(r, c) for r, c in channels.items() if c < cmax]
    base = below[0][1] * below[0][0] if below else cmax * max(channels)
    for r, c in channels.items():
        if max(1, min(base // r, cmax)) != c:
            raise CheckpointError(
                f"{where}: channel counts {dict(sorted(channels.items()))} do not follow "
                "StyleGAN2's min(channel_base // res, channel_max) schedule"
            )
    return base, cmax


def stylegan2_model(
    g: dict[str, torch.Tensor], d: dict[str, torch.Tensor] | None, kwargs: dict, where: str
) -> dict[str, Any]:
    """Our ``model`` config section for an NVIDIA StyleGAN2-ADA G (and D) from its tensors."""
    try:
        w_dim, fc0_in = g["mapping.fc0.weight"].shape
    except KeyError:
        raise CheckpointError(f"{where}: G has no mapping.fc0.weight") from None
    c_dim = int(g["mapping.embed.weight"].shape[1]) if "mapping.embed.weight" in g else 0
    keys = list(g)
    res = _resolutions(keys, r"synthesis\.b(\d+)\.")
    if not res:
        raise CheckpointError(f"{where}: G has no synthesis blocks")
    rgb = g[f"synthesis.b{res[-1]}.torgb.weight"].shape[0]
    if rgb != 3:
        raise CheckpointError(f"{where}: {rgb}-channel images (only RGB is supported)")
    base, cmax = _channel_schedule(
        {r: int(g[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in res}, f"{where} (G)"
    )
    mapping_kwargs = kwargs.get("mapping_kwargs") or {}
    model: dict[str, Any] = {
        "backbone": "stylegan2",
        "resolution": res[-1],
        "z_dim": int(fc0_in) - (int(w_dim) if c_dim else 0),
        "w_dim": int(w_dim),
        "c_dim": c_dim,
        "mapping_layers": len(_resolutions(keys, r"mapping\.fc(\d+)\.weight")),
        "mapping_lr_mult": float(mapping_kwargs.get("lr_multiplier", 0.01)),
        "channel_base": base,
        "channel_max": cmax,
        "use_noise": any(k.endswith("noise_strength") for k in keys),
    }
    if d:
        d_res = _resolutions(list(d), r"b(\d+)\.conv0\.")
        chans = {r: int(d[f"b{r}.conv0.weight"].shape[0]) for r in d_res}
        chans[4] = int(d["b4.conv.weight"].shape[0])
        model["d_channel_base"], model["d_channel_max"] = _channel_schedule(chans, f"{where} (D)")
    return model


def map_tensors(
    module: torch.nn.Module,
    nv: dict[str, torch.Tensor],
    nv_name: NameFn,
    where: str,
    convert: Callable[[str, torch.Tensor], torch.Tensor] = lambda n, t: t,
) -> dict[str, torch.Tensor]:
    """Our state dict for ``module`` filled from NVIDIA's tensors, all checked."""
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for ours, mine in module.state_dict().items():
        name = nv_name(ours)
        if name is None:
            raise CheckpointError(f"{where}: no NVIDIA name for our tensor {ours}")
        if name not in nv:
            raise CheckpointError(f"{where}: missing tensor {name} (for our {ours})")
        theirs = nv[name]
        if tuple(theirs.shape) != tuple(mine.shape):
            raise CheckpointError(
                f"{where}: {name} has shape {tuple(theirs.shape)}, expected {tuple(mine.shape)}"
            )
        if theirs.is_floating_point() and not bool(torch.isfinite(theirs).all()):
            raise CheckpointError(f"{where}: {name} holds NaN or Inf")
        state[ours] = convert(name, theirs).to(mine.dtype)
        used.add(name)
    extra = sorted(n for n in nv if n not in used and not names.is_ignored(n))
    if extra:
        raise CheckpointError(
            f"{where}: unexpected tensors {', '.join(extra[:3])}"
            + (f" (+{len(extra) - 3} more)" if len(extra) > 3 else "")
        )
    return state


def import_nvidia(pkl: str | Path, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Convert ``pkl`` and write ``out`` (a base-model safetensors file); returns the card."""
    from linkgan.api import build_networks

    pkl, out = Path(pkl), Path(out)
    if out.exists() and not force:
        raise UserError(f"--out: {out} already exists (use --force to replace it)")
    if out.suffix != ".safetensors":
        raise UserError(f"--out: {out} must end in .safetensors")
    snap = load_nvidia_pickle(pkl)
    g_key = "G_ema" if isinstance(snap.get("G_ema"), Record) else "G"
    g_rec = snap.get(g_key)
    if not isinstance(g_rec, Record):
        raise CheckpointError(f"{pkl}: no generator (G_ema or G) in the snapshot")
    _kind(g_rec, str(pkl))
    g_nv = dict(g_rec.tensors())
    d_rec = snap.get("D")
    d_nv = dict(d_rec.tensors()) if isinstance(d_rec, Record) else None
    model = stylegan2_model(g_nv, d_nv, g_rec.kwargs(), str(pkl))
    cfg = config_from_dict({"model": model, "data": {"resolution": model["resolution"]}})
    G, D = build_networks(cfg)
    ckpt.load_module(G, map_tensors(G, g_nv, names.generator_name, f"{pkl} ({g_key})"), str(pkl))
    d_note = "imported"
    if d_nv is None:
        raise CheckpointError(f"{pkl}: no discriminator (D) in the snapshot; fine-tuning needs it")
    d_state = map_tensors(
        D,
        d_nv,
        lambda k: names.discriminator_name(k, cfg.model.resolution),
        f"{pkl} (D)",
        convert=lambda n, t: names.convert_d(n, t, to_ours=True),
    )
    ckpt.load_module(D, d_state, str(pkl))
    card = {
        "name": out.stem,
        "backbone": "stylegan2",
        "imported_from": pkl.name,
        "generator": g_key,
        "discriminator": d_note,
        "published": datetime.date.today().isoformat(),
        "weights": "EMA generator + discriminator, fp32, converted from an NVIDIA pickle "
        "without running it",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt.save_base_weights(out, G, D, config_to_dict(cfg), card, dtype=torch.float32)
    return card
