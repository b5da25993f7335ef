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

from link_core.data.images import save_image_grid
from link_core.errors import CheckpointError, ConfigError, UserError
from link_core.interface import seeds_to_z, view_cameras
from link_core.link import Box3DRegion, Link, MaskProvider, build_links
from link_core.metrics import link_mse
from link_core.train.config import Config, config_from_dict, config_to_dict, load_config
from link_core.train.distributed import close_distributed, init_distributed
from link_core.train.loop import Trainer, TrainResult
from link_core.weights import checkpoint as ckpt

BACKBONES = ("stylegan2", "eg3d")
ASSETS = Path(__file__).resolve().parent.parent / "assets"
"""Published base models (``base:NAME`` = ``assets/NAME.safetensors`` + ``NAME.json``)."""


def resolve_weights(spec: str | Path) -> Path:
    """``base:NAME`` -> the published file; anything else -> the checkpoint it names (a run
    directory's latest checkpoint, or the file)."""
    text = str(spec)
    if text.startswith("base:"):
        name = text[5:]
        path = ASSETS / f"{name}.safetensors"
        if not name or not path.is_file():
            known = sorted(p.stem for p in ASSETS.glob("*.safetensors")) if ASSETS.is_dir() else []
            raise UserError(f"{text}: no such base model (published: {', '.join(known) or 'none'})")
        return path
    return ckpt.resolve_checkpoint(spec)


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
    """Named mask providers for ``{mask: NAME}`` regions, from ``link.masks``."""
    if not cfg.link.masks:
        return {}
    from link_core.edit.segmenter import build_mask_providers

    return build_mask_providers(cfg.link.masks)


def make_links(cfg: Config) -> list[Link]:
    """Validated links of the config (empty when ``link.enabled`` is false)."""
    return model_links(cfg) if cfg.link.enabled else []


def open_data(cfg: Config):
    from link_core.synth import open_dataset

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
    trainer = build_trainer(out, config, overrides, resume, progress)
    try:
        result = trainer.train()
    except BaseException:
        close_distributed(trainer.dist, clean=False)
        raise
    close_distributed(trainer.dist)
    return result


def build_trainer(
    out: str | Path,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    progress: bool = True,
) -> Trainer:
    """The :class:`~link_core.train.loop.Trainer` that :func:`train` runs, ready at its first step
    (the base loaded for ``train.init``, or the latest checkpoint for ``resume``)."""
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
            from link_core.train.config import apply_overrides

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
    init = None
    if cfg.train.init and latest is None:
        init = resolve_weights(cfg.train.init)
        _, init_meta = ckpt.read_file(init, prefixes=())
        if _model_dict(init_meta["config"]) != _model_dict(cfg):
            diff = _first_difference(_model_dict(init_meta["config"]), _model_dict(cfg), "model")
            raise ConfigError(f"train.init: {init} was trained with another model ({diff})")
    dist = init_distributed(cfg.train.device)  # torchrun: one process per GPU / worker
    torch.manual_seed(cfg.train.seed)  # same seed, same initial networks (on every rank)
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
        eval_links=model_links(cfg),
        dist=dist,
    )
    if latest is not None:
        trainer.load_checkpoint(latest)
    elif init is not None:
        trainer.load_weights(init)
        if cfg.link.enabled and cfg.link.init_axes_scale != 1.0:
            axes = sorted({a for link in links for a in link.axes})
            for net in (trainer.G, trainer.G_ema):
                if not hasattr(net, "scale_style_inputs"):
                    raise ConfigError("link.init_axes_scale: this backbone has no style affines")
                net.scale_style_inputs(axes, cfg.link.init_axes_scale)
    return trainer


