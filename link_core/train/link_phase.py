"""The link phase: LinkGAN's regularizer as the loop runs it (paper §3.2).

:class:`LinkPhase` is built once per run from the config's ``link`` section and the links
(:func:`links_from_config`); the loop owns it and asks it when it is due, what it costs
and what D should see. Nothing else reads the link section: the loss itself
(:func:`link_core.link.link_loss`) stays a pure function of tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from link_core.data.cameras import CAMERA_LABEL_DIM, camera_label_yaw_pitch
from link_core.errors import ConfigError
from link_core.interface import Generator, Outputs
from link_core.link import Box3DRegion, Link, build_links, link_loss, volume_link_loss
from link_core.train.config import Config, LinkConfig
from link_core.train.config_checks import OWN_OPTIMIZER_MODES
from link_core.train.gan_losses import g_nonsaturating_loss

SynthesisFn = Callable[..., Outputs]
DiscFn = Callable[[Outputs, torch.Tensor], torch.Tensor]
LabelSampler = Callable[[int], torch.Tensor]


def links_from_config(cfg: Config, is_3d: bool) -> list[Link]:
    """The config's links, validated (mask providers from ``link.masks``), whether or not the
    loss is on: the regions and axes still say what to edit and measure. ``is_3d``: the
    generator renders depth (:class:`~link_core.interface.Generator3D`); 3-D regions need it."""
    providers = {}
    if cfg.link.masks:
        from link_core.edit.segmenter import build_mask_providers

        providers = build_mask_providers(cfg.link.masks)
    links = build_links(cfg.link.links, cfg.model.w_dim, providers=providers)
    for i, link in enumerate(links):
        if isinstance(link.region, Box3DRegion) and not is_3d:
            raise ConfigError(
                f"link.links[{i}] ({link.name}).region.box3d: 3-D regions need a 3-D backbone "
                f"(model.backbone: eg3d; got {cfg.model.backbone})"
            )
    return links


@dataclass
class LinkStep:
    """One micro-batch of the link phase."""

    loss: torch.Tensor
    """Scalar to minimize: eqs. 3–6 (and the volumetric term) times the interval, plus G's
    adversarial loss on the perturbed renders when D sees them."""
    terms: dict[str, torch.Tensor]
    """Named scalars for the logs (``link/<link>/<map>/in|out``, ``link/total``, …)."""
    fakes: tuple[Outputs, torch.Tensor] | None
    """The perturbed renders (detached) and their cameras, for D; None unless ``feed_d``."""
    adv: torch.Tensor | None = None
    """G's adversarial loss on the perturbed renders when another Adam steps it
    (``link.adv_adam: g``; ``loss`` then leaves it out); None otherwise."""


@dataclass
class LinkPhase:
    """The link regularizer's schedule, weights and options, and the step that applies them."""

    links: list[Link]
    """The links the loss trains (empty: the loss is off)."""
    watched: list[Link]
    """The links measured while training (all of the config's, also when the loss is off)."""
    cfg: LinkConfig = field(default_factory=LinkConfig)
    """The link section the phase was built from (read here only)."""

    @classmethod
    def from_config(cls, cfg: Config, links: Sequence[Link], is_3d: bool) -> LinkPhase:
        """The phase of a run: ``links`` from :func:`links_from_config`; checks the options
        that need a 3-D generator."""
        lc = cfg.link
        if lc.enabled and lc.volume_weight > 0 and not is_3d:
            raise ConfigError(
                f"link.volume_weight: backbone '{cfg.model.backbone}' has no 3-D field (needs eg3d)"
            )
        return cls(links=list(links) if lc.enabled else [], watched=list(links), cfg=lc)

    @property
    def on(self) -> bool:
        return bool(self.links)

    @property
    def interval(self) -> int:
        return self.cfg.interval

    @property
    def own_optimizer(self) -> bool:
        """Whether the phase steps an optimizer of its own (``link.adam: own`` or
        ``precond``) instead of G's Adam."""
        return self.on and self.cfg.adam in OWN_OPTIMIZER_MODES

    @property
    def lr_gain(self) -> float:
        return self.cfg.lr_gain

    def lr_gain_at(self, fraction: float) -> float:
        """The link Adam's gain at ``fraction`` (0-1) of the run's budget: ``lr_gain``, or
        annealed linearly to ``lr_gain_end`` when that is set."""
        return _towards(self.cfg.lr_gain, self.cfg.lr_gain_end, fraction)

    def precond_clip_at(self, fraction: float) -> float:
        """``link.adam: precond``'s per-parameter bound at ``fraction`` (0-1) of the budget:
        ``precond_clip``, or moved linearly to ``precond_clip_end`` when that is set."""
        return _towards(self.cfg.precond_clip, self.cfg.precond_clip_end, fraction)

    @property
    def adv_on_g(self) -> bool:
        """G's Adam (not the link Adam) steps the adversarial loss on the perturbed renders."""
        return self.own_optimizer and self.feeds_d and self.cfg.adv_adam == "g"

    @property
    def batch_shrink(self) -> int:
        return self.cfg.batch_shrink

    @property
    def feeds_d(self) -> bool:
        return self.on and self.cfg.feed_d

    @property
    def resamples(self) -> bool:
        """The phase moves partitions of w to other instances' (``link.perturb: resample``)."""
        return self.on and self.cfg.perturb == "resample"

    @property
    def alpha(self) -> float:
        return self.cfg.alpha

    def due(self, step: int, fraction: float) -> bool:
        """A link step at G step ``step``, ``fraction`` (0-1) of the way through the budget:
        every ``interval``-th step until ``link.until``."""
        return self.on and fraction < self.cfg.until and step % self.cfg.interval == 0

    def shared_intervals(self) -> list[int]:
        """The phase's interval when it shares G's Adam (for the lazy-regularization rescale)."""
        return [self.cfg.interval] if self.on and not self.own_optimizer else []

    def start_from_base(self, nets: Sequence[Generator]) -> None:
        """A fine-tune from trained weights (``train.init``): scale the linked axes' say in
        the styles by ``link.init_axes_scale`` so they grow into their regions instead of the
        loss taking their influence away everywhere."""
        scale = self.cfg.init_axes_scale
        if not self.on or scale == 1.0:
            return
        axes = sorted({a for link in self.links for a in link.axes})
        for net in nets:
            net.scale_style_inputs(axes, scale)

    def cameras(self, c: torch.Tensor, draw: LabelSampler, tries: int = 32) -> torch.Tensor:
        """``c`` with every camera label farther than ``link.view_yaw_deg`` of yaw from the
        front (+z about the origin) drawn again with ``draw(n)``, so the phase's samples see
        the linked parts (0, or labels that are not camera labels: ``c`` as it is)."""
        yaw_deg = self.cfg.view_yaw_deg
        if yaw_deg <= 0 or c.shape[-1] != CAMERA_LABEL_DIM:
            return c
        return _redraw_until(c, draw, lambda yaw: yaw.abs() <= math.radians(yaw_deg), tries)

    def extra_cameras(
        self, c: torch.Tensor, draw: LabelSampler, tries: int = 32
    ) -> torch.Tensor | None:
        """``[B, extra_views, c_dim]``: for each of the phase's samples (``c``, ``[B, c_dim]``
        from :meth:`cameras`), ``link.extra_views`` more camera labels from ``draw(n)``,
        each outside the front cone (yaw beyond ``link.view_yaw_deg``; any label when that
        is 0 or the labels are not camera labels); None when ``extra_views`` is 0."""
        n = self.cfg.extra_views
        if not self.on or n <= 0:
            return None
        extra = draw(c.shape[0] * n)
        yaw_deg = self.cfg.view_yaw_deg
        if yaw_deg > 0 and c.shape[-1] == CAMERA_LABEL_DIM:
            extra = _redraw_until(extra, draw, lambda yaw: yaw.abs() > math.radians(yaw_deg), tries)
        return extra.reshape(c.shape[0], n, c.shape[-1])

    def step(
        self,
        G: Generator,
        synthesis: SynthesisFn,
        disc: DiscFn,
        ws: torch.Tensor,
        c: torch.Tensor,
        sources: torch.Tensor | None = None,
        extra_c: torch.Tensor | None = None,
    ) -> LinkStep:
        """The link loss of one micro-batch (eqs. 3–6 times the interval: lazy
        regularization), its volumetric term, and with ``feed_d`` G's adversarial loss on the
        perturbed renders. ``synthesis`` is G's (maybe compiled) synthesis, ``disc`` D.
        ``sources``: other instances' w, ``[B, num_ws, w_dim]`` like ``ws``, to resample
        from (``link.perturb: resample``); None: ``w + α·p``. ``extra_c``: ``[B, V, c_dim]``
        more cameras per sample (:meth:`extra_cameras`): every sample is rendered from ``c``
        and from those, and eq. 4 pools its views."""
        lc = self.cfg
        groups = None
        if extra_c is not None:
            views = 1 + extra_c.shape[1]
            c = torch.cat([c[:, None], extra_c.to(c)], dim=1).flatten(0, 1)
            ws = ws.repeat_interleave(views, dim=0)
            sources = None if sources is None else sources.repeat_interleave(views, dim=0)
            groups = torch.arange(extra_c.shape[0], device=ws.device).repeat_interleave(views)
        res = link_loss(
            lambda w, cc: synthesis(w, cc, noise_mode="const"),
            ws,
            self.links,
            c=c,
            alpha=lc.alpha,
            lambda_in=lc.lambda_in,
            lambda_out=lc.lambda_out,
            maps=lc.maps,
            map_scales=G.map_scales,
            form=lc.form,
            sources=sources,
            margin=lc.margin,
            groups=groups,
            mix=lc.mix,
        )
        total = res.total * lc.interval
        terms = dict(res.terms)
        terms["link/total"] = res.total
        if lc.volume_weight > 0:
            vol, vol_terms = volume_link_loss(
                G.sample_mixed,
                ws,
                self.links,
                box_size=G.box_size,
                num_points=lc.volume_points,
                alpha=lc.alpha,
                lambda_in=lc.lambda_in,
                lambda_out=lc.lambda_out,
                form=lc.form,
                around=lc.volume_around,
                sources=sources,
                margin=lc.margin,
                mix=lc.mix,
            )
            total = total + vol * lc.volume_weight * lc.interval
            terms.update(vol_terms)
        fakes = None
        if lc.feed_d:
            # Perturbed images are fakes too (paper §3.2): G must keep them realistic, and
            # D sees them (detached) in this step's D phase. Not scaled by the interval:
            # this is adversarial signal on extra samples, not a regularizer.
            adv = g_nonsaturating_loss(disc(res.perturbed, res.perturbed_c).float())
            terms["G/link_adv"] = adv
            fakes = ({k: v.detach() for k, v in res.perturbed.items()}, res.perturbed_c)
            if self.adv_on_g:
                return LinkStep(total, terms, fakes, adv=adv)
            total = total + adv
        return LinkStep(total, terms, fakes)


def _towards(start: float, end: float, fraction: float) -> float:
    """``start`` moved linearly to ``end`` at ``fraction`` (clamped to 0-1) of the budget;
    ``start`` throughout when ``end`` is 0 (the config's "constant")."""
    if end <= 0:
        return start
    return start + (end - start) * min(max(fraction, 0.0), 1.0)


def _redraw_until(
    c: torch.Tensor, draw: LabelSampler, wanted: Callable[[torch.Tensor], torch.Tensor], tries: int
) -> torch.Tensor:
    """``c`` (camera labels ``[B, 25]``) with every label whose yaw (radians, about the
    origin) fails ``wanted`` drawn again with ``draw(n)``, up to ``tries`` rounds."""
    c = c.clone()
    for _ in range(tries):
        yaw, _ = camera_label_yaw_pitch(c, pivot=(0.0, 0.0, 0.0))
        redo = ~wanted(yaw)
        if not redo.any():
            break
        c[redo] = draw(int(redo.sum()))
    return c
