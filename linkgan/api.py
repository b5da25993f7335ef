"""The public API: build, train, load, generate, edit, measure.

The face is the only package that sees everything: it resolves ``model.backbone`` to a
backbone's ``build`` and hands networks, links and data to ``link_core`` and ``render``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from link_core import checkpoint as ckpt
from link_core.config import Config, config_from_dict, config_to_dict, load_config
from link_core.errors import CheckpointError, ConfigError, UserError
from link_core.images import save_image_grid
from link_core.interface import seeds_to_z, view_cameras
from link_core.link import Box3DRegion, Link, MaskProvider, build_links
from link_core.loop import Trainer, TrainResult
from link_core.metrics import link_mse

BACKBONES = ("stylegan2", "eg3d")


def build_networks(cfg: Config) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(G, D) for ``cfg.model.backbone``."""
    name = cfg.model.backbone
    if name == "stylegan2":
        import stylegan_link

        return stylegan_link.build(cfg.model)
    if name == "eg3d":
        import eg3d_link

        return eg3d_link.build(cfg.model)
    raise ConfigError(f"model.backbone: unknown backbone {name!r} (known: {', '.join(BACKBONES)})")


def backbone_regularizers(cfg: Config) -> list:
    """Extra lazy G regularizers a backbone brings (EG3D: density smoothness)."""
    if cfg.model.backbone == "eg3d":
        import eg3d_link

        return eg3d_link.g_regularizers(cfg.model)
    return []


def mask_providers(cfg: Config) -> dict[str, MaskProvider]:
    """Named mask providers for ``{mask: NAME}`` regions (segmenters arrive with issue #6)."""
    return {}


def make_links(cfg: Config) -> list[Link]:
    """Validated links of the config (empty when ``link.enabled`` is false)."""
    return model_links(cfg) if cfg.link.enabled else []


def open_data(cfg: Config):
    from link_core.data import open_dataset

    return open_dataset(
        cfg.data.path,
        resolution=cfg.data.resolution,
        xflip=cfg.data.xflip,
        seed=cfg.data.seed,
        num_images=cfg.data.num_images,
        synthetic=cfg.data.synthetic,
        cameras=cfg.data.cameras,
    )


def _model_dict(cfg: Config | dict) -> dict:
    d = cfg if isinstance(cfg, dict) else config_to_dict(cfg)
    return d["model"]


