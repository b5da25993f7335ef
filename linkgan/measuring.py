"""Measuring a loaded model: ``link_mse`` (masked MSE inside / outside each link's region)
and FID / KID (bundled Inception-v3, offline; data statistics cached)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from link_core.errors import UserError
from link_core.interface import seeds_to_z
from link_core.metrics import link_mse
from link_core.train.config import Config
from link_core.weights import checkpoint as ckpt
from linkgan.build import open_data

if TYPE_CHECKING:
    from linkgan.model import Model

METRICS = ("link_mse", "fid", "kid")


def measure(
    model: Model,
    metrics: list[str],
    num: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run named metrics and optionally write JSON atomically: ``link_mse`` (``num`` seeds,
    default ``metrics.num``), ``fid`` / ``kid`` (``num`` generated images, default 1000,
    against as many data-set images; data statistics cached)."""
    if num is not None and num < 1:
        raise UserError("--num: must be >= 1")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        what = unknown[0] if unknown else "(none)"
        raise UserError(f"--metrics: unknown metric {what!r} (known: {', '.join(METRICS)})")
    G, cfg = model.G, model.config
    result: dict[str, Any] = {"checkpoint": str(model.source)}
    if "link_mse" in metrics:
        links = model.links
        if not links:
            raise UserError(f"{model.spec}: the model's config has no links to measure")
        result.update(
            link_mse(
                G,
                links,
                num=num or cfg.metrics.num,
                seed=cfg.metrics.seed,
                mode=cfg.metrics.mode,
                alpha=cfg.link.alpha,
            )
        )
    if "fid" in metrics or "kid" in metrics:
        result.update(inception_metrics(G, cfg, metrics, num or 1000, progress))
    if out is not None:
        ckpt.write_json(out, result)
    return result


def fid_cache_dir(cfg: Config) -> Path:
    """Where a data set's Inception statistics live: beside a folder or zip data set
    (``NAME.linkgan-stats/``) when that is writable, else under the linkgan cache."""
    from link_core.data import cache_dir

    if cfg.data.path:
        data = Path(cfg.data.path).resolve()
        beside = data.parent / f"{data.name}.linkgan-stats"
        if os.access(data.parent, os.W_OK):
            return beside
    return cache_dir() / "inception-stats"


@torch.no_grad()
def inception_metrics(
    G: torch.nn.Module, cfg: Config, metrics: list[str], num: int, progress: bool
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from link_core.metrics.fid import (
        dataset_features,
        fid_from_features,
        generator_features,
        kid_from_features,
    )

    dataset = open_data(cfg)
    num = min(num, len(dataset))
    if num < 2:
        raise UserError(f"--num: FID/KID need at least 2 images (data set has {len(dataset)})")
    labels = torch.stack([dataset[i]["label"] for i in range(num)]) if G.c_dim else None
    bar = tqdm(total=2 * num, desc="inception", unit="img", disable=not progress)
    real = dataset_features(dataset, num, fid_cache_dir(cfg), progress=bar.update)

    def sample(start: int, count: int) -> torch.Tensor:
        # Seeds 0.. and the data set's own cameras: the pose distribution of the data.
        c = labels[start : start + count] if labels is not None else torch.zeros(count, 0)
        ws = G.mapping(seeds_to_z(range(start, start + count), G.z_dim), c)
        return G.synthesis(ws, c, noise_mode="const")["image"]

    fake = generator_features(sample, num, progress=bar.update)
    bar.close()
    out: dict[str, Any] = {"inception": {"num_real": num, "num_fake": num}}
    if "fid" in metrics:
        out["fid"] = round(fid_from_features(real, fake), 4)
    if "kid" in metrics:
        out["kid"] = round(kid_from_features(real, fake), 6)
    return out
