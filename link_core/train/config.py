"""Typed configuration: dataclasses mirrored by YAML, and their value checks.

Every field is documented where it is declared (``docs/configs.md`` is generated from these
docs: ``make docs``). Unknown keys are an error that names the key path (``link.lamda_in``),
so a typo never silently falls back to a default. Reading and writing (YAML presets with
``extends``, ``--set`` overrides, migration of old keys) is ``link_core.train.config_io``,
the value checks ``link_core.train.config_checks``; their names are re-exported here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from link_core.errors import ConfigError
from link_core.train.config_checks import (  # noqa: F401  (re-exported)
    COMPILE_MODES,
    LOSS_FORMS,
    validate_config,
)
from link_core.train.config_io import (  # noqa: F401  (re-exported)
    MIGRATIONS,
    Moved,
    Removed,
    _from_dict,
    apply_overrides,
    dataclass_from_dict,
    deep_merge,
    migrate_config_dict,
    read_preset,
)


@dataclass
class DataConfig:
    """``data``: the training images."""

    path: str = ""
    """Image folder or zip (StyleGAN/EG3D layout). Empty: the built-in ``synthetic`` set."""
    synthetic: str = "toyfaces"
    """Built-in data set when ``path`` is empty: ``toyfaces`` (2D), or ``heads`` / ``scenes``
    (3D, rendered once with pytorch3d and cached under ``$LINKGAN_CACHE``)."""
    cameras: str = "orbit"
    """Camera distribution of the built-in 3D sets: ``orbit`` (360° yaw, ±30° pitch) or
    ``frontal`` (FFHQ-like cone)."""
    resolution: int = 32
    """Image resolution (power of two). Must match the data set's images."""
    xflip: bool = False
    """Mirror augmentation (doubles the data set)."""
    num_images: int = 4096
    """Size of the built-in procedural data set (ignored for folders/zips)."""
    seed: int = 0
    """Seed of the built-in procedural data set."""


@dataclass
class ModelConfig:
    """``model``: the generator and discriminator (the shape ``train.init`` weights must match)."""

    backbone: str = "stylegan2"
    """Which backbone builds G and D: ``stylegan2`` (2D) or ``eg3d`` (tri-plane, 3D-aware)."""
    resolution: int = 32
    """Output image resolution (power of two, 16..1024); equals ``data.resolution``."""
    z_dim: int = 64
    """Width of the latent z fed to the mapping network."""
    w_dim: int = 64
    """Width of w; link axes index into it. The paper links 64 of 512 axes per part."""
    c_dim: int = 0
    """Conditioning label size (0: unconditional). EG3D cameras are 25 floats."""
    mapping_layers: int = 2
    """Fully connected layers of the mapping network z -> w (StyleGAN2: 8)."""
    mapping_lr_mult: float = 0.01
    """Learning-rate multiplier of the mapping network (StyleGAN2: 0.01)."""
    channel_base: int = 1024
    """Channels at resolution r are ``min(channel_base // r, channel_max)`` (StyleGAN2)."""
    channel_max: int = 32
    """Cap on the channels of any block (StyleGAN2 config-f: 512)."""
    use_noise: bool = True
    """Per-pixel noise inputs in the synthesis layers."""
    style_init: float = 1.0
    """Initial scale of the w -> style affine weights (StyleGAN2: 1). Small values (0.1)
    start styles nearly independent of w, so links form by growing the right dependencies
    rather than tearing the wrong ones down (quickstart: see README)."""
    mbstd_group: int = 4
    """Minibatch-standard-deviation group size of D's last block (StyleGAN2-ADA paper256 and
    paper512: 8; EG3D: 4)."""
    d_mapping_layers: int = 1
    """Layers of D's conditioning MLP after its label embedding (conditional models only;
    NVIDIA's StyleGAN2-ADA and EG3D discriminators: 8)."""
    d_channel_base: int = 0
    """Discriminator channel base; 0 means the same as ``channel_base``."""
    d_channel_max: int = 0
    """Discriminator channel cap; 0 means the same as ``channel_max``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Backbone-specific settings (e.g. EG3D's tri-plane and rendering options)."""