def train(
    out: str | Path,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) a run in ``out``.

    A fresh run refuses a directory that already holds checkpoints (nothing is overwritten).
    ``resume`` continues the latest checkpoint; the run's stored config is the base, then
    ``config`` (if given) and ``overrides`` apply, and the model section must not change.
    """
    out = Path(out)
    existing = ckpt.list_checkpoints(out)
    latest = None
    if resume and existing:
        latest = existing[-1]
        _, meta = ckpt.read_file(latest, prefixes=())
        stored = meta["config"]
        if config is not None:
            cfg = load_config(config, overrides)
        else:
            from link_core.config import apply_overrides

            cfg = config_from_dict(apply_overrides(stored, overrides))
        if _model_dict(cfg) != _model_dict(stored):
            raise ConfigError(f"--resume: the model section differs from {latest}")
    else:
        if existing:
            raise UserError(
                f"{out} already holds a run ({existing[-1].name}); use --resume or a new --out"
            )
        cfg = load_config(config, overrides)
    if cfg.train.kimg <= 0 and cfg.train.minutes <= 0:
        raise ConfigError("set a budget: train.kimg or train.minutes must be > 0")
    links = make_links(cfg)
    dataset = open_data(cfg)
    if getattr(dataset, "label_dim", 0) != cfg.model.c_dim:
        raise ConfigError(
            f"model.c_dim is {cfg.model.c_dim} but the data set's labels have "
            f"{dataset.label_dim} values"
        )
    torch.manual_seed(cfg.train.seed)  # same seed, same initial networks
    G, D = build_networks(cfg)
    if cfg.link.enabled and cfg.link.volume_weight > 0 and not hasattr(G, "sample_mixed"):
        raise ConfigError(
            f"link.volume_weight: backbone '{cfg.model.backbone}' has no 3-D field (needs eg3d)"
        )
    trainer = Trainer(
        cfg,
        G,
        D,
        dataset,
        out,
        links=links,
        g_regularizers=backbone_regularizers(cfg),
        progress=progress,
    )
    if latest is not None:
        trainer.load_checkpoint(latest)
    return trainer.train()


def load_generator(path: str | Path, device: str | torch.device = "cpu"):
    """(G_ema, config) from a run directory, a checkpoint or a ``model.safetensors`` file.

    Reads tensors and JSON only (safetensors): nothing from the file is executed.
    """
    file = ckpt.resolve_checkpoint(path)
    tensors, meta = ckpt.read_file(file, prefixes=("G_ema",))
    try:
        cfg = config_from_dict(meta["config"])
    except ConfigError as e:
        raise CheckpointError(f"{file}: stored config is invalid ({e})") from None
    G, _ = build_networks(cfg)
    ckpt.load_module(G, ckpt.split_prefix(tensors, "G_ema"), str(file))
    return G.eval().requires_grad_(False).to(device), cfg


def find_link(links: list[Link], key: str) -> Link:
    """A link by name or by index."""
    for link in links:
        if link.name == key:
            return link
    if key.isdigit() and int(key) < len(links):
        return links[int(key)]
    names = ", ".join(f"{i}:{lk.name}" for i, lk in enumerate(links)) or "none"
    raise UserError(f"--link: no link {key!r} in this model (links: {names})")


def model_links(cfg: Config) -> list[Link]:
    """The links a model was trained with (even if the loss was switched off, the regions
    and axes still say what to edit and measure)."""
    links = build_links(cfg.link.links, cfg.model.w_dim, providers=mask_providers(cfg))
    if cfg.model.backbone != "eg3d":
        for i, link in enumerate(links):
            if isinstance(link.region, Box3DRegion):
                raise ConfigError(
                    f"link.links[{i}] ({link.name}).region.box3d: 3-D regions need "
                    f"model.backbone: eg3d (got {cfg.model.backbone})"
                )
    return links


@torch.no_grad()
def generate(ckpt_path: str | Path, seeds: list[int], out: str | Path, truncation: float = 1.0):
    """One PNG per seed plus a grid of all of them."""
    G, _ = load_generator(ckpt_path)
    out = Path(out)
    c = view_cameras(G, len(seeds))
    ws = G.mapping(seeds_to_z(seeds, G.z_dim), c, truncation_psi=truncation)
    images = G.synthesis(ws, c, noise_mode="const")["image"]
    paths = [
        save_image_grid(img[None], out / f"seed{s:04d}.png", cols=1)
        for s, img in zip(seeds, images, strict=True)
    ]
    paths.append(save_image_grid(images, out / "grid.png", cols=min(8, len(seeds))))
    return paths


@torch.no_grad()
def edit(ckpt_path: str | Path, seed: int, link: str, samples: int, out: str | Path) -> Path:
    """An edit grid for one link: original + K resamples of its axes, heat maps below."""
    from render.grids import save_edit_grid

    G, cfg = load_generator(ckpt_path)
    target = find_link(model_links(cfg), link)
    c = view_cameras(G, 1)
    ws = G.mapping(seeds_to_z([seed], G.z_dim), c)
    path = Path(out) / f"edit_seed{seed:04d}_{target.name}.png"
    return save_edit_grid(G, ws, target, samples, seed, path, c)


def measure(
    ckpt_path: str | Path, metrics: list[str], num: int | None = None, out: str | Path | None = None
) -> dict[str, Any]:
    """Run named metrics (``link_mse``) and optionally write JSON atomically."""
    known = {"link_mse"}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise UserError(f"--metrics: unknown metric {unknown[0]!r} (known: {', '.join(known)})")
    G, cfg = load_generator(ckpt_path)
    links = model_links(cfg)
    if not links:
        raise UserError(f"{ckpt_path}: the model's config has no links to measure")
    result: dict[str, Any] = {"checkpoint": str(ckpt.resolve_checkpoint(ckpt_path))}
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
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
        os.replace(tmp, out)
    return result


def synthesize(
    kind: str,
    num: int,
    resolution: int,
    out: str | Path,
    seed: int = 0,
    cameras: str = "orbit",
    progress: bool = True,
) -> str:
    """Render a synthetic 3-D data set to ``out`` (see :mod:`link_core.synth3d`)."""
    from link_core.synth3d import synthesize as render_set

    return render_set(
        kind, num, resolution, str(out), seed=seed, cameras=cameras, progress=progress
    )


MESH_FORMATS = ("ply", "obj", "glb")


@torch.no_grad()
def export_meshes(
    ckpt_path: str | Path,
    seed: int,
    out: str | Path,
    link: str | None = None,
    samples: int = 3,
    grid: int = 256,
    formats: tuple[str, ...] = ("ply", "glb"),
    level: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Coloured world-unit meshes of a seed (and of K resamples of a link's axes, with
    heat-map meshes coloured by the distance to the original and the change inside vs
    outside the link's 3-D region). Writes ``out/summary.json``; returns it."""
    from export import extract_mesh, heatmap_mesh, mesh_distance, region_change, write_mesh
    from export.mesh import DEFAULT_LEVEL
    from link_core.metrics import swap_axes

    bad = [f for f in formats if f not in MESH_FORMATS]
    if bad:
        raise UserError(f"--format: unknown {bad[0]!r} (known: {', '.join(MESH_FORMATS)})")
    if grid < 16 or grid > 1024:
        raise UserError(f"--grid: expected 16..1024, got {grid}")
    G, cfg = load_generator(ckpt_path)
    if not hasattr(G, "sample_mixed"):
        raise UserError(f"{ckpt_path}: a {cfg.model.backbone} model has no 3-D field to export")
    out = Path(out)
    level = DEFAULT_LEVEL if level is None else level
    c = view_cameras(G, 1)
    ws = G.mapping(seeds_to_z([seed], G.z_dim), c)
    summary: dict[str, Any] = {"seed": seed, "grid": grid, "level": level, "units": "world"}

    def save(mesh, stem: str) -> list[str]:
        return [str(write_mesh(mesh, out / f"{stem}.{fmt}")) for fmt in formats]

    original = extract_mesh(G, ws, grid, level, progress=progress)
    if original.num_vertices == 0:
        from export import density_grid

        peak = float(density_grid(G, ws, min(grid, 64)).max())
        raise UserError(
            f"seed {seed}: the density never reaches --level {level:g} (max σ ≈ {peak:.3g} on a "
            "64³ grid): pass a lower --level or train longer"
        )
    summary["original"] = {"vertices": original.num_vertices, "files": save(original, "original")}
    if link is not None:
        target = find_link(model_links(cfg), link)
        sources = G.mapping(
            seeds_to_z([seed * 1000 + 1 + k for k in range(samples)], G.z_dim),
            c.expand(samples, -1),
        )
        axis_mask = target.axis_mask(G.w_dim)
        edits = []
        for k in range(samples):
            w_k = swap_axes(ws, sources[k : k + 1], axis_mask)
            mesh = extract_mesh(G, w_k, grid, level, progress=progress)
            dist = mesh_distance(original, mesh)
            stem = f"{target.name}_{k}"
            entry: dict[str, Any] = {
                "vertices": mesh.num_vertices,
                "files": save(mesh, stem) + save(heatmap_mesh(mesh, dist), f"{stem}_heat"),
            }
            if isinstance(target.region, Box3DRegion):
                entry["change"] = region_change(original, mesh, target.region)
            edits.append(entry)
        summary["link"] = target.name
        summary["edits"] = edits
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".summary.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    os.replace(tmp, out / "summary.json")
    return summary