def _first_difference(a: Any, b: Any, where: str) -> str:
    """The first key path where two config trees differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}")
    return f"{where}: {a!r} there, {b!r} here"


def load_generator(path: str | Path, device: str | torch.device = "cpu"):
    """(G_ema, config) from a run directory, a checkpoint or a ``model.safetensors`` file.

    Reads tensors and JSON only (safetensors): nothing from the file is executed.
    """
    file = resolve_weights(path)
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


def latent(
    G: torch.nn.Module, seed: int, w_file: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(``ws [1, num_ws, w_dim]``, camera ``c [1, c_dim]``, a name for files) of a seed, or
    of a w file (from inversion) when given; the camera is the file's or the frontal view."""
    c = view_cameras(G, 1)
    if w_file is None:
        return G.mapping(seeds_to_z([seed], G.z_dim), c), c, f"seed{seed:04d}"
    from link_core.edit.latents import apply_noise_maps, load_w

    ws, c_file = load_w(w_file, G.num_ws, G.w_dim, G.c_dim)
    apply_noise_maps(G, w_file)  # the inversion's noise maps belong to its w
    return ws, (c if c_file is None else c_file), Path(w_file).stem


@torch.no_grad()
def edit(
    ckpt_path: str | Path,
    seed: int,
    link: str,
    samples: int,
    out: str | Path,
    w_file: str | Path | None = None,
    render_resolution: int | None = None,
) -> Path:
    """An edit grid for one link: original + K resamples of its axes, heat maps below
    (3-D models: neural rendering at ``render_resolution``, None: as trained)."""
    from render.grids import save_edit_grid

    G, cfg = load_generator(ckpt_path)
    target = find_link(model_links(cfg), link)
    ws, c, name = latent(G, seed, w_file)
    path = Path(out) / f"edit_{name}_{target.name}.png"
    return save_edit_grid(G, ws, target, samples, seed, path, c, render_resolution)


RENDER_PATHS = ("turntable", "wobble", "still")


