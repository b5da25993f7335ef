"""``linkgan train --dry-run``: the resolved model (for a fine-tune, what came from the
weights and what from the preset), where the schedules start, parameter counts and an
estimate of memory per process.

Static memory is counted exactly (fp32 weights of G, D and G's EMA; gradients; Adam's two
moments). Activations are *measured*: one G and D pass of two images runs on the CPU under
``torch.autograd.graph.saved_tensors_hooks`` and every tensor autograd keeps for backward
(parameters excluded, shared storages once) is added up, per image; each phase then scales
that by its per-process batch (the link phase renders ``2·links + 1`` versions of
``batch / batch_shrink`` images; R1 differentiates D twice). CUDA workspaces and allocator
fragmentation come on top: leave ~20 %.
"""

from __future__ import annotations

from typing import Any

import torch

from link_core.errors import ConfigError
from link_core.interface import view_cameras
from link_core.train.config import config_to_dict

MB = 2**20


def _activation_bytes(fn) -> tuple[int, Any]:
    """(bytes autograd saves for backward while ``fn()`` runs, its result)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter):
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(storages.values()), out


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def estimate_memory(
    config: str | None, overrides: list[str] | tuple[str, ...] = (), nproc: int = 1
) -> dict[str, Any]:
    """Parameter counts and the memory one of ``nproc`` processes needs, in MiB."""
    from linkgan.build import build_networks, resolve_config

    cfg, init = resolve_config(config, overrides)
    if nproc < 1 or cfg.train.batch % nproc:
        raise ConfigError(f"--nproc: train.batch {cfg.train.batch} does not split over {nproc}")
    per_gpu = cfg.train.batch // nproc
    torch.manual_seed(0)
    G, D = build_networks(cfg)
    start: dict[str, float] = {}
    for net in (G, D):  # what the first step will see
        start.update(net.update_schedule(init.schedule_kimg if init else 0.0))
    for net in (G, D):
        net.update_schedule(1e9)  # the schedules' end: largest rendering resolution, no D blur
    n_g, n_d = _params(G), _params(D)
    # fp32 weights (G, G_ema, D) + gradients (G, D) + Adam's two moments (G, D)
    static = 4 * ((2 * n_g + n_d) + (n_g + n_d) + 2 * (n_g + n_d))

    probe = 2
    z = torch.randn(probe, G.z_dim)
    c = view_cameras(G, probe)
    g_bytes, out = _activation_bytes(lambda: G.synthesis(G.mapping(z, c), c))
    d_bytes, _ = _activation_bytes(lambda: D({k: v.detach() for k, v in out.items()}, c))
    g_img, d_img = g_bytes / probe, d_bytes / probe

    links = len(cfg.link.links) if cfg.link.enabled else 0
    link_imgs = max(1, per_gpu // cfg.link.batch_shrink) * (2 * links + 1) if links else 0
    phases = {
        "G main (G + D on fakes)": per_gpu * (g_img + d_img),
        "D main (reals + fakes)": 2 * per_gpu * d_img,
        "D R1 (double backward)": 2 * per_gpu * d_img,
    }
    if links:
        feed = link_imgs - max(1, per_gpu // cfg.link.batch_shrink) if cfg.link.feed_d else 0
        phases[f"link ({links} links x 2 + 1 renders)"] = link_imgs * g_img + feed * d_img
    peak_phase = max(phases, key=phases.get)
    return {
        "config": config or "(defaults)",
        "model": _model_lines(config_to_dict(cfg)["model"], init.origin if init else {}),
        "init": None if init is None else {"weights": str(init.weights)},
        "schedule": {"start_kimg": init.schedule_kimg if init else 0.0, **start},
        "backbone": cfg.model.backbone,
        "params": {"G": n_g, "D": n_d},
        "processes": nproc,
        "batch_per_process": per_gpu,
        "static_mb": static / MB,
        "activations_per_image_mb": {"G": g_img / MB, "D": d_img / MB},
        "phases_mb": {k: v / MB for k, v in phases.items()},
        "peak_phase": peak_phase,
        "estimate_mb": (static + phases[peak_phase]) / MB,
    }


def _model_lines(model: dict[str, Any], origin: dict[str, str]) -> list[str]:
    """``key: value  [origin]`` for every model key (``extra`` flattened); without an origin
    (no ``train.init``) the value comes from the preset or the defaults."""
    flat = {k: v for k, v in model.items() if k != "extra"}
    flat.update({f"extra.{k}": v for k, v in model.get("extra", {}).items()})
    return [f"{k}: {v}" + (f"  [{origin[k]}]" if k in origin else "") for k, v in flat.items()]


def format_estimate(e: dict[str, Any]) -> str:
    """The dry-run report, one fact a line: the resolved model (and with ``train.init``
    where each value came from), where the schedules start, then the memory estimate."""
    lines = [f"config: {e['config']} ({e['backbone']})"]
    if e["init"]:
        lines.append(
            f"train.init: {e['init']['weights']} (model from the weights; [preset] / [--set] "
            "mark the values free on a fine-tune that this run changes)"
        )
    lines += ["model:", *(f"  {line}" for line in e["model"])]
    sched = e["schedule"]
    lines.append(
        f"schedules start at kimg {sched.pop('start_kimg'):g}"
        + "".join(f", {k} {v:g}" for k, v in sched.items())
    )
    lines += [
        f"parameters: G {e['params']['G']:,}  D {e['params']['D']:,}",
        f"processes: {e['processes']}  batch per process: {e['batch_per_process']}",
        f"static (weights, EMA, gradients, Adam; fp32): {e['static_mb']:.1f} MiB",
        "activations per image: "
        + "  ".join(f"{k} {v:.1f} MiB" for k, v in e["activations_per_image_mb"].items()),
    ]
    lines += [f"  phase {k}: {v:.1f} MiB" for k, v in e["phases_mb"].items()]
    lines.append(
        f"estimate per process: {e['estimate_mb']:.0f} MiB (peak in {e['peak_phase']}; "
        "add ~20 % for CUDA workspaces and fragmentation)"
    )
    return "\n".join(lines)
