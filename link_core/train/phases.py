"""The phases of one training iteration (StyleGAN2-ADA's, with LinkGAN's link phase):

  G main  : non-saturating loss on fresh fakes (style mixing);
  G reg   : the lazy G regularizers due this step (the link phase, path length, what a
            backbone brings), each scaled by its interval;
  D main  : logistic loss on reals and fakes (and the link phase's perturbed renders);
  D reg   : lazy R1, scaled by its interval.

A mixin of :class:`~link_core.train.loop.Trainer`, which owns the networks, optimizers and
counters these read. Every phase runs micro-batch by micro-batch (``train.batch_gpu``)
and steps its optimizer once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from link_core.errors import TrainingDiverged
from link_core.train.config import Config
from link_core.train.distributed import DistInfo, all_true, average_gradients
from link_core.train.gan_losses import g_nonsaturating_loss, path_length_penalty, r1_penalty
from link_core.train.link_phase import LinkPhase
from link_core.train.optim import PreconditionedSGD
from link_core.train.stats import StatsLog
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


class Phases:
    """G main, G reg (link, path length, backbone regularizers), D main, D reg."""

    cfg: Config
    dist: DistInfo
    device: torch.device
    G: torch.nn.Module
    D: torch.nn.Module
    link: LinkPhase
    g_regs: list[GRegularizer]
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    opt_link: torch.optim.Optimizer | None
    synthesis: Callable[..., dict[str, torch.Tensor]]
    disc: Callable[..., torch.Tensor]
    step: int
    images_seen: int
    batch: int
    global_batch: int
    r1_gamma: float
    pl_mean: torch.Tensor
    pending_fakes: tuple[dict[str, torch.Tensor], torch.Tensor] | None
    pending_finite: torch.Tensor | None
    fraction: float
    lr_scale: float

    def _micro(self, n: int) -> list[tuple[slice, float]]:
        """Micro-batches of ``n`` local samples (``train.batch_gpu``; all at once when 0):
        (rows, share of the phase's mean loss)."""
        m = self.cfg.train.batch_gpu or n
        return [(slice(i, min(i + m, n)), (min(i + m, n) - i) / n) for i in range(0, n, m)]

    def _check_finite(self, loss: torch.Tensor, stats: StatsLog) -> None:
        """Stop on a NaN / Inf loss (on any rank) with the term that went first (the values
        this micro-batch logged), writing nothing. On a GPU the check is deferred to the next
        tick (:meth:`raise_if_diverged`): reading the flag every phase would make the host
        wait for the GPU; the weights it may have spoiled meanwhile are never checkpointed."""
        flag = torch.isfinite(loss.detach()).all()
        if self.device.type == "cuda":
            self.pending_finite = (
                flag if self.pending_finite is None else self.pending_finite & flag
            )
            return
        if all_true(bool(flag), self.dist, self.device):
            return
        bad = stats.nonfinite(stats.current)
        term = bad[0] if bad else "the phase's total loss"
        value = float(stats.current.get(term, loss.detach()))
        self._diverged(term, value)

    def raise_if_diverged(self, stats: StatsLog) -> None:
        """The deferred check of :meth:`_check_finite`: the first term whose running sum since
        the last tick is NaN / Inf."""
        if self.pending_finite is None:
            return
        flag, self.pending_finite = self.pending_finite, None
        if not all_true(bool(flag), self.dist, self.device):  # every rank ticks together
            bad = stats.nonfinite()
            term = bad[0] if bad else "the phase's total loss"
            self._diverged(term, float(stats.sums[term]) if bad else float("nan"))

    def _diverged(self, term: str, value: float) -> None:
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

    def _optimize_pair(
        self,
        opt: torch.optim.Optimizer,
        opt_second: torch.optim.Optimizer,
        pairs: Iterable[tuple[torch.Tensor, torch.Tensor]],
        stats: StatsLog,
    ) -> None:
        """As :meth:`_optimize`, for two losses of one forward over the same parameters,
        each stepped by its own optimizer: the first's gradients by ``opt``, the second's
        (kept aside while the first back-propagates) by ``opt_second``."""
        params = [p for g in opt.param_groups for p in g["params"]]
        opt.zero_grad(set_to_none=True)
        opt_second.zero_grad(set_to_none=True)
        second = [torch.zeros_like(p) for p in params]
        stats.begin_phase()
        for loss, other in pairs:
            self._check_finite(loss, stats)
            self._check_finite(other, stats)
            stats.begin_phase()
            with torch.autocast(self.device.type, enabled=False):
                grads = torch.autograd.grad(
                    other.float(), params, retain_graph=True, allow_unused=True
                )
                for buf, grad in zip(second, grads, strict=True):
                    if grad is not None:
                        buf.add_(grad)
                loss.float().backward()
        average_gradients(params, self.dist)
        opt.step()
        for p, buf in zip(params, second, strict=True):
            p.grad = buf
        average_gradients(params, self.dist)
        opt_second.step()

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
        return self.link.due(self.step, self.fraction)

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
        steps = self._link_losses(stats) if self._link_due() else iter(())
        link = (loss if adv is None else loss + adv for loss, adv in steps)
        if self.opt_link is None:  # link.adam: shared — one G step on every lazy phase due
            self._optimize(self.opt_G, itertools.chain(link, self._other_reg_losses(stats)), stats)
            return
        if self._link_due():
            gain = self.link.lr_gain_at(self.fraction)
            for group in self.opt_link.param_groups:
                group["lr"] = self.cfg.train.lr_g * gain * self.lr_scale
            stats.add("Link/lr_gain", gain)
            if isinstance(self.opt_link, PreconditionedSGD):
                self.opt_link.clip = self.link.precond_clip_at(self.fraction)
                stats.add("Link/precond_clip", self.opt_link.clip)
            if self.link.adv_on_g:  # the perturbed renders' adversarial loss: G's Adam
                self._optimize_pair(self.opt_link, self.opt_G, steps, stats)
            else:
                self._optimize(self.opt_link, link, stats)
            if isinstance(self.opt_link, PreconditionedSGD):
                stats.add("Link/step_rms", self.opt_link.last_rms)
                stats.add("Link/step_clipped", self.opt_link.last_clipped)
        if self._other_regs_due():
            self._optimize(self.opt_G, self._other_reg_losses(stats), stats)

    def _link_losses(self, stats: StatsLog) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The link phase, micro-batch by micro-batch: (its loss, and G's adversarial loss on
        the perturbed renders when G's Adam steps that: ``link.adv_adam: g``), each times the
        micro-batch's share; D sees a batch of its renders."""
        self._seed(2)
        z, c = self._global_inputs(self._shrunk(self.link.batch_shrink))
        c = self.link.cameras(c, self._sample_labels)
        extra_c = self.link.extra_cameras(c, self._sample_labels)
        self._seed(2, local=True)
        fakes: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = []
        # link.perturb: resample — the partitions move to another instance's w (drawn
        # after z, so the gaussian mode's random stream is unchanged)
        z_other = torch.randn_like(z) if self.link.resamples else None
        for rows_, share in self._micro(z.shape[0]):
            ws = self._mapping(z[rows_], c[rows_])
            sources = None if z_other is None else self._mapping(z_other[rows_], c[rows_])
            views = None if extra_c is None else extra_c[rows_]
            step = self.link.step(self.G, self.synthesis, self.disc, ws, c[rows_], sources, views)
            for name, value in step.terms.items():
                stats.add(f"Loss/{name}", value)
            if step.fakes is not None:
                fakes.append(step.fakes)
            yield step.loss * share, None if step.adv is None else step.adv * share
        if fakes:
            imgs = {k: torch.cat([f[0][k] for f in fakes]) for k in fakes[0][0]}
            cams = torch.cat([f[1] for f in fakes])
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

    def _d_main(self, fakes: dict[str, torch.Tensor], fake_c: torch.Tensor, reals, stats):
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        real_img, real_c = reals
        if self.pending_fakes is not None:
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
