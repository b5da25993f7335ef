"""The one training loop for every backbone (StyleGAN2-ADA's phases, LinkGAN's lazy link).

Phases per iteration:
  G main  : non-saturating loss on fresh fakes (style mixing).
  G reg   : the lazy G regularizers that are due this step — the link loss (every
            ``link.interval`` steps), path length (``loss.pl_interval``) and whatever a
            backbone brings (EG3D's density regularizer) — each scaled by its interval,
            in one step of G's Adam; with ``link.adam: own`` the link phase steps an Adam
            of its own (at ``link.lr_gain × lr_g``). The link phase is a
            :class:`~link_core.train.link_phase.LinkPhase`, built once per run.
  D main  : logistic loss on reals and on the G-main fakes (plus the link phase's perturbed
            images when ``link.feed_d``).
  D reg   : lazy R1 every ``loss.r1_interval`` steps, scaled by the interval.

The loop only speaks the generator interface (:class:`~link_core.interface.Generator`,
:class:`~link_core.interface.Discriminator`); it never asks which backbone it holds.
Randomness is a function of (seed, step): every iteration reseeds, so a resumed run
continues the very same stream. The phases live in :mod:`link_core.train.phases`, what a
run saves and restores in :mod:`link_core.train.run_state`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch.utils.data import Dataset
from tqdm import tqdm

from link_core.data import image_to_float
from link_core.data.images import save_image_grid
from link_core.errors import ConfigError, UserError
from link_core.interface import seeds_to_z
from link_core.metrics import link_mse
from link_core.train.config import Config, config_to_dict
from link_core.train.distributed import (
    DistInfo,
    average_buffers,
    from_main,
    rows,
)
from link_core.train.link_phase import LinkPhase
from link_core.train.optim import PreconditionedSGD, cooldown_scale, lazy_ratio, make_adam
from link_core.train.phases import GRegularizer, Phases
from link_core.train.run_state import RunState
from link_core.train.stats import StatsLog, progress_postfix
from link_core.weights import checkpoint as ckpt


@dataclass
class TrainResult:
    run_dir: Path
    images_seen: int
    steps: int
    seconds: float
    stats: dict[str, float] = field(default_factory=dict)


def step_seed(seed: int, step: int) -> int:
    """A distinct, reproducible seed per (run seed, step)."""
    return (seed * 1_000_003 + step * 7_919 + 12_345) % (2**63 - 1)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda requested but no CUDA device is available")
    return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)


def _collate(dataset: Dataset, indices: torch.Tensor, device: torch.device):
    items = [dataset[int(i)] for i in indices]
    pin = device.type == "cuda"  # page-locked: the copy to the GPU does not wait on the host
    images = torch.stack([it["image"] for it in items])
    images = image_to_float((images.pin_memory() if pin else images).to(device, non_blocking=pin))
    labels = torch.stack([it["label"] for it in items]).to(device, torch.float32)
    return images, labels


class Trainer(Phases, RunState):
    """Owns networks, optimizers, counters and the phase schedule of one run."""

    def __init__(
        self,
        cfg: Config,
        G: torch.nn.Module,
        D: torch.nn.Module,
        dataset: Dataset,
        run_dir: str | Path,
        link: LinkPhase | None = None,
        g_regularizers: Sequence[GRegularizer] = (),
        progress: bool = True,
        dist: DistInfo | None = None,
    ):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = dist or DistInfo()
        self.device = resolve_device(cfg.train.device, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
        if cfg.train.num_threads > 0:
            torch.set_num_threads(cfg.train.num_threads)
        self.G = G.to(self.device).train()
        self.D = D.to(self.device).train()
        tc, lc = cfg.train, cfg.loss
        if tc.checkpoint_render or tc.ray_chunk:
            if not G.is_3d:
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
        self.link = link or LinkPhase(links=[], watched=[])
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
        g_intervals = [r.interval for r in self.g_regs] + self.link.shared_intervals()
        if lc.pl_weight > 0:
            g_intervals.append(lc.pl_interval)
        betas = (tc.beta1, tc.beta2)
        fused = self.device.type == "cuda"
        self.opt_G = make_adam(G.parameters(), tc.lr_g, betas, lazy_ratio(g_intervals), fused)
        # link.adam: own — the link phase steps a second Adam (its moments see only link
        # gradients), so a strong link no longer shrinks the main steps through G's RMS.
        # link.adam: precond — plain steps divided by G's Adam's RMS (PreconditionedSGD).
        self.opt_link: torch.optim.Optimizer | None = None
        link_lr = tc.lr_g * self.link.lr_gain
        if self.link.own_optimizer and cfg.link.adam == "precond":
            self.opt_link = PreconditionedSGD(
                G.parameters(), self.opt_G, link_lr, clip=cfg.link.precond_clip
            )
        elif self.link.own_optimizer:
            self.opt_link = make_adam(G.parameters(), link_lr, betas, 1.0, fused)
        self.opt_D = make_adam(D.parameters(), tc.lr_d, betas, lazy_ratio([lc.r1_interval]), fused)
        # train.lr_cooldown scales these (and the link phase's) from the config's rates
        self.base_lrs = {
            opt: [g["lr"] for g in opt.param_groups] for opt in (self.opt_G, self.opt_D)
        }
        self.lr_scale = 1.0
        self.fraction = 0.0  # of the budget, as rank 0 measured it before this step
        self.pl_mean = torch.zeros((), device=self.device)
        self.step = 0
        self.images_seen = 0
        self.kimg_offset = 0.0  # where the schedules start (train.init: the weights' kimg)
        self.schedule_values: dict[str, float] = {}  # what the last update_schedules set
        self.elapsed = 0.0
        self.pending_fakes: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None
        self.pending_finite: torch.Tensor | None = None  # GPU: checked once per tick
        # train.prefetch: one thread decodes the next step's reals while this step trains.
        self._loader = ThreadPoolExecutor(1) if tc.prefetch else None
        self._next_reals: tuple[int, Future] | None = None
        self.sample_z = seeds_to_z(range(16), G.z_dim).to(self.device)
        self.sample_c = self._sample_labels(16, torch.Generator().manual_seed(0))
        self.next_sample_kimg = 0.0
        self.next_metric_kimg = 0.0
        self.next_ckpt_kimg = self.cfg.train.ckpt_every_kimg

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
        if self.G.c_dim == 0:
            return torch.zeros(n, 0, device=self.device)
        idx = torch.randint(len(self.dataset), (n,), generator=generator)
        # Labels only: decoding each image just to read its label cost more than the step's
        # data loading on large images.
        return torch.stack([self.dataset.label(int(i)) for i in idx]).to(self.device)

    def _mapping(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Map z with style mixing (StyleGAN2: one cutoff per batch)."""
        ws = self.G.mapping(z, c, update_emas=True)
        p = self.cfg.loss.style_mixing
        if p > 0 and ws.shape[1] > 1 and torch.rand(()) < p:
            cutoff = int(torch.randint(1, ws.shape[1], ()))
            ws2 = self.G.mapping(torch.randn_like(z), c, update_emas=False)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return ws

    def _update_ema(self) -> None:
        tc = self.cfg.train
        ema_nimg = (tc.ema_kimg or self.global_batch * 10 / 32) * 1000
        if tc.ema_rampup > 0:
            ema_nimg = min(ema_nimg, self.schedule_kimg * 1000 * tc.ema_rampup)
        beta = 0.5 ** (self.global_batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            # One multi-tensor op: ema = beta·ema + (1 − beta)·p for every parameter.
            torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1 - beta)
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                b_ema.copy_(b.detach())

    def measure_links(self) -> dict[str, float]:
        """link_mse of the EMA generator on the fixed in-training seeds, flattened to
        ``Link/<link>/<map>/<term>`` (plus ``out_over_in``) for the logs."""
        mc = self.cfg.metrics
        result = link_mse(
            self.G_ema,
            self.link.watched,
            num=mc.train_num,
            seed=mc.seed,
            mode=mc.mode,
            alpha=self.link.alpha,
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
    @property
    def schedule_kimg(self) -> float:
        """The kimg the schedules follow: this run's images plus where ``train.init`` left
        them (``train.schedule_start``)."""
        return self.kimg_offset + self.images_seen / 1000

    def update_schedules(self) -> dict[str, float]:
        """Let networks follow their kimg schedules (EG3D: rendering resolution, D blur);
        returns what they set as ``Schedule/<name>`` log values, with the kimg they follow."""
        kimg = self.schedule_kimg
        values = {"Schedule/kimg": kimg}
        for net in (self.G, self.D, self.G_ema):
            values.update({f"Schedule/{k}": v for k, v in net.update_schedule(kimg).items()})
        if self.cfg.train.lr_cooldown > 0:
            self.lr_scale = cooldown_scale(self.fraction, self.cfg.train.lr_cooldown)
            for opt, lrs in self.base_lrs.items():
                for group, lr in zip(opt.param_groups, lrs, strict=True):
                    group["lr"] = lr * self.lr_scale
            values["Schedule/lr_scale"] = self.lr_scale
        self.schedule_values = values
        return values

    def _shrunk(self, shrink: int) -> int:
        """A lazy phase's global batch: ``batch / shrink``, at least one image per rank."""
        world = self.dist.world
        return max(world, self.global_batch // shrink // world * world)

    def train_step(self, stats: StatsLog) -> None:
        mp = self.cfg.train.mixed_precision
        dtype = torch.float16 if mp == "fp16" else torch.bfloat16
        with torch.autocast(self.device.type, dtype=dtype, enabled=mp != "off"):
            self._train_step(stats)

    def _load_reals(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``step``'s real images and labels: the indices come from the step's seed
        alone, so a prefetching thread draws the same batch the step would."""
        draw = torch.Generator().manual_seed(step_seed(self.cfg.train.seed, step))
        idx = torch.randint(len(self.dataset), (self.global_batch,), generator=draw)
        return _collate(self.dataset, rows(idx, self.dist), self.device)

    def _reals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's reals (prefetched when ``train.prefetch``), and the next step's
        started."""
        pending, self._next_reals = self._next_reals, None
        if pending is not None and pending[0] == self.step:
            reals = pending[1].result()
        else:
            reals = self._load_reals(self.step)
        if self._loader is not None:
            self._next_reals = (self.step + 1, self._loader.submit(self._load_reals, self.step + 1))
        return reals

    def _train_step(self, stats: StatsLog) -> None:
        self._seed(0)
        self.update_schedules()
        reals = self._reals()
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
        # The first row: the schedules the first step follows (a fine-tune's continue
        # where its weights left them: train.schedule_start).
        self.fraction = self.budget_fraction()  # a resumed run's; the same on every rank
        schedules = self.update_schedules()
        stats.write_row(self.images_seen, schedules)
        if self.progress:
            tqdm.write(
                "schedules start at "
                + ", ".join(f"{k.split('/')[1]} {v:g}" for k, v in schedules.items())
            )
        last_ckpt = time.monotonic()
        tick_start, tick_images = time.monotonic(), self.images_seen
        try:
            while True:
                # Rank 0's clock decides for all (budgets in minutes, timed checkpoints, and
                # what follows the budget: the cooldown, the link gain), so ranks step alike.
                self.fraction, timed_ckpt = from_main(
                    [
                        self.budget_fraction(),
                        time.monotonic() - last_ckpt >= tc.ckpt_every_minutes * 60,
                    ],
                    self.dist,
                    self.device,
                )
                if self.fraction >= 1.0:
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
                    and self.link.watched
                    and self.images_seen / 1000 >= self.next_metric_kimg
                ):
                    if main:
                        stats.write_row(self.images_seen, self.measure_links())
                    self.next_metric_kimg += every
                if self.step % tc.log_every_steps == 0:
                    self.raise_if_diverged(stats)
                    now = time.monotonic()
                    seconds, images = now - tick_start, self.images_seen - tick_images
                    timing = {
                        "Timing/s_per_kimg": seconds / max(images / 1000, 1e-9),
                        "Timing/img_per_s": images / max(seconds, 1e-9),
                    }
                    means = stats.flush(self.images_seen, {**timing, **self.schedule_values})
                    tick_start, tick_images = now, self.images_seen
                    bar.n = min(1000, int(self.budget_fraction() * 1000))
                    bar.set_postfix_str(progress_postfix(self.images_seen, means), refresh=False)
                    bar.refresh()
                kimg_due = tc.ckpt_every_kimg > 0 and self.images_seen / 1000 >= self.next_ckpt_kimg
                if kimg_due or timed_ckpt:
                    self.raise_if_diverged(stats)
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
                    while tc.ckpt_every_kimg > 0 and self.next_ckpt_kimg <= self.images_seen / 1000:
                        self.next_ckpt_kimg += tc.ckpt_every_kimg
        finally:
            bar.close()
            self._next_reals = None  # a batch drawn for a step that will not run
        self.raise_if_diverged(stats)
        if stats.sums:
            stats.flush(self.images_seen, {})
        stats.close()
        if main:
            self.save_samples()
        self.save_checkpoint()
        return TrainResult(self.run_dir, self.images_seen, self.step, self.elapsed, stats.last)
