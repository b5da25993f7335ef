"""Publishing a trained run as a base model: ``NAME.safetensors`` (fp16 EMA G + D, the
config) and ``NAME.json`` (the card), loadable as ``base:NAME``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from link_core.errors import CheckpointError, UserError
from link_core.train.config import config_from_dict
from link_core.weights import checkpoint as ckpt
from linkgan import build
from linkgan.build import build_networks, open_data, resolve_weights
from linkgan.measuring import inception_metrics


def publish(
    ckpt_path: str | Path,
    name: str,
    out_dir: str | Path | None = None,
    command: str = "",
    quality: bool = True,
    progress: bool = True,
    fid_num: int = 500,
) -> dict[str, Any]:
    """Publish a trained run as a base model: ``NAME.safetensors`` (EMA G + D in fp16, the
    config) and ``NAME.json`` (the card: command, kimg, wall time, machine, quality
    figures), loadable as ``base:NAME`` when written to ``assets/``."""
    import datetime
    import platform
    import re

    if fid_num < 0:
        raise UserError(f"--fid-num: must be >= 0, got {fid_num}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]{0,63}", name):
        raise UserError(f"--name: use lowercase letters, digits and _ (got {name!r})")
    file = resolve_weights(ckpt_path)
    tensors, meta = ckpt.read_file(file, prefixes=("G_ema", "D"))
    if "counters" not in meta or not ckpt.split_prefix(tensors, "D"):
        raise UserError(f"{file}: not a training checkpoint (publishing needs G_ema and D)")
    cfg = config_from_dict(meta["config"])
    G, D = build_networks(cfg)
    ckpt.load_module(G, ckpt.split_prefix(tensors, "G_ema"), f"{file} (G_ema)")
    ckpt.load_module(D, ckpt.split_prefix(tensors, "D"), f"{file} (D)")
    G.eval().requires_grad_(False)
    counters = meta["counters"]
    card: dict[str, Any] = {
        "name": name,
        "backbone": cfg.model.backbone,
        "command": command,
        "source": str(file),
        "kimg": round(counters["images_seen"] / 1000, 3),
        "steps": counters["step"],
        "wall_minutes": round(counters["elapsed"] / 60, 1),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": cfg.train.num_threads,
            "device": cfg.train.device,
            "torch": torch.__version__,
        },
        "published": datetime.date.today().isoformat(),
        "weights": "EMA generator + discriminator, fp16",
    }
    card.update(_training_history(cfg.train.init, card))
    if quality:
        from linkgan.quality import image_quality, shape_quality

        card["quality"] = {"images": image_quality(G, open_data(cfg))}
        if fid_num > 0:
            card["quality"]["inception"] = inception_metrics(
                G, cfg, ["fid", "kid"], fid_num, progress
            )
        if G.is_3d:
            card["quality"]["shapes"] = shape_quality(G, data=cfg.data)
    out_dir = Path(out_dir) if out_dir is not None else build.ASSETS
    weights = ckpt.save_base_weights(out_dir / f"{name}.safetensors", G, D, meta["config"], card)
    card["file_mb"] = round(weights.stat().st_size / 2**20, 2)
    ckpt.write_json(out_dir / f"{name}.json", card)
    return card


def _training_history(init: str, card: dict[str, Any]) -> dict[str, Any]:
    """What a run continued from: a run started with ``train.init=base:NAME`` adds NAME's
    training (the card inside NAME's weights, read before they may be overwritten) to its
    own, so a base trained in several sittings says how much training it took in all.
    ``{}`` for a fresh run; only the name when NAME is no longer published."""
    if not str(init).startswith("base:"):
        return {}
    try:
        _, meta = ckpt.read_file(resolve_weights(init), prefixes=())
    except (UserError, CheckpointError):
        return {"init": {"from": init}}
    before = meta.get("card", {})
    kimg = before.get("kimg_total", before.get("kimg", 0.0))
    wall = before.get("wall_minutes_total", before.get("wall_minutes", 0.0))
    return {
        "init": {
            "from": init,
            "kimg": kimg,
            "wall_minutes": wall,
            "command": before.get("command", ""),
        },
        "kimg_total": round(kimg + card["kimg"], 3),
        "wall_minutes_total": round(wall + card["wall_minutes"], 1),
    }
