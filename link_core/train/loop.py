"""The one training loop for every backbone (StyleGAN2-ADA's phases, LinkGAN's lazy link).

Phases per iteration:
  G main  : non-saturating loss on fresh fakes (style mixing).
  G reg   : the lazy G regularizers that are due this step — the link loss (every
            ``link.interval`` steps), path length (``loss.pl_interval``) and whatever a
            backbone brings (EG3D's density regularizer) — each scaled by its interval,
            in one step of G's Adam; with ``link.adam: own`` the link phase steps an Adam
            of its own (at ``link.lr_gain × lr_g``).
  D main  : logistic loss on reals and on the G-main fakes (plus the link phase's perturbed
            images when ``link.feed_d``).
  D reg   : lazy R1 every ``loss.r1_interval`` steps, scaled by the interval.

The loop only speaks the generator interface (``mapping``/``synthesis`` returning a dict,
``D(outputs, c)``); it never asks which backbone it holds. Randomness is a function of
(seed, step): every iteration reseeds, so a resumed run continues the very same stream.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import Dataset
from tqdm import tqdm

from link_core.data import image_to_float
from link_core.data.cameras import camera_label_yaw_pitch
from link_core.data.images import save_image_grid
from link_core.errors import CheckpointError, ConfigError, TrainingDiverged, UserError
from link_core.interface import seeds_to_z
from link_core.link import Link, link_loss, volume_link_loss
from link_core.metrics import link_mse
from link_core.train.config import Config, config_to_dict
from link_core.train.distributed import (
    DistInfo,
    all_true,
    average_buffers,
    average_gradients,
    fingerprints,
    from_main,
    mean_over_ranks,
    rows,
)
from link_core.train.gan_losses import (
    g_nonsaturating_loss,
    path_length_penalty,
    r1_penalty,
)
from link_core.weights import checkpoint as ckpt

GRegFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class GRegularizer:
    """An extra lazy G regularizer a backbone brings (e.g. EG3D's density regularizer).

    ``fn(G, ws [B, num_ws, w_dim], c [B, c_dim]) -> {"name": scalar, ...}``: every term is
    logged; their sum times ``weight`` (and the interval, by the loop) is minimized.
    """

    name: str
    interval: int
    weight: float
    fn: GRegFn


@dataclass
class TrainResult:
    run_dir: Path
    images_seen: int
    steps: int
    seconds: float
    stats: dict[str, float] = field(default_factory=dict)


def lazy_ratio(intervals: Sequence[int]) -> float:
    """Adam rescale for lazy regularization: optimizer steps per main step, inverted.

    With one regularizer every I steps, a network takes I+1 optimizer steps per I main steps,
    so StyleGAN2 scales lr by r = I/(I+1) and betas by **r. Several regularizers that share
    one reg phase generalize to r = 1 / (1 + fraction of steps with a reg phase).
    """
    intervals = [i for i in intervals if i > 0]
    if not intervals:
        return 1.0
    period = math.lcm(*intervals)
    due = sum(any(s % i == 0 for i in intervals) for s in range(period))
    return 1.0 / (1.0 + due / period)


def make_adam(params, lr: float, betas: tuple[float, float], ratio: float) -> torch.optim.Adam:
    """Adam with the lazy-regularization rescale applied once, here."""
    return torch.optim.Adam(
        params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=1e-8
    )


def step_seed(seed: int, step: int) -> int:
    """A distinct, reproducible seed per (run seed, step)."""
    return (seed * 1_000_003 + step * 7_919 + 12_345) % (2**63 - 1)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda requested but no CUDA device is available")
    return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)


class StatsLog:
    """Running means of named scalars, flushed to stats.jsonl and TensorBoard per tick."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, dist: DistInfo | None = None):
        self.path = run_dir / "stats.jsonl"
        self.dist = dist or DistInfo()
        tensorboard = tensorboard and self.dist.is_main
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.current: dict[str, float] = {}
        """Values added since :meth:`begin_phase` (to name a term that went NaN / Inf)."""
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency; degrade to JSONL if absent
                self.writer = None

    def begin_phase(self) -> None:
        self.current.clear()

    def add(self, name: str, value: torch.Tensor | float) -> None:
        v = float(value.detach()) if torch.is_tensor(value) else float(value)
        self.current[name] = v
        self.sums[name] = self.sums.get(name, 0.0) + v
        self.counts[name] = self.counts.get(name, 0) + 1

    def flush(self, images_seen: int, extra: dict[str, float]) -> dict[str, float]:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        means = mean_over_ranks(means, self.dist)  # every rank logs the same phases
        means.update(extra)
        self.sums.clear()
        self.counts.clear()
        return self.write_row(images_seen, means)

    def write_row(self, images_seen: int, means: dict[str, float]) -> dict[str, float]:
        """Append one row of values (not running means) to stats.jsonl and TensorBoard
        (rank 0 only)."""
        self.last.update(means)
        if not self.dist.is_main:
            return means
        row = {"kimg": images_seen / 1000, **{k: round(v, 6) for k, v in means.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(k, v, images_seen)
            self.writer.flush()
        return means

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _collate(dataset: Dataset, indices: torch.Tensor, device: torch.device):
    items = [dataset[int(i)] for i in indices]
    images = image_to_float(torch.stack([it["image"] for it in items]).to(device))
    labels = torch.stack([it["label"] for it in items]).to(device, torch.float32)
    return images, labels


class Trainer:
    """Owns networks, optimizers, counters and the phase schedule of one run."""

    def __init__(
        self,
        cfg: Config,
        G: torch.nn.Module,
        D: torch.nn.Module,
        dataset: Dataset,
        run_dir: str | Path,
        links: Sequence[Link] = (),
        g_regularizers: Sequence[GRegularizer] = (),
        progress: bool = True,
        eval_links: Sequence[Link] | None = None,
        dist: DistInfo | None = None,
    ):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = dist or DistInfo()
        self.device = resolve_device(cfg.train.device, self.dist.local_rank)
        if cfg.train.num_threads > 0:
            torch.set_num_threads(cfg.train.num_threads)
        self.G = G.to(self.device).train()
        self.D = D.to(self.device).train()
        tc, lc = cfg.train, cfg.loss
        if tc.checkpoint_render or tc.ray_chunk:
            if not hasattr(G, "checkpoint_render"):
                raise ConfigError(
                    "train.checkpoint_render / ray_chunk: this backbone has no volume renderer"
                )
            G.checkpoint_render, G.ray_chunk = tc.checkpoint_render, tc.ray_chunk
        if tc.channels_last:
            G.to(memory_format=torch.channels_last)
            D.to(memory_format=torch.channels_last)
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        # What the main and link phases call: compiled when asked (after the EMA copy, so
        # G_ema and checkpoints see plain modules); R1 and path length call G and D eagerly.
        self.synthesis: Callable[..., dict[str, torch.Tensor]] = G.synthesis
        self.disc: Callable[..., torch.Tensor] = D
        if tc.compile != "off":
            self.synthesis = torch.compile(G.synthesis, mode=tc.compile)
            self.disc = torch.compile(D, mode=tc.compile)
        self.dataset = dataset
        self.links = list(links) if cfg.link.enabled else []
        # Links to watch during training (also when the loss is off: the comparison run).
        self.eval_links = list(eval_links) if eval_links is not None else list(links)
        self.g_regs = list(g_regularizers)
        self.progress = progress and self.dist.is_main
        if len(dataset) == 0:
            raise UserError("data set is empty")

        if tc.batch % self.dist.world:
            raise ConfigError(
                f"train.batch: {tc.batch} images do not split over {self.dist.world} processes"
            )
        self.global_batch = tc.batch
        self.batch = tc.batch // self.dist.world  # this rank's share
        self.r1_gamma = lc.r1_gamma or 0.0002 * cfg.model.resolution**2 / tc.batch
        g_intervals = [r.interval for r in self.g_regs]
        own_link_adam = bool(self.links) and cfg.link.adam == "own"
        if self.links and not own_link_adam:
            g_intervals.append(cfg.link.interval)
        if lc.pl_weight > 0:
            g_intervals.append(lc.pl_interval)
        betas = (tc.beta1, tc.beta2)
        self.opt_G = make_adam(G.parameters(), tc.lr_g, betas, lazy_ratio(g_intervals))
        # link.adam: own — the link phase steps a second Adam (its moments see only link
        # gradients), so a strong link no longer shrinks the main steps through G's RMS.
        self.opt_link = (
            make_adam(G.parameters(), tc.lr_g * cfg.link.lr_gain, betas, 1.0)
            if own_link_adam
            else None
        )
        self.opt_D = make_adam(D.parameters(), tc.lr_d, betas, lazy_ratio([lc.r1_interval]))
        self.pl_mean = torch.zeros((), device=self.device)
        self.step = 0
        self.images_seen = 0
        self.elapsed = 0.0
        self.pending_fakes: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None
        self.sample_z = seeds_to_z(range(16), G.z_dim).to(self.device)
        self.sample_c = self._sample_labels(16, torch.Generator().manual_seed(0))
        self.next_sample_kimg = 0.0
        self.next_metric_kimg = 0.0
        self.next_ckpt_kimg = self.cfg.train.ckpt_every_kimg

    # -- state ------------------------------------------------------------------------
    def _counters(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "images_seen": self.images_seen,
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
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            ckpt.load_module(module, ckpt.split_prefix(tensors, name), f"{path} ({name})")
        for name, opt in self._optimizers().items():
            # Moments come from the checkpoint; lr and betas from this run's config, so a
            # resume with `--set train.lr_g=...` takes effect.
            hyper = [{k: g[k] for k in ("lr", "betas")} for g in opt.param_groups]
            ckpt.load_optimizer(opt, name, tensors, meta)
            for group, h in zip(opt.param_groups, hyper, strict=True):
                group.update(h)
        counters = meta["counters"]
        self.step = int(counters["step"])
        self.images_seen = int(counters["images_seen"])
        self.elapsed = float(counters["elapsed"])
        self.next_sample_kimg = float(counters.get("next_sample_kimg", 0.0))
        self.next_metric_kimg = float(counters.get("next_metric_kimg", 0.0))
        self.next_ckpt_kimg = float(counters.get("next_ckpt_kimg", 0.0))
        self.pl_mean = tensors.get("extra.pl_mean", self.pl_mean).to(self.device)

    def load_weights(self, path: str | Path) -> None:
        """Initialize G, G_ema and D from trained weights (``train.init``): a checkpoint
        (G, G_ema, D) or a published base (G_ema and D; G starts as the EMA). Optimizers,
        counters and RNG states stay fresh: this starts a new run."""
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

    # -- sampling helpers ---------------------------------------------------------------
    def _seed(self, phase: int, local: bool = False) -> None:
        """Seed torch for one phase of this step: the same on every rank for the global
        batch's inputs (z, c, data indices), then per rank (``local``) for what the networks
        draw inside (noise maps, random points), so ranks never share those."""
        seed = step_seed(self.cfg.train.seed, self.step) + 1_009 * phase
        torch.manual_seed(seed + (7_727 * (self.dist.rank + 1) if local else 0))

    def _global_inputs(self, n_global: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, c) of a global batch of ``n_global``: this rank's rows."""
        z = torch.randn(n_global, self.G.z_dim, device=self.device)
        c = self._sample_labels(n_global)
        return rows(z, self.dist), rows(c, self.dist)

    def _sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        c_dim = getattr(self.G, "c_dim", 0)
        if c_dim == 0:
            return torch.zeros(n, 0, device=self.device)
        idx = torch.randint(len(self.dataset), (n,), generator=generator)
        return torch.stack([self.dataset[int(i)]["label"] for i in idx]).to(self.device)

    def _toward_front(self, c: torch.Tensor, yaw_deg: float, tries: int = 32) -> torch.Tensor:
        """``c`` with every camera label farther than ``yaw_deg`` of yaw from the front (+z
        about the origin) drawn again from the data set (0, or labels that are not 25-float
        cameras: ``c`` as it is)."""
        if yaw_deg <= 0 or c.shape[-1] != 25:
            return c
        c = c.clone()
        for _ in range(tries):
            yaw, _ = camera_label_yaw_pitch(c, pivot=(0.0, 0.0, 0.0))
            behind = yaw.abs() > math.radians(yaw_deg)
            if not behind.any():
                break
            c[behind] = self._sample_labels(int(behind.sum()))
        return c

    def _mapping(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Map z with style mixing (StyleGAN2: one cutoff per batch)."""
        ws = self.G.mapping(z, c, update_emas=True)
        p = self.cfg.loss.style_mixing
        if p > 0 and ws.shape[1] > 1 and torch.rand(()) < p:
            cutoff = int(torch.randint(1, ws.shape[1], ()))
            ws2 = self.G.mapping(torch.randn_like(z), c, update_emas=False)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return ws

    # -- phases -----------------------------------------------------------------------
    def _micro(self, n: int) -> list[tuple[slice, float]]:
        """Micro-batches of ``n`` local samples (``train.batch_gpu``; all at once when 0):
        (rows, share of the phase's mean loss)."""
        m = self.cfg.train.batch_gpu or n
        return [(slice(i, min(i + m, n)), (min(i + m, n) - i) / n) for i in range(0, n, m)]

    def _check_finite(self, loss: torch.Tensor, stats: StatsLog) -> None:
        """Stop on a NaN / Inf loss (on any rank) with the term that went first (the values
        this micro-batch logged), writing nothing."""
        if all_true(bool(torch.isfinite(loss.detach()).all()), self.dist, self.device):
            return
        bad = [k for k, v in stats.current.items() if not math.isfinite(v)]
        term = bad[0] if bad else "the phase's total loss"
        value = stats.current.get(term, float(loss.detach()))
        last = ckpt.list_checkpoints(self.run_dir)
        raise TrainingDiverged(
            f"{term} is {value} at step {self.step} (kimg {self.images_seen / 1000:.3f}): "
            f"training stopped; the last good checkpoint is "
            f"{last[-1] if last else 'none (nothing was written)'}"
        )

    def _optimize(
        self, opt: torch.optim.Optimizer, losses: Iterable[torch.Tensor], stats: StatsLog
    ) -> None:
        """One optimizer step on the sum of ``losses``: each (one micro-batch's share, made
        lazily by a generator, so only one micro-batch's activations live at a time) is
        checked and back-propagated, gradients accumulate, are averaged over ranks, step."""
        opt.zero_grad(set_to_none=True)
        stats.begin_phase()
        for loss in losses:
            self._check_finite(loss, stats)
            stats.begin_phase()
            with torch.autocast(self.device.type, enabled=False):  # the forward's dtypes
                loss.float().backward()
        average_gradients([p for g in opt.param_groups for p in g["params"]], self.dist)
        opt.step()

    def _g_main(self, stats: StatsLog) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        self._seed(1)
        z, c = self._global_inputs(self.global_batch)
        self._seed(1, local=True)
        fakes: list[dict[str, torch.Tensor]] = []

        def losses() -> Iterator[torch.Tensor]:
            for rows_, share in self._micro(z.shape[0]):
                out = self.synthesis(self._mapping(z[rows_], c[rows_]), c[rows_])
                loss = g_nonsaturating_loss(self.disc(out, c[rows_]).float())
                stats.add("Loss/G/adv", loss)
                fakes.append({k: v.detach() for k, v in out.items()})
                yield loss * share

        self._optimize(self.opt_G, losses(), stats)
        return {k: torch.cat([f[k] for f in fakes]) for k in fakes[0]}, c

    def _link_due(self) -> bool:
        return bool(self.links) and self.step % self.cfg.link.interval == 0

    def _other_regs_due(self) -> bool:
        s, lc = self.step, self.cfg.loss
        return (lc.pl_weight > 0 and s % lc.pl_interval == 0) or any(
            s % r.interval == 0 for r in self.g_regs
        )

    def _g_reg_due(self) -> bool:
        return self._link_due() or self._other_regs_due()

    def _g_reg(self, stats: StatsLog) -> None:
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        link = self._link_losses(stats) if self._link_due() else iter(())
        if self.opt_link is None:  # link.adam: shared — one G step on every lazy phase due
            self._optimize(self.opt_G, itertools.chain(link, self._other_reg_losses(stats)), stats)
            return
        if self._link_due():
            self._optimize(self.opt_link, link, stats)
        if self._other_regs_due():
            self._optimize(self.opt_G, self._other_reg_losses(stats), stats)

    def _link_losses(self, stats: StatsLog) -> Iterator[torch.Tensor]:
        """The link phase, micro-batch by micro-batch, scaled by its interval."""
        cfg = self.cfg
        self._seed(2)
        z, c = self._global_inputs(self._shrunk(cfg.link.batch_shrink))
        c = self._toward_front(c, cfg.link.view_yaw_deg)
        self._seed(2, local=True)
        perturbed: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = []
        for rows_, share in self._micro(z.shape[0]):
            yield self._link_terms(z[rows_], c[rows_], stats, perturbed) * share
        if perturbed:
            # D sees (detached) perturbed images in this step's D phase, a batch's worth.
            imgs = {k: torch.cat([p[0][k] for p in perturbed]) for k in perturbed[0][0]}
            cams = torch.cat([p[1] for p in perturbed])
            sel = torch.randperm(cams.shape[0])[: self.batch]
            self.pending_fakes = ({k: v[sel] for k, v in imgs.items()}, cams[sel])

    def _other_reg_losses(self, stats: StatsLog) -> Iterator[torch.Tensor]:
        """The other lazy G phases due at this step (path length, backbone regularizers),
        micro-batch by micro-batch, each scaled by its interval (lazy regularization)."""
        s, cfg = self.step, self.cfg
        if cfg.loss.pl_weight > 0 and s % cfg.loss.pl_interval == 0:
            self._seed(3)
            z, c = self._global_inputs(self._shrunk(cfg.loss.pl_batch_shrink))
            self._seed(3, local=True)
            for rows_, share in self._micro(z.shape[0]):
                ws = self._mapping(z[rows_], c[rows_])
                images = self.G.synthesis(ws, c[rows_])["image"]
                pen, self.pl_mean = path_length_penalty(images, ws, self.pl_mean, cfg.loss.pl_decay)
                stats.add("Loss/G/pl", pen)
                yield pen * cfg.loss.pl_weight * cfg.loss.pl_interval * share
        for reg in self.g_regs:
            if s % reg.interval == 0:
                self._seed(4)
                z, c = self._global_inputs(self.global_batch)
                self._seed(4, local=True)
                for rows_, share in self._micro(z.shape[0]):
                    terms = reg.fn(self.G, self._mapping(z[rows_], c[rows_]), c[rows_])
                    for name, v in terms.items():
                        stats.add(f"Loss/{reg.name}/{name}", v)
                    yield sum(terms.values()) * reg.weight * reg.interval * share

    def _link_terms(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        stats: StatsLog,
        perturbed: list[tuple[dict[str, torch.Tensor], torch.Tensor]],
    ) -> torch.Tensor:
        """The link loss (eqs. 3–6, times the interval), its volumetric term and, with
        ``feed_d``, G's adversarial loss on the perturbed renders (collected for D)."""
        cfg = self.cfg
        ws = self._mapping(z, c)
        sources = None
        if cfg.link.perturb == "resample":  # other instances' w; the mapping learns via ws
            with torch.no_grad():
                sources = self.G.mapping(torch.randn_like(z), c, update_emas=False)
        res = link_loss(
            lambda w, cc: self.synthesis(w, cc, noise_mode="const"),
            ws,
            self.links,
            c=c,
            alpha=cfg.link.alpha,
            lambda_in=cfg.link.lambda_in,
            lambda_out=cfg.link.lambda_out,
            maps=cfg.link.maps,
            map_scales=getattr(self.G, "map_scales", None),
            form=cfg.link.form,
            sources=sources,
        )
        total = res.total * cfg.link.interval
        if cfg.link.volume_weight > 0:
            vol, vol_terms = volume_link_loss(
                self.G.sample_mixed,
                ws,
                self.links,
                box_size=self.G.box_size,
                num_points=cfg.link.volume_points,
                alpha=cfg.link.alpha,
                lambda_in=cfg.link.lambda_in,
                lambda_out=cfg.link.lambda_out,
                form=cfg.link.form,
                sources=sources,
                around=cfg.link.volume_around,
            )
            total = total + vol * cfg.link.volume_weight * cfg.link.interval
            for name, value in vol_terms.items():
                stats.add(f"Loss/{name}", value)
        for name, value in res.terms.items():
            stats.add(f"Loss/{name}", value)
        stats.add("Loss/link/total", res.total)
        if cfg.link.feed_d:
            # Perturbed images are fakes too (paper §3.2): G must keep them realistic, and
            # D sees them (detached) in this step's D phase. Not scaled by the interval:
            # this is adversarial signal on extra samples, not a regularizer.
            adv = g_nonsaturating_loss(self.disc(res.perturbed, res.perturbed_c).float())
            total = total + adv
            stats.add("Loss/G/link_adv", adv)
            detached = {k: v.detach() for k, v in res.perturbed.items()}
            perturbed.append((detached, res.perturbed_c))
        return total

    def _d_main(self, fakes: dict[str, torch.Tensor], fake_c: torch.Tensor, reals, stats):
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        real_img, real_c = reals
        if self.cfg.link.feed_d and self.pending_fakes is not None:
            extra, extra_c = self.pending_fakes
            fakes = {k: torch.cat([fakes[k], extra[k]]) for k in fakes if k in extra}
            fake_c = torch.cat([fake_c, extra_c])
            self.pending_fakes = None
        micro = self._micro(real_img.shape[0])
        # Fakes (more than reals when perturbed renders join) split into as many parts.
        fake_parts = torch.arange(fake_c.shape[0]).tensor_split(len(micro))

        def losses() -> Iterator[torch.Tensor]:
            for (rows_, share), f in zip(micro, fake_parts, strict=True):
                fake_logits = self.disc({k: v[f] for k, v in fakes.items()}, fake_c[f]).float()
                real_logits = self.disc({"image": real_img[rows_]}, real_c[rows_]).float()
                # eq. 2 (d_logistic_loss) with each of its two means split over micro-batches
                fake_mean = F.softplus(fake_logits).mean()
                real_mean = F.softplus(-real_logits).mean()
                stats.add("Loss/D/loss", fake_mean + real_mean)
                stats.add("Scores/real", real_logits.mean())
                stats.add("Scores/fake", fake_logits.mean())
                yield fake_mean * (len(f) / fake_c.shape[0]) + real_mean * share

        self._optimize(self.opt_D, losses(), stats)

    def _d_reg(self, reals, stats: StatsLog) -> None:
        real_img, real_c = reals

        def losses() -> Iterator[torch.Tensor]:
            for rows_, share in self._micro(real_img.shape[0]):
                img = real_img[rows_].detach().requires_grad_(True)
                pen = r1_penalty(self.D({"image": img}, real_c[rows_]), [img])
                stats.add("Loss/D/r1", pen)
                yield pen * (self.r1_gamma / 2) * self.cfg.loss.r1_interval * share

        self._optimize(self.opt_D, losses(), stats)

    def _update_ema(self) -> None:
        tc = self.cfg.train
        ema_nimg = (tc.ema_kimg or self.global_batch * 10 / 32) * 1000
        if tc.ema_rampup > 0:
            ema_nimg = min(ema_nimg, self.images_seen * tc.ema_rampup)
        beta = 0.5 ** (self.global_batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                b_ema.copy_(b.detach())

    def measure_links(self) -> dict[str, float]:
        """link_mse of the EMA generator on the fixed in-training seeds, flattened to
        ``Link/<link>/<map>/<term>`` (plus ``out_over_in``) for the logs."""
        mc = self.cfg.metrics
        result = link_mse(
            self.G_ema,
            self.eval_links,
            num=mc.train_num,
            seed=mc.seed,
            mode=mc.mode,
            alpha=self.cfg.link.alpha,
        )["link_mse"]
        return {
            f"Link/{link}/{m}/{term}": float(v)
            for link, maps in result.items()
            for m, terms in maps.items()
            for term, v in terms.items()
            if isinstance(v, int | float)
        }

    def save_samples(self) -> Path:
        with torch.no_grad():
            ws = self.G_ema.mapping(self.sample_z, self.sample_c)
            images = self.G_ema.synthesis(ws, self.sample_c, noise_mode="const")["image"]
        path = self.run_dir / "samples" / f"fakes{self.images_seen // 1000:06d}.png"
        save_image_grid(images, path, cols=4)
        return path

    # -- the loop -----------------------------------------------------------------------
    def update_schedules(self) -> None:
        """Let networks follow their kimg schedules (EG3D: rendering resolution, D blur)."""
        kimg = self.images_seen / 1000
        for net in (self.G, self.D, self.G_ema):
            update = getattr(net, "update_schedule", None)
            if update is not None:
                update(kimg)

    def _shrunk(self, shrink: int) -> int:
        """A lazy phase's global batch: ``batch / shrink``, at least one image per rank."""
        world = self.dist.world
        return max(world, self.global_batch // shrink // world * world)

    def train_step(self, stats: StatsLog) -> None:
        mp = self.cfg.train.mixed_precision
        dtype = torch.float16 if mp == "fp16" else torch.bfloat16
        with torch.autocast(self.device.type, dtype=dtype, enabled=mp != "off"):
            self._train_step(stats)

    def _train_step(self, stats: StatsLog) -> None:
        self._seed(0)
        self.update_schedules()
        idx = rows(torch.randint(len(self.dataset), (self.global_batch,)), self.dist)
        reals = _collate(self.dataset, idx, self.device)
        if self.cfg.train.channels_last:
            reals = (reals[0].contiguous(memory_format=torch.channels_last), reals[1])
        fakes, fake_c = self._g_main(stats)
        if self._g_reg_due():
            self._g_reg(stats)
        self._d_main(fakes, fake_c, reals, stats)
        if self.step % self.cfg.loss.r1_interval == 0:
            self._d_reg(reals, stats)
        self.images_seen += self.global_batch
        average_buffers(self.G, self.dist)  # w_avg: the mean over the global batch
        self._update_ema()
        self.step += 1

    def budget_fraction(self) -> float:
        tc = self.cfg.train
        fractions = []
        if tc.kimg > 0:
            fractions.append(self.images_seen / (tc.kimg * 1000))
        if tc.minutes > 0:
            fractions.append(self.elapsed / (tc.minutes * 60))
        return max(fractions) if fractions else 1.0

    def train(self) -> TrainResult:
        tc = self.cfg.train
        if tc.kimg <= 0 and tc.minutes <= 0:
            raise ConfigError("set a budget: train.kimg or train.minutes must be > 0")
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temps(self.run_dir)
            (self.run_dir / "config.yaml").write_text(
                yaml.safe_dump(config_to_dict(self.cfg), sort_keys=False), encoding="utf-8"
            )
        stats = StatsLog(self.run_dir, dist=self.dist)
        bar = tqdm(
            total=1000,
            disable=not self.progress,
            bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
            desc="train",
            mininterval=1.0,
        )
        last_ckpt = time.monotonic()
        tick_start, tick_images = time.monotonic(), self.images_seen
        try:
            while True:
                # Rank 0's clock decides for all (budgets in minutes, timed checkpoints).
                done, timed_ckpt = from_main(
                    [
                        self.budget_fraction() >= 1.0,
                        time.monotonic() - last_ckpt >= tc.ckpt_every_minutes * 60,
                    ],
                    self.dist,
                    self.device,
                )
                if done:
                    break
                t0 = time.monotonic()
                if self.images_seen / 1000 >= self.next_sample_kimg:
                    if main:
                        self.save_samples()
                    self.next_sample_kimg += tc.sample_every_kimg
                self.train_step(stats)
                self.elapsed += time.monotonic() - t0
                every = self.cfg.metrics.every_kimg
                if (
                    every > 0
                    and self.eval_links
                    and self.images_seen / 1000 >= self.next_metric_kimg
                ):
                    if main:
                        stats.write_row(self.images_seen, self.measure_links())
                    self.next_metric_kimg += every
                if self.step % tc.log_every_steps == 0:
                    now = time.monotonic()
                    spk = (now - tick_start) / max((self.images_seen - tick_images) / 1000, 1e-9)
                    means = stats.flush(self.images_seen, {"Timing/s_per_kimg": spk})
                    tick_start, tick_images = now, self.images_seen
                    bar.n = min(1000, int(self.budget_fraction() * 1000))
                    bar.set_postfix_str(_postfix(self.images_seen, means), refresh=False)
                    bar.refresh()
                kimg_due = tc.ckpt_every_kimg > 0 and self.images_seen / 1000 >= self.next_ckpt_kimg
                if kimg_due or timed_ckpt:
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
                    while tc.ckpt_every_kimg > 0 and self.next_ckpt_kimg <= self.images_seen / 1000:
                        self.next_ckpt_kimg += tc.ckpt_every_kimg
        finally:
            bar.close()
        if stats.sums:
            stats.flush(self.images_seen, {})
        stats.close()
        if main:
            self.save_samples()
        self.save_checkpoint()
        return TrainResult(self.run_dir, self.images_seen, self.step, self.elapsed, stats.last)


def _postfix(images_seen: int, means: dict[str, float]) -> str:
    parts = [f"kimg {images_seen / 1000:.1f}", f"{means.get('Timing/s_per_kimg', 0):.1f}s/kimg"]
    for key, label in (("Loss/G/adv", "G"), ("Loss/D/loss", "D"), ("Loss/link/total", "link")):
        if key in means:
            parts.append(f"{label} {means[key]:.3f}")
    return " ".join(parts)