@dataclass
class LinkConfig:
    """``link``: the link regularizer (paper §3.2, eq. 6): which w axes own which region."""

    enabled: bool = True
    """Switch the link regularizer (paper eq. 6) on or off."""
    links: list[dict[str, Any]] = field(default_factory=list)
    """Links ``{name, axes: [start, stop] | [i, j, ...], region: {box | boxes | mask}, weight}``
    (``weight``: optional factor on that link's loss terms, default 1)."""
    alpha: float = 1.0
    """Perturbation strength α in ``w + α·p``, ``p ~ N(0, I)`` (paper §3.2); with ``perturb:
    resample``, how far towards the other instance's axes (1: all the way)."""
    perturb: str = "gaussian"
    """How the link phase moves a partition of w: ``gaussian``, the paper's ``w + α·p``,
    ``p ~ N(0, I)`` (out of the mapping's range, and D sees those renders); ``resample``, to
    another instance's mapped w, as edits and ``metrics.mode`` do (docs/results.md)."""
    lambda_in: float = 1.0
    """λ₁: weight of L_i, the change inside the region when the complement is perturbed."""
    lambda_out: float = 1.0
    """λ₂: weight of L_iᶜ, the change outside the region when the link's axes are perturbed."""
    masks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Named mask providers for ``region: {mask: NAME}`` (semantic links that move per
    instance): ``{segmenter: seg.pt, classes: [object]}`` (TorchScript, e.g. from
    ``linkgan train-segmenter``) or ``{color: [r, g, b], tolerance: 0.15}``."""
    form: str = "absolute"
    """``absolute``: the paper's squared changes (eqs. 3, 4). ``relative``: each
    perturbation's change on the wrong side as a share of its whole change (scale-free;
    small generators fine-tuned with the absolute form collapse instead of linking).
    ``share``: relative, with eq. 4 as the share of the link's summed change outside its
    region (what the edit grids show; ``link_core.link.link_loss``). ``share_fixed``:
    ``share`` whose gradient only shrinks the change on the wrong side (the whole change
    detached), so it cannot be met by making the part's own change larger.
    ``share_pooled``: ``share`` with eq. 4 as one share of the batch's summed change, views
    that hide the region included (with ``view_yaw_deg: 0`` the link cameras go all round):
    on the 3-D preset it removed the edits' tint of the back of the head but cost FID and
    the front views' locality (docs/results.md). ``share_mixed``: ``share``'s and
    ``share_pooled``'s eq. 4 weighed by ``mix`` (by default their mean), so an edit whose
    change all escaped its region is pulled back (per sample its share's gradient vanishes)
    and each small edit keeps its pull."""
    mix: float = 0.5
    """With ``form: share_mixed``: the per-sample share's weight in eq. 4, in [0, 1] (the
    pooled share gets the rest; 1 is ``share``, 0 ``share_pooled``). Refused with any other
    form. On the 3-D preset under ``precond_clip: 2``, 0.25 and 0.75 both cost FID against
    0.5 (docs/results.md)."""
    margin: float = 0.0
    """With the ``relative`` / ``share`` forms: each sample's share of change on the wrong
    side counts only above this (a hinge, e.g. 0.05), so a link already that local adds no
    gradient and the adversarial steps have G to themselves there. 0: the plain share."""
    adam: str = "shared"
    """Which Adam steps the link phase. ``shared``: G's own, as lazy regularizers do in
    StyleGAN2 (its running RMS then follows the larger of the link and adversarial
    gradients, so a strong link slows the main steps: ``bench/link_gradient_balance.py``).
    ``own``: a second Adam over G's parameters for the link phase alone, so each phase's
    steps are normalized by its own gradients and λ sets only the balance of eqs. 3 and 4;
    how far the link phase moves G is then ``lr_gain``. ``precond``: plain gradient steps
    divided by G's Adam's running RMS (which sees no link gradient;
    :class:`~link_core.train.optim.PreconditionedSGD`), so λ sets how hard the link pulls
    against the adversarial gradients and the steps shrink as the link gradient does.
    The options below that a mode never reads (``lr_gain`` under ``shared``,
    ``precond_clip`` under all but ``precond``, …) are refused when set, not ignored."""
    lr_gain: float = 1.0
    """With ``adam: own`` or ``precond``: the link phase's learning rate as a multiple of
    ``train.lr_g``."""
    precond_clip: float = 4.0
    """With ``adam: precond``: the largest step per parameter, in units of G's Adam's RMS
    (``|g / √v̂|`` is clipped to this, so one link step moves a parameter by at most
    ``precond_clip`` main steps' worth)."""
    precond_clip_end: float = 0.0
    """With ``adam: precond``: > 0 moves the bound linearly from ``precond_clip`` at the
    run's start to this at the end of its budget (links formed under large steps, held by
    smaller ones; on the 3-D preset 4 → 2 kept the locality but not FID: docs/results.md).
    0: constant."""
    lr_gain_end: float = 0.0
    """With ``adam: own`` or ``precond``: > 0 anneals the gain linearly from ``lr_gain`` at
    the run's start to this at the end of its budget (kimg or minutes), so the links form
    early and the adversarial steps have the last part of the run to restore quality.
    0: constant."""
    adv_adam: str = "link"
    """With ``adam: own`` or ``precond``, and ``feed_d``: which Adam steps G's adversarial
    loss on the perturbed renders. ``link``: the link Adam, with the link terms (at ``lr_gain``).
    ``g``: G's own Adam, at ``train.lr_g`` like the main phase's adversarial loss, so the
    link gain does not also scale how hard G chases D on those renders."""
    init_axes_scale: float = 1.0
    """When a run starts from ``train.init``: multiply the w -> style weights of every
    linked axis by this (e.g. 0.1). The converged generator's linked axes then start nearly
    without influence and grow into their regions, instead of the link loss taking their
    influence away everywhere (the fine-tuning analogue of ``model.style_init``)."""
    interval: int = 8
    """Lazy regularization: apply every N generator steps, loss scaled by N (paper: 8)."""
    until: float = 1.0
    """The share of the budget (0-1] after which the link phase stops: the rest of the run
    is adversarial steps only (with ``train.lr_cooldown``, at falling rates). On the 3-D
    preset the links came apart within the last quarter and FID rose (docs/results.md):
    links are held by the link steps. 1: link steps to the end."""
    feed_d: bool = True
    """Also show the perturbed images to D as fakes (paper: on)."""
    maps: dict[str, float] = field(default_factory=lambda: {"image": 1.0})
    """Output maps the loss regularizes, with a weight each (EG3D adds image_raw, depth)."""
    batch_shrink: int = 1
    """Run the link phase on ``batch // batch_shrink`` samples (cheaper lazy phase)."""
    view_yaw_deg: float = 0.0
    """> 0: the link phase draws its cameras from the data set's labels (25-float camera
    labels) whose position lies within this many degrees of yaw of the front (+z about the
    origin), so its samples see the linked parts: from behind a face's parts are out of view
    and such a sample adds no loss. 0: any label, as the main phases."""
    extra_views: int = 0
    """> 0: each link sample is also rendered, with the same w and the same edits, from this
    many cameras the front cone leaves out (yaw beyond ``view_yaw_deg``; any camera when
    that is 0), and eq. 4's share pools each sample's views (``link_core.link.link_loss``
    ``groups``): what an edit changes on the back of the head counts against that edit as
    much as a change beside the part in the front view. Needs a ``share`` form; each link
    step renders ``1 + extra_views`` times as much (raise ``batch_shrink`` to keep its
    cost). 0: front views only."""
    volume_weight: float = 0.0
    """Weight of the volumetric link term (3-D regions, generators with ``sample_mixed``):
    compare occupancy and colour at 3-D points inside/outside each box after perturbing,
    without rendering, in ``form`` as the image term
    (``link_core.link.volume_link_loss``). 0: off."""
    volume_points: int = 1024
    """3-D points per sample for the volumetric term: half uniform over the generator's
    box, half inside the links' boxes (``link_core.link.volume_points``)."""
    volume_around: float = 0.0
    """> 0: the volumetric term's points outside the boxes lie within this distance (world
    units) of the links' boxes' bounding box (the face) instead of anywhere in the
    generator's box. 0: anywhere."""


@dataclass
class LossConfig:
    """``loss``: the GAN losses and StyleGAN2's regularizers."""

    r1_gamma: float = 0.0
    """R1 weight γ (``γ/2·‖∇D‖²``); 0 picks StyleGAN2-ADA's ``0.0002·res²/batch``."""
    r1_interval: int = 16
    """Lazy R1: apply every N discriminator steps, penalty scaled by N."""
    pl_weight: float = 0.0
    """Path-length regularization weight (StyleGAN2 uses 2); 0 switches it off."""
    pl_interval: int = 4
    """Lazy path-length regularization: every N generator steps."""
    pl_decay: float = 0.01
    """Decay of the running mean path length the penalty compares against."""
    pl_batch_shrink: int = 2
    """Run path-length regularization on ``batch // pl_batch_shrink`` samples."""
    style_mixing: float = 0.9
    """Probability of style mixing in G's main phase."""


@dataclass
class TrainConfig:
    """``train``: optimizers, budgets, checkpoints and the device."""

    batch: int = 16
    """Images per optimizer step (over all processes)."""
    lr_g: float = 0.0025
    """Generator learning rate (Adam)."""
    lr_d: float = 0.0025
    """Discriminator learning rate (Adam)."""
    lr_cooldown: float = 0.0
    """The last share of the budget (0-1) over which G's, D's and the link phase's learning
    rates fall linearly to 0 (0: constant rates). Lowers the weights' step-to-step noise at
    the end the way a longer EMA does, without averaging in weights from before the links
    formed."""
    beta1: float = 0.0
    """Adam β₁ of both networks (StyleGAN2: 0)."""
    beta2: float = 0.99
    """Adam β₂ of both networks (StyleGAN2: 0.99)."""
    kimg: float = 0.0
    """Stop after this many thousand real images shown to D (0: no kimg budget)."""
    minutes: float = 0.0
    """Stop after this many minutes of wall time (0: no time budget)."""
    seed: int = 0
    """Seed of the initial networks and of every step's latents (same seed, same run)."""
    init: str = ""
    """Start a fresh run from trained weights (the paper's §4.2 recipe: add the link to a
    converged generator): a run directory, a checkpoint, a published or imported file, or
    ``base:NAME`` (``assets/NAME.safetensors``). Loads G, its EMA and D; optimizers and
    budgets start fresh. The model section comes from the weights: a preset names only
    what it changes, and may change only the keys free on a fine-tune (docs/fine-tune.md);
    any other model value must equal the weights' own."""
    schedule_start: str = "checkpoint"
    """With ``init``: ``checkpoint`` continues the kimg-driven schedules (EG3D rendering
    resolution and D blur, the EMA ramp) where the weights left them (a checkpoint's images
    seen, a published card's kimg, an NVIDIA file's ``network-snapshot-NNNNNN``);
    ``zero`` restarts them. ``train.kimg`` always counts the new run's own images."""
    ema_kimg: float = 0.0
    """EMA half-life in kimg; 0 picks StyleGAN2-ADA's ``batch·10/32``."""
    ema_rampup: float = 0.05
    """EMA half-life ramp-up as a fraction of images seen (0: off)."""
    ckpt_every_minutes: float = 1.0
    """Write a resumable checkpoint at most this often (and always at the end)."""
    ckpt_every_kimg: float = 0.0
    """Also write one every this many kimg (0: off); unlike minutes, the same on every run."""
    keep_ckpts: int = 3
    """Resumable checkpoints kept in the run directory (older ones are pruned)."""
    sample_every_kimg: float = 10.0
    """Write a grid of EMA samples every this many kimg."""
    log_every_steps: int = 20
    """Log losses (stats.jsonl, TensorBoard, progress line) every this many steps."""
    num_threads: int = 0
    """torch CPU threads; 0 leaves torch's default."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    batch_gpu: int = 0
    """Images per forward pass and process (gradient accumulation): each phase runs its
    share of ``batch`` in micro-batches of this many; 0: all at once."""
    mixed_precision: str = "off"
    """``bf16``: forward passes under autocast in bfloat16 (fp32's range, so no clamping or
    loss scaling; losses and optimizer in fp32). ``fp16``: autocast in float16 with
    StyleGAN2-ADA's remedy for its small range: every convolution's output is clamped to
    ±256 while it is float16 (no loss scaling, weights and Adam in fp32). Meant for GPUs;
    both work on CPU too."""
    compile: str = "off"
    """``torch.compile`` the generator's synthesis and the discriminator for the main and
    link phases with this mode (``default``, ``reduce-overhead``, ``max-autotune``; ``off``).
    R1 and path length need double backward, which compiled graphs do not support: those
    phases run the same modules eagerly. The first steps compile (minutes). Worth it on
    CPUs too: ``default`` made the tiny EG3D's training step 1.3× faster on 2 cores
    (docs/results.md, "Speed per step")."""
    prefetch: bool = True
    """Decode the next step's real images in a background thread while this step trains
    (same batches as without; on a GPU they are copied from page-locked memory)."""
    channels_last: bool = False
    """Keep G's and D's 4-D weights and the real images in channels-last memory format (what
    tensor cores prefer; same results)."""
    checkpoint_render: bool = False
    """EG3D: recompute the volume renderer's activations in backward, chunk by chunk, instead
    of keeping them (the largest activations of a step; costs one more renderer forward)."""
    ray_chunk: int = 0
    """EG3D: rays per renderer chunk over the batch (0: automatic)."""


@dataclass
class MetricsConfig:
    """``metrics``: the link_mse measurement (``linkgan metrics`` and during training)."""

    num: int = 256
    """Samples for link_mse."""
    seed: int = 1000
    """First seed of the fixed evaluation seeds."""
    mode: str = "resample"
    """``resample``: take the axes from another mapped w; ``perturb``: w + α·p."""
    every_kimg: float = 0.0
    """During training, measure link_mse of the EMA generator on ``train_num`` fixed seeds
    every this many kimg and log it (stats.jsonl, TensorBoard ``Link/…``); 0: off. The
    time it takes does not count against ``train.minutes``."""
    train_num: int = 32
    """Seeds for the in-training link_mse."""


@dataclass
class Config:
    """The whole configuration: one section per dataclass above."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


# ----------------------------------------------------------------------------------------
# Config <-> dict and YAML (the strict machinery is in config_io).


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config` from a (possibly partial) nested mapping; strict on keys.
    Old keys are migrated first (:func:`migrate_config_dict`)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(data).__name__}")
    cfg = _from_dict(Config, migrate_config_dict(data))
    validate_config(cfg)
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML preset (or defaults when ``path`` is None) and apply ``a.b=value`` overrides.

    A preset may start from another (``extends: base.yaml``, :func:`read_preset`). Override
    values are parsed as YAML, so ``--set 'link.links=[{name: eyes, ...}]'`` works.
    """
    data = read_preset(path) if path is not None else {}
    return config_from_dict(apply_overrides(data, overrides))


def show_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The resolved config as YAML: the text a run writes to its ``config.yaml``."""
    return yaml.safe_dump(config_to_dict(load_config(path, overrides)), sort_keys=False)
