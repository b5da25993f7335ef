"""``linkgan import``: an NVIDIA StyleGAN2-ADA or EG3D snapshot -> our safetensors base model.

The pickle is read by :mod:`link_core.weights.safe_pickle` (nothing in it runs); the architecture
is read off the tensors' shapes (the persistence records' constructor arguments fill in
what shapes cannot say); every one of our tensors must find its NVIDIA counterpart with
the same shape, and every NVIDIA tensor must be used (or be a known constant such as a
resampling filter), else the import stops and names the tensor. The result is a file like
``linkgan publish`` writes (EMA G + D, config, card), usable as ``--ckpt`` and as
``train.init`` for fine-tuning with links (the paper's recipe). D's minibatch-std group and
the depth of its label MLP (NVIDIA: 8 layers) are read from D's record; the snapshot's kimg
(``network-snapshot-NNNNNN.pkl``) goes on the card as ``kimg``. Snapshots written by
NVIDIA's own code hold numpy scalars and ``EasyDict`` records: both are read as plain data.

EG3D (``TriPlaneGenerator``): the backbone, decoder, super-resolution and dual
discriminator map tensor for tensor; the rendering settings come from the record's
``rendering_kwargs`` and the architecture options that make our network compute what
NVlabs' computes are set (``plane_axes: xy-xz-zx``, ``sr_blocks`` from the SR block
classes, SR without noise, no density clamp at the box). What still differs is written on
the card (``differences``): sampling and compositing details of the renderer.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eg3d_link import nvidia_names as eg3d_names
from link_core.data.outputs import check_out_file
from link_core.errors import CheckpointError, UserError
from link_core.train.config import config_from_dict, config_to_dict
from link_core.weights import checkpoint as ckpt
from link_core.weights.safe_pickle import Record, load_nvidia_pickle
from stylegan_link import nvidia_names as names

NameFn = Callable[[str], str | None]

EG3D_DIFFERENCES = (
    "renderer (measured by bench/nvidia_fidelity.py on NVlabs' FFHQ-512 layout, random "
    "weights): our deterministic samples sit at the centres of N equal bins (NVlabs: N points "
    "from ray_start to ray_end, each jittered by torch.rand over one spacing), density is "
    "averaged after softplus (NVlabs: before), importance samples come from the unsmoothed "
    "coarse weights (NVlabs: max/avg-pooled + 0.01): image 37 dB, image_raw 47 dB against "
    "NVlabs, whose own renders differ by 47 / 51 dB from run to run; conv_clamp (±256) is "
    "applied only under fp16 (NVlabs: always; inactive unless activations exceed 256); "
    "depth is composited as NVlabs' Σwt / Σw (model.extra.depth_mode: nvlabs): 34 dB (tiny) "
    "and 41 dB (FFHQ-512) against NVlabs, whose own renders differ by 38 / 44 dB"
)


def _kind(record: Record, where: str) -> str:
    name = record.class_name
    if "stylegan3" in name or "networks_stylegan3" in name:
        raise CheckpointError(f"{where}: StyleGAN3 networks ({name}) are not supported")
    if name.endswith("TriPlaneGenerator"):
        return "eg3d"
    if name.endswith(".Generator") or name == "Generator":
        return "stylegan2"
    raise CheckpointError(
        f"{where}: G is a {name!r}, not a StyleGAN2-ADA Generator or EG3D TriPlaneGenerator"
    )


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


def _synthesis_model(g: dict[str, torch.Tensor], kwargs: dict, where: str) -> dict[str, Any]:
    """Mapping and synthesis settings of a StyleGAN2-ADA G (its tensors without prefix),
    plus ``img_channels`` (the last ToRGB's outputs)."""
    try:
        w_dim, fc0_in = g["mapping.fc0.weight"].shape
    except KeyError:
        raise CheckpointError(f"{where}: G has no mapping.fc0.weight") from None
    c_dim = int(g["mapping.embed.weight"].shape[1]) if "mapping.embed.weight" in g else 0
    keys = list(g)
    res = _resolutions(keys, r"synthesis\.b(\d+)\.")
    if not res:
        raise CheckpointError(f"{where}: G has no synthesis blocks")
    base, cmax = _channel_schedule(
        {r: int(g[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in res}, f"{where} (G)"
    )
    mapping_kwargs = kwargs.get("mapping_kwargs") or {}
    return {
        "resolution": res[-1],
        "z_dim": int(fc0_in) - (int(w_dim) if c_dim else 0),
        "w_dim": int(w_dim),
        "c_dim": c_dim,
        "mapping_layers": len(_resolutions(keys, r"mapping\.fc(\d+)\.weight")),
        "mapping_lr_mult": float(mapping_kwargs.get("lr_multiplier", 0.01)),
        "channel_base": base,
        "channel_max": cmax,
        "use_noise": any(k.endswith("noise_strength") for k in keys),
        "img_channels": int(g[f"synthesis.b{res[-1]}.torgb.weight"].shape[0]),
    }


def _d_channels(d: dict[str, torch.Tensor], where: str) -> dict[str, int]:
    d_res = _resolutions(list(d), r"b(\d+)\.conv0\.")
    chans = {r: int(d[f"b{r}.conv0.weight"].shape[0]) for r in d_res}
    chans[4] = int(d["b4.conv.weight"].shape[0])
    base, cmax = _channel_schedule(chans, f"{where} (D)")
    return {"d_channel_base": base, "d_channel_max": cmax}


def _mbstd(d_rec: Record, where: str) -> int:
    """D's minibatch-std group size, from the epilogue's ``mbstd`` record (their
    ``MinibatchStdLayer`` keeps ``group_size`` and ``num_channels``) or, failing that, D's
    ``epilogue_kwargs`` (StyleGAN2-ADA paper256/512: 8; EG3D and our default: 4)."""
    layer = _child(d_rec, "b4.mbstd")
    if layer is not None:
        group, channels = layer.state.get("group_size"), layer.state.get("num_channels", 1)
    else:
        epilogue = d_rec.kwargs().get("epilogue_kwargs") or {}
        group = epilogue.get("mbstd_group_size", 4)
        channels = epilogue.get("mbstd_num_channels", 1)
    if _count(channels) != 1:
        raise CheckpointError(f"{where}: D's minibatch std has {channels!r} channels (only 1)")
    if _count(group) < 1:  # None (the whole batch) included: not a setting of ours
        raise CheckpointError(f"{where}: D's minibatch-std group size {group!r} (need >= 1)")
    return _count(group)


def _count(value: Any) -> int:
    """``value`` as an int if it is an integer (numpy's too, not bool), else -1."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    return int(value) if ok else -1


def d_settings(d_rec: Record, d: dict[str, torch.Tensor], where: str) -> dict[str, int]:
    """The ``model`` keys D's record fixes: channel schedule, minibatch-std group and the
    depth of its label MLP (``mapping.fc0..N``; NVIDIA's default 8, conditional D only)."""
    out: dict[str, int] = {**_d_channels(d, where), "mbstd_group": _mbstd(d_rec, where)}
    fcs = _resolutions(list(d), r"mapping\.fc(\d+)\.weight")
    if fcs:
        if fcs != list(range(len(fcs))):
            raise CheckpointError(f"{where}: D's mapping layers are not fc0..fc{len(fcs) - 1}")
        out["d_mapping_layers"] = len(fcs)
    return out


def d_mapping_lr(d_rec: Record) -> float:
    """The lr multiplier of D's label MLP (stored weights are N(0, 1) / lr at NVIDIA)."""
    mapping_kwargs = d_rec.kwargs().get("mapping_kwargs") or {}
    lr = mapping_kwargs.get("lr_multiplier", names.D_CMAP_LR)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise CheckpointError(f"D's mapping_kwargs.lr_multiplier is {lr!r}, not a positive number")
    return float(lr)


def snapshot_kimg(pkl: Path) -> int | None:
    """kimg from NVIDIA's file name ``network-snapshot-NNNNNN.pkl`` (None: no number)."""
    m = re.fullmatch(r"network-snapshot-(\d+)\.pkl", pkl.name)
    return int(m[1]) if m else None


def stylegan2_model(
    g: dict[str, torch.Tensor], d_rec: Record, d: dict[str, torch.Tensor], kwargs: dict, where: str
) -> dict[str, Any]:
    """Our ``model`` config section for an NVIDIA StyleGAN2-ADA G and D from their tensors."""
    model = _synthesis_model(g, kwargs, where)
    rgb = model.pop("img_channels")
    if rgb != 3:
        raise CheckpointError(f"{where}: {rgb}-channel images (only RGB is supported)")
    return {"backbone": "stylegan2", **model, **d_settings(d_rec, d, where)}


def _child(record: Record, path: str) -> Record | None:
    for name in path.split("."):
        child = (record.state.get("_modules") or {}).get(name)
        if not isinstance(child, Record):
            return None
        record = child
    return record


def _setting(rk: dict, key: str, default: Any, kind: type, where: str) -> Any:
    """``rendering_kwargs[key]`` checked to be a ``kind`` (numbers: int or float)."""
    value = rk.get(key, default)
    ok = (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is float
        else isinstance(value, kind)
    )
    if not ok:
        raise CheckpointError(f"{where}: rendering_kwargs.{key} is {value!r}, not supported")
    return float(value) if kind is float else value


def eg3d_model(
    g_rec: Record, g: dict[str, torch.Tensor], d_rec: Record, d: dict[str, torch.Tensor], where: str
) -> tuple[dict[str, Any], Callable[[str, torch.Tensor], torch.Tensor]]:
    """Our ``model`` section for an NVlabs EG3D ``TriPlaneGenerator`` (and its D), and the
    conversion of G tensors whose storage differs (lr multipliers, conditioning scale)."""
    kwargs = g_rec.kwargs()
    rk = kwargs.get("rendering_kwargs")
    if not isinstance(rk, dict):
        raise CheckpointError(f"{where}: the EG3D generator record has no rendering_kwargs")
    if rk.get("disparity_space_sampling", False):
        raise CheckpointError(f"{where}: disparity-space ray sampling is not supported")
    if rk.get("clamp_mode", "softplus") != "softplus":
        raise CheckpointError(f"{where}: clamp_mode {rk.get('clamp_mode')!r} is not supported")
    for key in ("ray_start", "ray_end"):
        if rk.get(key) == "auto":
            raise CheckpointError(
                f"{where}: rendering_kwargs.{key} 'auto' (rays clipped to the box) is not supported"
            )
    backbone = {k[len("backbone.") :]: v for k, v in g.items() if k.startswith("backbone.")}
    model = _synthesis_model(backbone, kwargs, where)
    planes = model.pop("img_channels")
    plane_res = model.pop("resolution")
    if model["c_dim"] != 25:
        raise CheckpointError(
            f"{where}: EG3D generator conditioned on {model['c_dim']} values, expected 25"
        )
    try:
        hidden, plane_ch = g["decoder.net.0.weight"].shape
        feature_channels = int(g["decoder.net.2.weight"].shape[0]) - 1
    except KeyError:
        raise CheckpointError(f"{where}: the EG3D generator has no decoder.net.{{0,2}}") from None
    if planes != 3 * plane_ch:
        raise CheckpointError(
            f"{where}: backbone makes {planes} channels, decoder reads {plane_ch} per plane"
        )
    sr_blocks = []
    for j in _resolutions(list(g), r"superresolution\.block(\d+)\.conv1\.weight"):
        block = _child(g_rec, f"superresolution.block{j}")
        up = 1 if block is not None and block.class_name.endswith("NoUp") else 2
        sr_blocks.append([int(g[f"superresolution.block{j}.conv1.weight"].shape[0]), up])
    img_res = kwargs.get("img_resolution")
    if not isinstance(img_res, int) or isinstance(img_res, bool):
        raise CheckpointError(f"{where}: G record has no integer img_resolution ({img_res!r})")
    render_res = g_rec.state.get("neural_rendering_resolution", 64)
    if not isinstance(render_res, int) or render_res <= 0:
        render_res = 64
    sr_noise = _setting(rk, "superresolution_noise_mode", "none", str, where) != "none"
    extra: dict[str, Any] = {
        "plane_resolution": plane_res,
        "plane_channels": int(plane_ch),
        "decoder_hidden": int(hidden),
        "feature_channels": feature_channels,
        "render_resolution": render_res,
        "sr_blocks": sr_blocks,
        "sr_noise": sr_noise,
        "plane_axes": "xy-xz-zx",
        "ray_start": _setting(rk, "ray_start", 2.25, float, where),
        "ray_end": _setting(rk, "ray_end", 3.3, float, where),
        "box_size": _setting(rk, "box_warp", 1.0, float, where),
        "num_coarse": int(_setting(rk, "depth_resolution", 48, float, where)),
        "num_fine": int(_setting(rk, "depth_resolution_importance", 48, float, where)),
        "white_background": bool(rk.get("white_back", False)),
        "clamp_box": False,  # NVlabs decodes density everywhere along the ray
        "camera_radius": _setting(rk, "avg_camera_radius", 2.7, float, where),
        "camera_pivot": [float(v) for v in rk.get("avg_camera_pivot", [0.0, 0.0, 0.2])],
        "pose_cond": True,
        # image + raw stacked; a missing tensor is named by the mapping below
        "dual_d": d.get(f"b{img_res}.fromrgb.weight", torch.empty(0, 6)).shape[1] == 6,
    }
    if not sr_blocks:
        extra["sr_factor"] = 1
    extra["depth_mode"] = "nvlabs"  # NVlabs: Σwt / Σw, clamped to the ray range
    model = {
        "backbone": "eg3d",
        "resolution": img_res,
        **model,
        "extra": extra,
        **d_settings(d_rec, d, where),
    }
    lr = _setting(rk, "decoder_lr_mul", 1.0, float, where)
    c_scale = _setting(rk, "c_scale", 1.0, float, where)
    if rk.get("c_gen_conditioning_zero"):
        c_scale = 0.0

    def convert(name: str, t: torch.Tensor) -> torch.Tensor:
        # Ours: lr 1 decoder (stored = run-time weight·sqrt(fan_in)); NVlabs: lr decoder_lr_mul.
        if name.startswith("decoder.net."):
            return t * lr
        # NVlabs' mapping sees c·c_scale (0 with c_gen_conditioning_zero): fold it into embed.
        if name == "backbone.mapping.embed.weight":
            return t * c_scale
        return t

    return model, convert


def map_tensors(
    module: torch.nn.Module,
    nv: dict[str, torch.Tensor],
    nv_name: NameFn,
    where: str,
    convert: Callable[[str, torch.Tensor], torch.Tensor] = lambda n, t: t,
    keep: tuple[str, ...] = (),
    ignored: Callable[[str], bool] = names.is_ignored,
) -> dict[str, torch.Tensor]:
    """Our state dict for ``module`` filled from NVIDIA's tensors, all checked. ``keep``:
    our tensors with no NVIDIA counterpart that keep their value (schedule buffers);
    ``ignored``: NVIDIA tensors with no counterpart here."""
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for ours, mine in module.state_dict().items():
        if ours in keep:
            state[ours] = mine
            continue
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
    extra = sorted(n for n in nv if n not in used and not ignored(n))
    if extra:
        raise CheckpointError(
            f"{where}: unexpected tensors {', '.join(extra[:3])}"
            + (f" (+{len(extra) - 3} more)" if len(extra) > 3 else "")
        )
    return state


def import_nvidia(pkl: str | Path, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Convert ``pkl`` and write ``out`` (a base-model safetensors file); returns the card."""
    from linkgan.build import build_networks

    pkl, out = Path(pkl), check_out_file(out)
    if out.exists() and not force:
        raise UserError(f"--out: {out} already exists (use --force to replace it)")
    if out.suffix != ".safetensors":
        raise UserError(f"--out: {out} must end in .safetensors")
    snap = load_nvidia_pickle(pkl)
    g_key = "G_ema" if isinstance(snap.get("G_ema"), Record) else "G"
    g_rec = snap.get(g_key)
    if not isinstance(g_rec, Record):
        raise CheckpointError(f"{pkl}: no generator (G_ema or G) in the snapshot")
    kind = _kind(g_rec, str(pkl))
    g_nv = dict(g_rec.tensors())
    d_rec = snap.get("D")
    if not isinstance(d_rec, Record):
        raise CheckpointError(f"{pkl}: no discriminator (D) in the snapshot; fine-tuning needs it")
    d_nv = dict(d_rec.tensors())
    d_lr = d_mapping_lr(d_rec)
    if kind == "eg3d":
        model, g_convert = eg3d_model(g_rec, g_nv, d_rec, d_nv, str(pkl))
        sr_noise = model["extra"]["sr_noise"]
        g_name, d_name = eg3d_names.generator_name, eg3d_names.discriminator_name
        keep = eg3d_names.OURS_ONLY

        def ignored(n: str) -> bool:
            return eg3d_names.is_ignored(n, sr_noise)

    else:
        model = stylegan2_model(g_nv, d_rec, d_nv, g_rec.kwargs(), str(pkl))
        g_convert, keep, ignored = (lambda n, t: t), (), names.is_ignored
        g_name, d_name = names.generator_name, names.discriminator_name
    cfg = config_from_dict({"model": model, "data": {"resolution": model["resolution"]}})
    G, D = build_networks(cfg)
    g_state = map_tensors(
        G, g_nv, g_name, f"{pkl} ({g_key})", g_convert, keep=keep, ignored=ignored
    )
    ckpt.load_module(G, g_state, str(pkl))
    d_state = map_tensors(
        D,
        d_nv,
        lambda k: d_name(k, cfg.model.resolution),
        f"{pkl} (D)",
        convert=lambda n, t: names.convert_d(n, t, to_ours=True, lr_mult=d_lr),
        keep=keep,
        ignored=ignored,
    )
    ckpt.load_module(D, d_state, str(pkl))
    card = {
        "name": out.stem,
        "backbone": kind,
        "imported_from": pkl.name,
        "generator": g_key,
        "discriminator": "imported",
        "published": datetime.date.today().isoformat(),
        "weights": "EMA generator + discriminator, fp32, converted from an NVIDIA pickle "
        "without running it",
    }
    kimg = snapshot_kimg(pkl)
    if kimg is not None:  # where NVIDIA's schedules stood (training continues from there)
        card["kimg"] = kimg
    if kind == "eg3d":
        card["differences"] = EG3D_DIFFERENCES
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt.save_base_weights(out, G, D, config_to_dict(cfg), card, dtype=torch.float32)
    return card
