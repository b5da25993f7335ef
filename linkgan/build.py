"""Building and training: resolve ``model.backbone`` to a backbone's ``build``, open the data,
make the :class:`~link_core.train.loop.Trainer`, and read a generator back from its weights.

The face is the only package that sees everything: it hands networks, links and data to
``link_core``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from link_core.data.outputs import check_out_folder
from link_core.errors import CheckpointError, ConfigError, UserError
from link_core.link import Link
from link_core.train.config import (
    Config,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    read_preset,
)
from link_core.train.distributed import close_distributed, init_distributed
from link_core.train.init_config import fine_tune_config
from link_core.train.link_phase import LinkPhase, links_from_config
from link_core.train.loop import Trainer, TrainResult
from link_core.weights import checkpoint as ckpt

BACKBONES = ("stylegan2", "eg3d")


def shipped_dir(name: str) -> Path:
    """A folder shipped with linkgan (``configs``, ``assets``): inside the package when
    installed from a wheel (setup.py maps the repository's top-level folder there), else at
    the top of the checkout (an editable install, or running from the repository)."""
    here = Path(__file__).resolve().parent
    inside = here / name
    return inside if inside.is_dir() else here.parent / name


ASSETS = shipped_dir("assets")
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


def check_model(cfg: Config) -> None:
    """The backbone's own checks of the model section (EG3D: ``model.extra``), without
    building anything: a ConfigError naming the key."""
    if cfg.model.backbone == "eg3d":
        from eg3d_link.options import parse_options

        if cfg.model.c_dim != 25:
            raise ConfigError(f"model.c_dim: EG3D needs 25 (camera labels), got {cfg.model.c_dim}")
        parse_options(cfg.model.extra, cfg.model.resolution)
    elif cfg.model.backbone not in BACKBONES:
        raise ConfigError(
            f"model.backbone: unknown backbone {cfg.model.backbone!r} (known: "
            f"{', '.join(BACKBONES)})"
        )


def backbone_regularizers(cfg: Config) -> list:
    """Extra lazy G regularizers a backbone brings (EG3D: density smoothness)."""
    if cfg.model.backbone == "eg3d":
        import eg3d_link

        return eg3d_link.g_regularizers(cfg.model)
    return []


def open_data(cfg: Config):
    """The config's data set; a folder or zip has every file's header and end checked (no
    decoding), so a broken file stops a run before it writes anything."""
    from link_core.synth import open_dataset

    dataset = open_dataset(
        cfg.data.path,
        resolution=cfg.data.resolution,
        xflip=cfg.data.xflip,
        seed=cfg.data.seed,
        num_images=cfg.data.num_images,
        synthetic=cfg.data.synthetic,
        cameras=cfg.data.cameras,
    )
    if cfg.data.path and hasattr(dataset, "check_files"):
        dataset.check_files()
    return dataset


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
    out = check_out_folder(out)
    existing = ckpt.list_checkpoints(out)
    latest, init = None, None
    if resume and existing:
        latest = existing[-1]
        _, meta = ckpt.read_file(latest, prefixes=())
        stored = meta["config"]
        if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
            raise CheckpointError(f"{latest}: its stored config is no mapping with a model")
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
        cfg, init = resolve_config(config, overrides)
    if cfg.train.kimg <= 0 and cfg.train.minutes <= 0:
        raise ConfigError("set a budget: train.kimg or train.minutes must be > 0")
    check_model(cfg)  # before the data set is opened (the built-in 3-D sets render first)
    links = model_links(cfg)
    dataset = open_data(cfg)
    if getattr(dataset, "label_dim", 0) != cfg.model.c_dim:
        raise ConfigError(
            f"model.c_dim is {cfg.model.c_dim} but the data set's labels have "
            f"{dataset.label_dim} values"
        )
    dist = init_distributed(cfg.train.device)  # torchrun: one process per GPU / worker
    torch.manual_seed(cfg.train.seed)  # same seed, same initial networks (on every rank)
    G, D = build_networks(cfg)
    trainer = Trainer(
        cfg,
        G,
        D,
        dataset,
        out,
        link=LinkPhase.from_config(cfg, links, G.is_3d),
        g_regularizers=backbone_regularizers(cfg),
        progress=progress,
        dist=dist,
    )
    if latest is not None:
        trainer.load_checkpoint(latest)
    elif init is not None:
        trainer.load_weights(init.weights, init.schedule_kimg)
    return trainer


def _backbone_free_keys(backbone: str) -> tuple[frozenset[str], dict[str, Any]]:
    """A backbone's ``model.extra`` keys free on a fine-tune, and its ``extra`` defaults."""
    if backbone == "eg3d":
        from eg3d_link.options import FINETUNE_FREE, extra_defaults

        return FINETUNE_FREE, extra_defaults()
    return frozenset(), {}


def resolve_config(
    config: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[Config, FineTune | None]:
    """A fresh run's config. With ``train.init`` the model section comes from the weights
    (:func:`~link_core.train.init_config.fine_tune_config`) and the :class:`FineTune` says
    where each model key came from and where the schedules start."""
    preset = read_preset(config) if config is not None else {}
    given = apply_overrides(preset, overrides)
    train = given.get("train")
    init_spec = train.get("init") if isinstance(train, dict) else None  # else: refused below
    if not init_spec:
        return config_from_dict(given), None
    if not isinstance(init_spec, str):
        raise ConfigError(f"train.init: expected a path or base:NAME, got {init_spec!r}")
    try:
        path = resolve_weights(init_spec)
    except CheckpointError as e:
        hint = ""
        if not Path(init_spec).exists() and init_spec.endswith(".safetensors"):
            hint = f" (convert an NVIDIA snapshot: linkgan import --pkl SNAPSHOT --out {init_spec})"
        raise CheckpointError(f"train.init: {e}{hint}") from None
    try:
        _, meta = ckpt.read_file(path, prefixes=())
    except CheckpointError as e:
        raise CheckpointError(f"train.init: {e}") from None
    stored = meta.get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
        raise CheckpointError(f"train.init: {path} holds no model config")
    free, defaults = _backbone_free_keys(str(stored["model"].get("backbone", "stylegan2")))
    from_set = apply_overrides({}, overrides)
    cfg, origin = fine_tune_config(given, from_set, stored, free, defaults, str(path))
    kimg = ckpt.weights_kimg(meta) if cfg.train.schedule_start == "checkpoint" else None
    return cfg, FineTune(path, origin, kimg or 0.0)


def show_run_config(config: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The config a fresh run would write to its ``config.yaml`` (with ``train.init``: the
    model from the weights), as YAML."""
    import yaml

    return yaml.safe_dump(config_to_dict(resolve_config(config, overrides)[0]), sort_keys=False)


@dataclass(frozen=True)
class FineTune:
    """Where a fine-tune starts: the weights, the origin of each model key ("checkpoint",
    "preset" or "--set"), and the kimg its schedules start at."""

    weights: Path
    origin: dict[str, str]
    schedule_kimg: float


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


def model_links(cfg: Config) -> list[Link]:
    """The links a model was trained with (even if the loss was switched off, the regions
    and axes still say what to edit and measure)."""
    return links_from_config(cfg, is_3d=cfg.model.backbone == "eg3d")
