"""Measuring a loaded model: ``link_mse`` (masked MSE inside / outside each link's region),
FID / KID the paper's way (bundled Inception-v3, offline; the whole data set's statistics,
cached; the protocol stated in the result; ``repeats`` for their noise), per part
``diversity`` and ``attributes`` (:mod:`linkgan.part_quality`), and for 3-D models
``shapes``: statistics of exported meshes (:func:`linkgan.quality.shape_quality`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from link_core.data.outputs import check_out_file
from link_core.errors import UserError
from link_core.interface import seeds_to_z
from link_core.metrics import link_mse
from link_core.train.config import Config
from link_core.weights import checkpoint as ckpt
from linkgan.build import open_data

if TYPE_CHECKING:
    from linkgan.model import Model

METRICS = ("link_mse", "fid", "kid", "diversity", "attributes", "shapes")
FID_NUM = 1000
"""Fakes for FID/KID when ``num`` is not given: modest for a CPU (the paper's is 50000)."""


def measure(
    model: Model,
    metrics: list[str],
    num: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    real_num: int | None = None,
    fake_seed: int = 0,
    repeats: int = 1,
) -> dict[str, Any]:
    """Run named metrics and optionally write JSON atomically: ``link_mse`` (``num`` seeds,
    default ``metrics.num``), ``fid`` / ``kid`` (``num`` generated images, default
    ``FID_NUM``, against the statistics of the whole data set, or of a random ``real_num``
    of its images; see :func:`inception_metrics`, whose ``protocol`` the result carries;
    ``repeats`` > 1: as many disjoint sets of fakes, reported as mean ± std), ``diversity``
    (``num`` seeds, default 256: :func:`~linkgan.part_quality.part_diversity`),
    ``attributes`` (``num`` fakes, default 1024:
    :func:`~linkgan.part_quality.attribute_check`) and ``shapes`` (3-D: meshes of ``num``
    seeds at 96³, default 8: extent, volume, watertight share and connected pieces, the
    figures a published card holds)."""
    if num is not None and num < 1:
        raise UserError("--num: must be >= 1")
    if repeats < 1:
        raise UserError(f"--repeats: must be >= 1, got {repeats}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        what = unknown[0] if unknown else "(none)"
        raise UserError(f"--metrics: unknown metric {what!r} (known: {', '.join(METRICS)})")
    if out is not None:
        check_out_file(out)
    G, cfg = model.G, model.config
    per_link = [m for m in metrics if m in ("link_mse", "diversity")]
    if per_link and not model.links:  # before any metric runs
        raise UserError(f"{model.spec}: the model's config has no links to measure ({per_link[0]})")
    if "shapes" in metrics and not model.is_3d:
        raise UserError(f"--metrics shapes: {model.spec} is a 2-D model (no meshes to export)")
    result: dict[str, Any] = {"checkpoint": str(model.source)}
    if "link_mse" in metrics:
        result.update(
            link_mse(
                G,
                model.links,
                num=num or cfg.metrics.num,
                seed=cfg.metrics.seed,
                mode=cfg.metrics.mode,
                alpha=cfg.link.alpha,
            )
        )
    if "fid" in metrics or "kid" in metrics:
        count = num or FID_NUM
        runs = [
            inception_metrics(
                G, cfg, metrics, count, progress, real_num=real_num, seed=fake_seed + k * count
            )
            for k in range(repeats)
        ]
        result.update(runs[0])
        if repeats > 1:
            result.update(_spread(runs, metrics))
    if "diversity" in metrics or "attributes" in metrics:
        from linkgan.part_quality import attribute_check, part_diversity

        if "diversity" in metrics:
            result["diversity"] = part_diversity(G, model.links, cfg, num=num or 256)
        if "attributes" in metrics:
            result["attributes"] = attribute_check(G, cfg, num or 1024, progress=progress)
    if "shapes" in metrics:
        from linkgan.quality import shape_quality

        result["shapes"] = shape_quality(G, num=num or 8, data=cfg.data)
    if out is not None:
        ckpt.write_json(out, result)
    return result


def _spread(runs: list[dict[str, Any]], metrics: list[str]) -> dict[str, Any]:
    """Mean, sample std and every value of FID / KID over repeats on disjoint fakes (the
    first run's value stays the headline ``fid`` / ``kid``, comparable with one run)."""
    out: dict[str, Any] = {}
    for name in ("fid", "kid"):
        if name in metrics:
            values = np.array([r[name] for r in runs], dtype=np.float64)
            out[f"{name}_mean"] = round(float(values.mean()), 6)
            out[f"{name}_std"] = round(float(values.std(ddof=1)), 6)
            out[f"{name}_runs"] = [float(v) for v in values]
    first, last = runs[0]["protocol"]["fake_latents"], runs[-1]["protocol"]["fake_latents"]
    out["repeats"] = {"count": len(runs), "first": first, "last": last}
    return out


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


def _size_name(n: int) -> str:
    """NVIDIA's metric-name count: 50000 -> ``50k``, 500 -> ``500``."""
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


@torch.no_grad()
def inception_metrics(
    G: torch.nn.Module,
    cfg: Config,
    metrics: list[str],
    num: int,
    progress: bool,
    *,
    real_num: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """FID / KID the paper's way (StyleGAN2-ADA's ``fid50k_full`` / ``kid50k_full``).

    Reals: every image of the data set as configured (``data.xflip`` counts the mirrored
    half, as NVIDIA's training-set statistics do), or a seeded random ``real_num`` of them
    for a quick check; their statistics are cached (:func:`fid_cache_dir`). Fakes: ``num``
    images of latents ``seed …`` (truncation 1, constant noise), each conditioned on the
    label of a data-set image drawn at random with ``seed`` (EG3D: its camera). Runs on G's
    device. Returns ``fid`` / ``kid``, the counts and a ``protocol`` that states all this.
    """
    from link_core.data import ImageFolderDataset
    from link_core.metrics.fid import (
        FEATURE_NET,
        KID_REAL_CAP,
        RESIZE,
        dataset_stats,
        fid_from_stats,
        generator_stats,
        kid_from_features,
    )

    if num < 2:
        raise UserError(f"--num: FID/KID need at least 2 generated images, got {num}")
    if real_num is not None and real_num < 2:
        raise UserError(f"--real-num: FID/KID need at least 2 real images, got {real_num}")
    dataset = open_data(cfg)
    if len(dataset) < 2:
        raise UserError(f"FID/KID need at least 2 data-set images (the set has {len(dataset)})")
    param = next(G.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    cuda = device.type == "cuda"
    batch = 64 if cuda else 32
    # Decoding PNGs, not Inception, bounds a GPU's pace on a large folder or zip.
    folder = isinstance(dataset, ImageFolderDataset)
    workers = min(8, (os.cpu_count() or 1) - 1) if cuda and folder else 0
    real, stats_file, cached = dataset_stats(
        dataset, fid_cache_dir(cfg), real_num, batch, device, KID_REAL_CAP, workers, progress
    )

    fake_c = None
    if G.c_dim:
        labels = real.labels
        if labels is None or labels.ndim != 2 or labels.shape[1] != G.c_dim:
            have = 0 if labels is None or labels.ndim != 2 else labels.shape[1]
            raise UserError(f"the data set's labels have {have} values; the model needs {G.c_dim}")
        # NVIDIA's protocol: each fake takes the label of a random data-set image.
        pick = np.random.default_rng(seed).integers(len(labels), size=num)
        fake_c = torch.from_numpy(labels[pick])

    def sample(start: int, count: int) -> torch.Tensor:
        z = seeds_to_z(range(seed + start, seed + start + count), G.z_dim).to(device)
        c = fake_c[start : start + count] if fake_c is not None else torch.zeros(count, 0)
        c = c.to(device)
        ws = G.mapping(z, c)
        return G.synthesis(ws, c, noise_mode="const")["image"]

    # A 3-D generator renders a volume per image: smaller batches keep its memory bounded.
    gen_batch = max(1, batch // 4) if G.is_3d else batch
    keep = num if "kid" in metrics else 0  # all fake features for KID, as NVIDIA keeps them
    fake = generator_stats(sample, num, gen_batch, device, keep, progress)

    out: dict[str, Any] = {
        "inception": {"num_real": real.num, "num_fake": num},
        "protocol": _protocol(cfg, dataset, real.num, len(real.features), num, seed),
    }
    out["protocol"].update(real_stats=str(stats_file), real_stats_cached=cached)
    if "fid" in metrics:
        out["fid"] = round(fid_from_stats(real.mean, real.cov, fake.mean, fake.cov), 4)
    if "kid" in metrics:
        out["kid"] = round(kid_from_features(real.features, fake.features), 6)
        out["protocol"]["kid"] = (
            f"unbiased MMD^2, cubic kernel, 100 subsets of {min(1000, len(real.features), num)}"
            f" features per side ({len(real.features)} real features kept, at most"
            f" {KID_REAL_CAP})"
        )
    out["protocol"]["feature_net"] = FEATURE_NET
    out["protocol"]["resolution"] = f"{cfg.model.resolution}^2 images, {RESIZE}"
    return out


def _protocol(
    cfg: Config, dataset: Any, num_real: int, kid_real: int, num_fake: int, seed: int
) -> dict[str, Any]:
    """How FID / KID were measured, in words and numbers (stored beside the figures)."""
    full = num_real == len(dataset)
    xflip = bool(getattr(dataset, "xflip", False))
    mirrored = ", x-flips included (data.xflip)" if xflip else ""
    real = (
        f"full data set, {num_real} images{mirrored}"
        if full
        else f"random {num_real} of the data set's {len(dataset)} images (--real-num){mirrored}"
    )
    name = f"{_size_name(num_fake)}{'_full' if full else ''}"
    labels = (
        f"random data-set labels (numpy seed {seed})" if cfg.model.c_dim else "none (unconditional)"
    )
    return {
        "name": f"fid{name} / kid{name}",
        "summary": f"{num_fake} fakes vs {real}; Inception-v3 at 299^2",
        "real": real,
        "real_images": num_real,
        "real_full": full,
        "data_set_images": len(dataset),
        "xflip": xflip,
        "fake": num_fake,
        "fake_latents": f"seeds {seed}..{seed + num_fake - 1}, truncation 1, noise const",
        "fake_labels": labels,
    }