@torch.no_grad()
def render(
    ckpt_path: str | Path,
    seed: int,
    out: str | Path,
    link: str | None = None,
    samples: int = 3,
    path: str | None = None,
    frames: int = 60,
    interp: bool = False,
    maps: str | None = None,
    fps: float = 24.0,
    tile: int = 128,
    pitch: float = 10.0,
    render_resolution: int | None = None,
    w_file: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """A video (mp4 / GIF / PNG folder, by ``out``'s suffix) of a seed turning on a camera
    path; with ``link``, K resamples of its axes turn beside the original (or, with
    ``interp``, move continuously from the original to each resample and back)."""
    from render.paths import camera_path
    from render.videos import interpolation_source, orbit_source, partition_rows, render_video

    if samples < 1:
        raise UserError("--samples: must be >= 1")
    if interp and link is None:
        raise UserError("--interp: needs --link (which axes to move)")
    G, cfg = load_generator(ckpt_path)
    is_3d = hasattr(G, "sample_mixed")  # the interface's sign of a 3-D field
    if maps is None:
        maps = "image,depth,geometry" if is_3d else "image"
        if link is not None:
            maps += ",change"
    if path is None:
        path = "turntable" if is_3d else "still"  # a 2-D model cannot turn
    cams = camera_path(G, path, frames, pitch_deg=pitch)
    ws, c, name = latent(G, seed, w_file)
    title = f"{Path(str(ckpt_path)).name} | {name}"
    target = None
    if link is None:
        rows, columns = ws, ["original"]
        source = orbit_source(rows, cams)
    else:
        target = find_link(model_links(cfg), link)
        rows, columns = partition_rows(G, ws, target, samples, seed, c)
        title += f" | link {target.name} (w axes {axes_text(target.axes)})"
        if interp:
            source, t_of = interpolation_source(ws, rows[1:], cams, frames)
            columns = ["original"] + [f"-> {target.name} #{k + 1}" for k in range(samples)]
            base_title = title
            title = lambda i: f"{base_title} | t = {t_of(i):.2f}"  # noqa: E731
        else:
            source = orbit_source(rows, cams)
    summary = render_video(
        G,
        source,
        frames,
        out,
        columns=columns,
        maps=maps,
        link=target,
        tile=tile,
        fps=fps,
        title=title,
        render_resolution=render_resolution,
        progress=progress,
    )
    summary["path_kind"] = path
    return summary


def axes_text(axes: tuple[int, ...]) -> str:
    """``(0, 1, …, 15)`` -> ``"0-15"``; other sets as a short list."""
    if axes and list(axes) == list(range(axes[0], axes[-1] + 1)):
        return f"{axes[0]}-{axes[-1]}"
    return ",".join(map(str, axes[:6])) + ("…" if len(axes) > 6 else "")


METRICS = ("link_mse", "fid", "kid")


def measure(
    ckpt_path: str | Path,
    metrics: list[str],
    num: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run named metrics and optionally write JSON atomically: ``link_mse`` (``num`` seeds,
    default ``metrics.num``), ``fid`` / ``kid`` (``num`` generated images, default 1000,
    against as many data-set images; data statistics cached)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        what = unknown[0] if unknown else "(none)"
        raise UserError(f"--metrics: unknown metric {what!r} (known: {', '.join(METRICS)})")
    G, cfg = load_generator(ckpt_path)
    result: dict[str, Any] = {"checkpoint": str(resolve_weights(ckpt_path))}
    if "link_mse" in metrics:
        links = model_links(cfg)
        if not links:
            raise UserError(f"{ckpt_path}: the model's config has no links to measure")
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
        result.update(_inception_metrics(G, cfg, metrics, num or 1000, progress))
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
def _inception_metrics(
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


def synthesize(
    kind: str,
    num: int,
    resolution: int,
    out: str | Path,
    seed: int = 0,
    cameras: str = "orbit",
    progress: bool = True,
) -> str:
    """Render a synthetic 3-D data set to ``out`` (see :mod:`link_core.synth`)."""
    from link_core.synth import synthesize as render_set

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
    level: float | str | None = None,
    progress: bool = True,
    w_file: str | Path | None = None,
    turntable: int = 0,
) -> dict[str, Any]:
    """Coloured world-unit meshes of a seed (and of K resamples of a link's axes, with
    heat-map meshes coloured by the distance to the original and the change inside vs
    outside the link's 3-D region). ``turntable > 0`` also renders the meshes themselves
    (pytorch3d) turning side by side into ``out/turntable.mp4``. Writes
    ``out/summary.json``; returns it."""
    from export import extract_mesh, heatmap_mesh, mesh_distance, region_change, write_mesh
    from export.mesh import DEFAULT_LEVEL
    from link_core.metrics import resample_link_axes

    bad = [f for f in formats if f not in MESH_FORMATS]
    if bad:
        raise UserError(f"--format: unknown {bad[0]!r} (known: {', '.join(MESH_FORMATS)})")
    if grid < 16 or grid > 1024:
        raise UserError(f"--grid: expected 16..1024, got {grid}")
    G, cfg = load_generator(ckpt_path)
    if not hasattr(G, "sample_mixed"):
        raise UserError(f"{ckpt_path}: a {cfg.model.backbone} model has no 3-D field to export")
    out = Path(out)
    if level == "auto":
        from export import auto_level

        level = auto_level(G, latent(G, seed, w_file)[0])
    level = DEFAULT_LEVEL if level is None else float(level)
    ws, c, name = latent(G, seed, w_file)
    summary: dict[str, Any] = {"latent": name, "grid": grid, "level": level, "units": "world"}

    def save(mesh, stem: str) -> list[str]:
        return [str(write_mesh(mesh, out / f"{stem}.{fmt}")) for fmt in formats]

    original = extract_mesh(G, ws, grid, level, progress=progress)
    if original.num_vertices == 0:
        from export import density_grid

        peak = float(density_grid(G, ws, min(grid, 64)).max())
        raise UserError(
            f"{name}: the density never reaches --level {level:g} (max σ ≈ {peak:.3g} on a "
            "64³ grid): pass a lower --level or train longer"
        )
    summary["original"] = {"vertices": original.num_vertices, "files": save(original, "original")}
    shown: list[list] = [[original], [original]]
    columns = ["original"]
    if link is not None:
        target = find_link(model_links(cfg), link)
        ws_edit = resample_link_axes(G, ws, target.axis_mask(G.w_dim), samples, seed, c)
        edits = []
        for k in range(samples):
            w_k = ws_edit[k : k + 1]
            mesh = extract_mesh(G, w_k, grid, level, progress=progress)
            dist = mesh_distance(original, mesh)
            stem = f"{target.name}_{k}"
            heat = heatmap_mesh(mesh, dist)
            entry: dict[str, Any] = {
                "vertices": mesh.num_vertices,
                "files": save(mesh, stem) + save(heat, f"{stem}_heat"),
            }
            shown[0].append(mesh)
            shown[1].append(heat)
            columns.append(f"{target.name} #{k + 1}")
            if isinstance(target.region, Box3DRegion):
                entry["change"] = region_change(original, mesh, target.region)
            edits.append(entry)
        summary["link"] = target.name
        summary["edits"] = edits
    if turntable > 0:
        from render.mesh_view import mesh_turntable

        rows, labels = (shown, ["mesh", "change"]) if link is not None else (shown[:1], ["mesh"])
        summary["turntable"] = mesh_turntable(
            rows,
            columns,
            labels,
            out / "turntable.mp4",
            frames=turntable,
            fps=12,
            tile=160,
            progress=progress,
        )
    ckpt.write_json(out / "summary.json", summary)
    return summary


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
            card["quality"]["inception"] = _inception_metrics(
                G, cfg, ["fid", "kid"], fid_num, progress
            )
        if hasattr(G, "sample_mixed"):
            kind = cfg.data.synthetic if not cfg.data.path else None
            card["quality"]["shapes"] = shape_quality(G, kind=kind, data_seed=cfg.data.seed)
    out_dir = Path(out_dir) if out_dir is not None else ASSETS
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


def read_target_image(path: str | Path, resolution: int) -> torch.Tensor:
    """A real photo as ``[1, 3, R, R]`` in [-1, 1]: centre-cropped square, area-resized."""
    import cv2
    import numpy as np

    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if img is None:
        raise UserError(f"--image: {path} is not a readable image")
    h, w = img.shape[:2]
    side = min(h, w)
    img = img[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    img = cv2.resize(img, (resolution, resolution), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(img[:, :, ::-1]).astype(np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1.0


def read_camera(path: str | Path, c_dim: int) -> torch.Tensor:
    """``[1, c_dim]`` from a JSON list of floats (EG3D: 16 cam2world + 9 intrinsics)."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        c = torch.tensor(values, dtype=torch.float32).reshape(1, -1)
    except (OSError, ValueError, TypeError, RuntimeError) as e:
        raise UserError(f"--camera: {path} is not a JSON list of numbers ({e})") from None
    if c.shape[1] != c_dim or not torch.isfinite(c).all():
        raise UserError(f"--camera: {path} has {c.shape[1]} values, this model needs {c_dim}")
    return c


def invert(
    ckpt_path: str | Path,
    image: str | Path,
    out: str | Path,
    camera: str | Path | None = None,
    settings: Any = None,
    progress: bool = True,
    lpips_vgg: str | Path | None = None,
    lpips_lin: str | Path | None = None,
) -> dict[str, Any]:
    """Project a real image into the model (``link_core.edit.inversion``) and write ``out/``:
    ``w.safetensors`` (w, camera, noise maps: use with ``--w``), ``reconstruction.png``
    (target | reconstruction), ``progress.mp4``, ``losses.json`` and, after pivotal tuning,
    ``model.safetensors`` (the tuned G: use it as ``--ckpt`` with that w).
    ``lpips_vgg`` (and ``lpips_lin``): local VGG16 (and LPIPS) weights; adds LPIPS to the
    image loss (:mod:`link_core.metrics.lpips`)."""
    import shutil
    import tempfile

    import numpy as np
    from tqdm.auto import tqdm

    from link_core.data.images import grid, to_uint8, write_png
    from link_core.edit.inversion import InversionSettings
    from link_core.edit.inversion import invert as run_inversion
    from link_core.edit.latents import save_w
    from render.video import FrameSink

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out: {out} exists and is not an empty folder")
    s = settings or InversionSettings()
    if s.steps < 1 or s.tune_steps < 0:
        raise UserError(f"--steps: must be >= 1, got {s.steps}")
    perceptual = None
    if lpips_vgg is not None:
        from link_core.metrics.lpips import load_lpips

        perceptual = load_lpips(lpips_vgg, lpips_lin)
    elif lpips_lin is not None:
        raise UserError("--lpips-lin: needs --lpips-vgg (the VGG16 weights) too")
    G, cfg = load_generator(ckpt_path)
    target = read_target_image(image, G.img_resolution)
    c = read_camera(camera, G.c_dim) if camera else view_cameras(G, 1)
    scale = max(1, 256 // G.img_resolution)

    def side_by_side(x: torch.Tensor) -> np.ndarray:
        tiles = to_uint8(torch.cat([target, x.clamp(-1, 1)]))
        big = np.repeat(np.repeat(tiles, scale, axis=1), scale, axis=2)
        return grid(big, cols=2, pad=4)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        total = s.steps + s.tune_steps
        bar = tqdm(total=total, desc="invert", unit="step", disable=not progress)

        def on_step(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.4f}")

        with FrameSink(tmp / "progress.mp4", fps=12) as sink:
            result = run_inversion(
                G,
                target,
                c,
                s,
                perceptual,
                snapshot=lambda i, x: sink.write(side_by_side(x)),
                progress=on_step,
            )
        bar.close()
        save_w(tmp / "w.safetensors", result.ws, c, result.noise)
        write_png(side_by_side(result.image), tmp / "reconstruction.png")
        if result.generator is not None:
            ckpt.save_inference_weights(
                tmp / "model.safetensors", result.generator, config_to_dict(cfg)
            )
        n = len(result.losses)
        k = max(1, min(10, n // 5))
        summary = {
            "checkpoint": str(resolve_weights(ckpt_path)),
            "image": str(image),
            "steps": s.steps,
            "tune_steps": s.tune_steps,
            "w_plus": s.w_plus,
            "noise_maps": s.noise_maps,
            "loss_first": round(sum(result.losses[:k]) / k, 6),
            "loss_last": round(sum(result.losses[-k:]) / k, 6),
            "mse_final": round(float((result.image - target).square().mean()), 6),
            "losses": [round(v, 6) for v in result.losses],
        }
        (tmp / "losses.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {k: v for k, v in summary.items() if k != "losses"} | {"out": str(out)}


def train_segmenter(
    data: str,
    out: str | Path,
    resolution: int = 0,
    steps: int = 500,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a part segmenter on a data set with part masks and save it as TorchScript:
    ``data`` is a folder / zip, or ``synthetic:heads|scenes|toyfaces``."""
    from tqdm.auto import tqdm

    from link_core.data import ImageFolderDataset
    from link_core.edit.segmenter import save_segmenter
    from link_core.edit.segmenter import train_segmenter as fit
    from link_core.synth import open_dataset

    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"--out: {out} already exists (use --force to replace it)")
    if steps < 1:
        raise UserError(f"--steps: must be >= 1, got {steps}")
    if data.startswith("synthetic:"):
        kind = data.split(":", 1)[1]
        if kind not in ("heads", "scenes", "toyfaces"):
            raise UserError(f"--data: unknown synthetic set {kind!r} (heads, scenes, toyfaces)")
        dataset = open_dataset("", resolution or 32, synthetic=kind, num_images=1024)
    else:
        if not Path(data).exists():
            raise UserError(f"--data: {data} does not exist")
        if not resolution:
            resolution = ImageFolderDataset(data).resolution
        dataset = ImageFolderDataset(data, resolution=resolution)
    bar = tqdm(total=steps, desc="segmenter", unit="step", disable=not progress)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix_str(f"loss {loss:.3f}")

    net, quality = fit(dataset, steps=steps, progress=on_step)
    bar.close()
    save_segmenter(net, out, dataset.part_names, dataset.resolution)
    return {"out": str(out), "classes": list(dataset.part_names), **quality}


def open_editor(
    ckpt_path: str | Path, out: str | Path = "view_out", w_file: str | Path | None = None
):
    """A :class:`linkgan.viewer.Editor` on a model (its EMA generator and its links),
    optionally on a w file from inversion instead of seeds."""
    from linkgan.viewer import Editor

    G, cfg = load_generator(ckpt_path)
    w, w_name = None, ""
    if w_file is not None:
        w, _, w_name = latent(G, 0, w_file)
    return Editor(G, model_links(cfg), Path(out), Path(str(ckpt_path)).name, w, w_name)
