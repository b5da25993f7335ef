"""What a run saves and restores: resumable checkpoints (atomic), inference weights, and
trained weights to start a fine-tune from. A mixin of :class:`~link_core.train.loop.Trainer`:
these methods read and write the trainer's networks, optimizers and counters."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from link_core.errors import CheckpointError, TrainingDiverged
from link_core.train.config import Config, config_to_dict
from link_core.train.distributed import DistInfo, fingerprints
from link_core.train.link_phase import LinkPhase
from link_core.weights import checkpoint as ckpt


class RunState:
    """Checkpoint I/O of a training run (mixed into the trainer, which sets these)."""

    cfg: Config
    run_dir: Path
    dist: DistInfo
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    link: LinkPhase
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    opt_link: torch.optim.Optimizer | None
    device: torch.device
    step: int
    images_seen: int
    kimg_offset: float
    elapsed: float
    pl_mean: torch.Tensor
    next_sample_kimg: float
    next_metric_kimg: float
    next_ckpt_kimg: float

    def _counters(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "images_seen": self.images_seen,
            "kimg_offset": self.kimg_offset,
            "elapsed": self.elapsed,
            "next_sample_kimg": self.next_sample_kimg,
            "next_metric_kimg": self.next_metric_kimg,
            "next_ckpt_kimg": self.next_ckpt_kimg,
        }

    def save_checkpoint(self) -> Path:
        """Write a resumable checkpoint (atomically: temp file, fsync, rename) and the EMA
        weights. A failed write (a full disk) is a :class:`CheckpointError` naming the last
        good checkpoint, which is kept; no partial file is left."""
        config = config_to_dict(self.cfg)
        path = ckpt.checkpoint_path(self.run_dir, self.images_seen)
        self._check_weights()
        nets = {"G": self.G, "D": self.D, "G_ema": self.G_ema}
        prints = fingerprints(nets, self.dist)
        if any(p != prints[0] for p in prints):
            raise TrainingDiverged(
                f"the {self.dist.world} processes hold different weights at step {self.step} "
                f"(per-rank sums {prints}): gradients were not reduced"
            )
        if not self.dist.is_main:
            return path
        counters = {**self._counters(), "ranks": {"world": self.dist.world, "sums": prints}}
        try:
            ckpt.save_training_state(
                path,
                config=config,
                modules=nets,
                optimizers=self._optimizers(),
                counters=counters,
                extra={"pl_mean": self.pl_mean},
            )
            ckpt.save_inference_weights(self.run_dir / "model.safetensors", self.G_ema, config)
        except OSError as e:
            good = [p for p in ckpt.list_checkpoints(self.run_dir) if p != path]
            raise CheckpointError(
                f"{path}: cannot write the checkpoint ({e.strerror or e}); the last good "
                f"checkpoint is {good[-1] if good else 'none'} (free space, then --resume)"
            ) from None
        ckpt.prune_checkpoints(self.run_dir, self.cfg.train.keep_ckpts)
        return path

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The run's optimizers by checkpoint name (``G_link`` with ``link.adam: own``)."""
        opts = {"G": self.opt_G, "D": self.opt_D}
        if self.opt_link is not None:
            opts["G_link"] = self.opt_link
        return opts

    def _check_weights(self) -> None:
        """Never checkpoint a diverged model: a step can overflow the weights while its loss
        was still finite (the NaN shows in the next forward pass)."""
        for name, net in (("G", self.G), ("D", self.D)):
            for key, p in net.named_parameters():
                if not torch.isfinite(p.detach()).all():
                    last = ckpt.list_checkpoints(self.run_dir)
                    raise TrainingDiverged(
                        f"{name}.{key} has NaN / Inf values at step {self.step} (kimg "
                        f"{self.images_seen / 1000:.3f}): training stopped; the last good "
                        f"checkpoint is {last[-1] if last else 'none (nothing was written)'}"
                    )

    def load_checkpoint(self, path: str | Path) -> None:
        tensors, meta = ckpt.read_file(path)
        counters = _counters(meta.get("counters"), path)  # checked before anything changes
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            ckpt.load_module(module, ckpt.split_prefix(tensors, name), f"{path} ({name})")
        for name, opt in self._optimizers().items():
            # Moments come from the checkpoint; lr and betas from this run's config, so a
            # resume with `--set train.lr_g=...` takes effect.
            hyper = [{k: g[k] for k in ("lr", "betas") if k in g} for g in opt.param_groups]
            try:
                ckpt.load_optimizer(opt, name, tensors, meta)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                raise CheckpointError(
                    f"{path}: optimizer state of {name} is malformed ({type(e).__name__}: {e})"
                ) from None
            for group, h in zip(opt.param_groups, hyper, strict=True):
                group.update(h)
        self.step = int(counters["step"])
        self.images_seen = int(counters["images_seen"])
        self.kimg_offset = counters.get("kimg_offset", 0.0)
        self.elapsed = counters["elapsed"]
        self.next_sample_kimg = counters.get("next_sample_kimg", 0.0)
        self.next_metric_kimg = counters.get("next_metric_kimg", 0.0)
        self.next_ckpt_kimg = counters.get("next_ckpt_kimg", 0.0)
        self.pl_mean = tensors.get("extra.pl_mean", self.pl_mean).to(self.device)

    def load_weights(self, path: str | Path, kimg_offset: float = 0.0) -> None:
        """Initialize G, G_ema and D from trained weights (``train.init``): a checkpoint
        (G, G_ema, D) or a published base (G_ema and D; G starts as the EMA). Optimizers,
        counters and RNG states stay fresh: this starts a new run, whose schedules start at
        ``kimg_offset`` (the weights' kimg, or 0: ``train.schedule_start``)."""
        tensors, _ = ckpt.read_file(path, prefixes=("G", "G_ema", "D"))
        g = ckpt.split_prefix(tensors, "G") or ckpt.split_prefix(tensors, "G_ema")
        ema = ckpt.split_prefix(tensors, "G_ema") or g
        d = ckpt.split_prefix(tensors, "D")
        if not d:
            raise CheckpointError(
                f"{path}: has no discriminator weights; fine-tuning needs D as well as G "
                "(publish a base with `linkgan publish`, or pass a training checkpoint)"
            )
        ckpt.load_module(self.G, g, f"{path} (G)")
        ckpt.load_module(self.G_ema, ema, f"{path} (G_ema)")
        ckpt.load_module(self.D, d, f"{path} (D)")
        self.link.start_from_base([self.G, self.G_ema])
        self.kimg_offset = kimg_offset


_REQUIRED = ("step", "images_seen", "elapsed")
_OPTIONAL = ("kimg_offset", "next_sample_kimg", "next_metric_kimg", "next_ckpt_kimg")


def _counters(counters: Any, path: str | Path) -> dict[str, float]:
    """The counters a resume reads from a checkpoint's ``counters``, as finite numbers >= 0
    (``step``, ``images_seen`` and ``elapsed`` required); a CheckpointError naming the file
    and the counter otherwise."""
    if not isinstance(counters, dict):
        raise CheckpointError(f"{path}: 'counters' must be a mapping, got {counters!r:.60}")
    for key in _REQUIRED:
        if key not in counters:
            raise CheckpointError(f"{path}: 'counters' has no '{key}'")
    out = {}
    for key in (*_REQUIRED, *(k for k in _OPTIONAL if k in counters)):
        value = counters[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise CheckpointError(
                f"{path}: counters.{key} must be a finite number >= 0, got {value!r:.60}"
            )
        out[key] = float(value)
    return out
