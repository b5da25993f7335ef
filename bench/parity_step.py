"""Training-step speed of our trainer against NVIDIA's own code, phase by phase.

    python bench/parity_step.py --config eg3d_tiny,sg2_tiny --device cpu \\
        --nvlabs-eg3d /work/nvlabs/eg3d/eg3d --nvlabs-sg2 /work/nvlabs/sg2 \\
        [--repeats 5] [--batch B] [--threads 2] [--profile] --out bench/results/parity_step_cpu.json

Rows (``config`` × ``phase``), each ``ours_s``, ``nvlabs_s`` and ``speedup = nvlabs_s / ours_s``
(> 1: we are faster):

- ``g_fwd_bwd``: G's main phase: fakes through D, non-saturating loss, backward, Adam step
  (ours ``Trainer._g_main``; theirs ``Gmain``).
- ``d_fwd_bwd``: D's main phase plus R1 (ours ``_d_main`` + ``_d_reg``; theirs ``Dmain`` +
  ``Dreg``). Their ``Dmain`` runs G forward again for its fakes (their loss does that); ours
  reuses the fakes of G main, so this row favours us by one G forward, by design of the loop.
- ``train_step``: one full optimizer step of G and D at the config's batch, lazy
  regularizers amortized (R1 every 16; path length every 4 for StyleGAN2; EG3D's density
  regularizer every 4; link off). Each repeat times one step of each kind (all regularizers,
  G reg only, none) and weighs them ``(1·all + 3·greg + 12·plain) / 16``: the mix of a
  16-step period, without running 16 steps per repeat.

Ours is built and stepped through the project's own code (``linkgan.build.build_trainer``
with ``--set`` overrides, the built-in synthetic data, ``Trainer.train_step``). NVIDIA's
networks and loss are built as their ``train.py`` builds them and their phases run as their
``training_loop.py`` runs them (zero grad, ``accumulate_gradients``, ``nan_to_num`` on the
gradients, Adam with their lazy-regularization rescale, EMA); their real images are random
tensors (their loop reads them in DataLoader workers, outside the step). Their code is read
from the given folders at run time only (research-only licence: nothing of it is copied).

Each side runs in its own worker subprocess (both repositories have top-level packages named
``training``, ``dnnlib``, ``torch_utils``), and the parent alternates one repeat of ours with
one of theirs, so a shared machine's noise hits both alike. Median of ``--repeats`` after one
warm-up cycle; on CUDA every phase boundary synchronizes. Never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nvlabs_settings import eg3d_ffhq_rendering_kwargs

ROOT = Path(__file__).resolve().parent.parent
TAG = "@@PARITY "
"""Prefix of the protocol lines a worker prints (their code prints too; other lines go to
stderr)."""
PHASES = ("G main", "G reg", "D main", "D reg")
STEP_KINDS = (("all", 0), ("greg", 4), ("plain", 1))
"""Step kinds of one repeat, as (name, step index mod 16): R1 and the G regularizers due,
only the G regularizers (every 4) due, nothing lazy due."""
WEIGHTS = {"all": 1, "greg": 3, "plain": 12}
"""How often each kind occurs in a 16-step period (R1 every 16, G reg every 4)."""

# Published figures (docs: /work/shared/FACTS.md), printed when no NVIDIA path is given.
PUBLISHED = """\
Published / earlier-measured figures of NVIDIA's code (FACTS.md):
  NVlabs EG3D on this kind of CPU (2 threads, reference ops, median of 5):
    tiny (cbase 8192, cmax 128, map 2, render 32², 24+24, 64 px, batch 4):
      G fwd (eval) 0.95 s, G fwd+bwd 2.31 s, D fwd+R1+bwd 0.49 s
    FFHQ-512 at batch 1: G fwd (eval) 3.74 s, G fwd+bwd 9.95 s
  GPU: StyleGAN2-ADA 512² ≈ 72.5–74.9 s/kimg on one V100; StyleGAN3 docs 71.59 s/kimg
    (V100), 41.06 s/kimg (A100); EG3D ≈ 24 s/kimg on 8 V100 at rendering 64
    (NVlabs/eg3d issue 96); estimate for one H100 on EG3D FFHQ-512: 5–7 img/s at
    rendering 128, 14–18 img/s at 64."""


# -- configs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """One comparable configuration: our overrides and NVIDIA's settings."""

    kind: str  # "sg2" or "eg3d"
    res: int
    batch_cpu: int
    batch_cuda: int
    preset: str | None  # our YAML preset (configs/...), or None for the defaults
    ours: tuple[str, ...]  # our --set overrides (data, model, loss)
    nv: dict[str, Any] = field(default_factory=dict)  # NVIDIA's settings
    note: str = ""


_EG3D_TINY_OURS = (
    "model.backbone=eg3d",
    "model.c_dim=25",
    "model.resolution=64",
    "data.resolution=64",
    "data.synthetic=heads",
    "model.z_dim=512",
    "model.w_dim=512",
    "model.mapping_layers=2",
    "model.channel_base=8192",
    "model.channel_max=128",
    "model.mbstd_group=4",
    "model.d_mapping_layers=8",  # NVIDIA's D maps the camera label through 8 layers
    # Their backbone always makes 3 × 32 channels at 256²; their 2X SR is a keep-size block
    # of 128 channels and an upsampling block of 64, without noise.
    "model.extra={plane_resolution: 256, plane_channels: 32, decoder_hidden: 64, "
    "feature_channels: 32, render_resolution: 32, num_coarse: 24, num_fine: 24, "
    "sr_blocks: [[128, 1], [64, 2]], sr_noise: false, density_reg: 0.25, "
    "density_reg_interval: 4, blur_sigma: 0, swap_prob: 0.5}",
    "loss.style_mixing=0",
    "loss.pl_weight=0",
    "train.lr_d=0.002",
)
_EG3D_NV_TINY = dict(res=64, cbase=8192, cmax=128, map=2, render=32, samples=24, mbstd=4)


def _ffhq512(render: int) -> Spec:
    return Spec(
        kind="eg3d",
        res=512,
        batch_cpu=1,
        batch_cuda=32,
        preset="configs/eg3d_ffhq512.yaml",
        ours=(
            "data.synthetic=heads",
            "model.mbstd_group=4",
            "model.d_mapping_layers=8",
            f"model.extra.render_resolution={render}",
            "model.extra.render_resolution_final=0",
            "model.extra.blur_sigma=0",
            # NVIDIA's SuperresolutionHybrid8XDC: two upsampling blocks, 256 then 128
            # channels, on a 128² input, without noise.
            "model.extra.sr_blocks=[[256, 2], [128, 2]]",
            "model.extra.sr_noise=false",
        ),
        nv=dict(res=512, cbase=32768, cmax=512, map=2, render=render, samples=48, mbstd=4),
        note=f"paper FFHQ-512, render {render}², 48+48, SR 8XDC, blur off",
    )


CONFIGS: dict[str, Spec] = {
    "eg3d_tiny": Spec(
        kind="eg3d",
        res=64,
        batch_cpu=4,
        batch_cuda=4,
        preset=None,
        ours=_EG3D_TINY_OURS,
        nv=_EG3D_NV_TINY,
        note="same architecture as NVIDIA's (256² tri-planes, 2X SR at 32→64)",
    ),
    "eg3d_tiny_planes64": Spec(
        kind="eg3d",
        res=64,
        batch_cpu=4,
        batch_cuda=4,
        preset=None,
        ours=(*_EG3D_TINY_OURS, "model.extra.plane_resolution=64"),
        nv=_EG3D_NV_TINY,
        note="ours with 64² tri-planes (our option) vs NVIDIA's fixed 256²",
    ),
    "eg3d_ffhq512_r64": _ffhq512(64),
    "eg3d_ffhq512_r128": _ffhq512(128),
    "sg2_ffhq256": Spec(
        kind="sg2",
        res=256,
        batch_cpu=2,
        batch_cuda=64,
        preset="configs/stylegan2_256.yaml",
        ours=(
            "model.mbstd_group=8",
            "loss.pl_weight=2",
            "loss.style_mixing=0.9",
            "train.lr_g=0.0025",
            "train.lr_d=0.0025",
        ),
        nv=dict(res=256, cbase=16384, cmax=512, map=8, mbstd=8, gamma=1.0, ema=20, ramp=None),
        note="StyleGAN2-ADA paper256; NVIDIA fp16 in the top 4 resolutions on CUDA only",
    ),
    "sg2_tiny": Spec(
        kind="sg2",
        res=64,
        batch_cpu=4,
        batch_cuda=4,
        preset=None,
        ours=(
            "model.backbone=stylegan2",
            "model.resolution=64",
            "data.resolution=64",
            "data.synthetic=toyfaces",
            "model.z_dim=512",
            "model.w_dim=512",
            "model.mapping_layers=2",
            "model.channel_base=8192",
            "model.channel_max=128",
            "model.mbstd_group=4",
            "loss.pl_weight=2",
            "loss.style_mixing=0.9",
        ),
        nv=dict(res=64, cbase=8192, cmax=128, map=2, mbstd=4, gamma=1.0, ema=10, ramp=0.05),
        note="64², cbase 8192, cmax 128, map 2",
    ),
}


# -- shared helpers -----------------------------------------------------------------------
def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _emit(obj: dict[str, Any]) -> None:
    """One protocol line to the parent (flushed at once: the parent waits for it)."""
    sys.__stdout__.write(TAG + json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def _top_ops(prof: Any, k: int = 15) -> dict[str, Any]:
    """Top operators by self CPU time of a profiled cycle, and the host syncs seen in it
    (``aten::_local_scalar_dense`` is what ``.item()``, ``float(t)`` and ``bool(t)`` call)."""
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:k]
    counts = {e.key: e.count for e in events}
    return {
        "top_ops": [
            {
                "op": e.key,
                "self_s": round(e.self_cpu_time_total / 1e6, 4),
                "share": round(e.self_cpu_time_total / total, 3),
                "calls": e.count,
            }
            for e in ranked
        ],
        "total_self_cpu_s": round(total / 1e6, 3),
        "host_syncs_per_cycle": counts.get("aten::_local_scalar_dense", 0),
        "item_calls_per_cycle": counts.get("aten::item", 0),
        "isfinite_calls_per_cycle": counts.get("aten::isfinite", 0),
        "steps_per_cycle": len(STEP_KINDS),
    }


class PhaseClock:
    """Wall time per named phase of the current step (synchronizing on CUDA)."""

    def __init__(self, device: Any):
        self.device = device
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        _sync(self.device)
        t = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.device)
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.time(name):
                return fn(*args, **kwargs)

        return timed


class Side:
    """What a worker drives: one step of a given kind, timed per phase."""

    clock: PhaseClock

    def step(self, index: int) -> None:  # index: the step counter (decides lazy phases)
        raise NotImplementedError

    def cycle(self, base: int) -> dict[str, Any]:
        """One step of each kind (``STEP_KINDS``) at counters ``base + offset``."""
        out: dict[str, Any] = {"steps": {}, "phases": {}}
        for kind, offset in STEP_KINDS:
            self.clock.times = {}
            _sync(self.clock.device)
            t = time.perf_counter()
            self.step(base + offset)
            _sync(self.clock.device)
            out["steps"][kind] = time.perf_counter() - t
            out["phases"][kind] = dict(self.clock.times)
        return out


# -- our side -----------------------------------------------------------------------------
class Ours(Side):
    """Our Trainer, built by ``linkgan.build.build_trainer``, stepped by ``train_step``."""

    def __init__(self, spec: Spec, device: str, batch: int, threads: int, extra: list[str]):
        import torch

        sys.path.insert(0, str(ROOT))
        from link_core.train.stats import StatsLog
        from linkgan.build import build_trainer

        self.tmp = tempfile.TemporaryDirectory(prefix="parity_ours_")
        overrides = [
            *spec.ours,
            "data.path=",
            f"data.resolution={spec.res}",
            f"data.num_images={max(8, batch)}",
            "train.init=",
            "link.enabled=false",
            "link.links=[]",
            f"train.device={device}",
            f"train.batch={batch}",
            "train.kimg=1000",
            f"train.num_threads={threads if device == 'cpu' else 0}",
            "loss.r1_interval=16",
            "loss.r1_gamma=1.0",
            *extra,
        ]
        preset = str(ROOT / spec.preset) if spec.preset else None
        self.trainer = build_trainer(self.tmp.name, preset, overrides, progress=False)
        self.stats = StatsLog(Path(self.tmp.name), tensorboard=False)
        self.clock = PhaseClock(self.trainer.device)
        # The loop calls self._g_main etc.: instance attributes shadow the methods.
        for name, attr in zip(PHASES, ("_g_main", "_g_reg", "_d_main", "_d_reg"), strict=True):
            setattr(self.trainer, attr, self.clock.wrap(name, getattr(self.trainer, attr)))
        self.params = {
            "G": sum(p.numel() for p in self.trainer.G.parameters()),
            "D": sum(p.numel() for p in self.trainer.D.parameters()),
        }
        torch.set_num_threads(threads)

    def step(self, index: int) -> None:
        self.trainer.step = index
        self.trainer.train_step(self.stats)


# -- NVIDIA's side ------------------------------------------------------------------------
class Theirs(Side):
    """NVIDIA's networks, loss and phase loop (their code, imported from ``root``)."""

    def __init__(self, spec: Spec, device_name: str, batch: int, threads: int, root: Path):
        import numpy as np
        import torch

        sys.path.insert(0, str(root))
        import dnnlib
        from torch_utils import misc
        from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix

        self.np, self.torch, self.misc = np, torch, misc
        self.kind, self.spec, self.batch = spec.kind, spec, batch
        device = torch.device(device_name)
        self.device = device
        self.clock = PhaseClock(device)
        torch.set_num_threads(threads)
        if device.type == "cuda":  # what their training_loop sets
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        conv2d_gradfix.enabled = True
        grid_sample_gradfix.enabled = spec.kind == "sg2"
        torch.manual_seed(0)
        nv = spec.nv
        if spec.kind == "sg2":
            G_kwargs, D_kwargs, loss_kwargs, g_int, lr = self._sg2_kwargs(dnnlib, nv, device)
        else:
            G_kwargs, D_kwargs, loss_kwargs, g_int, lr = self._eg3d_kwargs(dnnlib, nv, batch)
        c_dim = 25 if spec.kind == "eg3d" else 0
        common = dict(c_dim=c_dim, img_resolution=nv["res"], img_channels=3)
        if spec.kind == "eg3d" and nv["res"] == 64:
            common["img_resolution"] = 128  # their 2X SR asserts 128; rebuilt below for 64
        G = dnnlib.util.construct_class_by_name(**G_kwargs, **common)
        common["img_resolution"] = nv["res"]
        D = dnnlib.util.construct_class_by_name(**D_kwargs, **common)
        if spec.kind == "eg3d" and nv["res"] == 64:
            self._sr_at_64(G)
        self.G = G.train().requires_grad_(False).to(device)
        self.D = D.train().requires_grad_(False).to(device)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.params = {
            "G": sum(p.numel() for p in self.G.parameters()),
            "D": sum(p.numel() for p in self.D.parameters()),
        }
        if spec.kind == "sg2":
            self.loss = dnnlib.util.construct_class_by_name(
                device=device, G_mapping=self.G.mapping, G_synthesis=self.G.synthesis,
                D=self.D, **loss_kwargs,
            )  # fmt: skip
        else:
            self.loss = dnnlib.util.construct_class_by_name(
                device=device, G=self.G, D=self.D, **loss_kwargs
            )
        # Lazy regularization as their loop sets it up: lr × r, betas ** r, r = I / (I + 1).
        # Betas go in as a tuple: these torch versions refuse their list.
        self.phases = []
        for name, module, interval, base_lr in (
            ("G", self.G, g_int, lr[0]),
            ("D", self.D, 16, lr[1]),
        ):
            r = interval / (interval + 1)
            opt = torch.optim.Adam(
                module.parameters(), lr=base_lr * r, betas=(0.0, 0.99**r), eps=1e-8
            )
            self.phases.append((name + "main", module, opt, 1))
            self.phases.append((name + "reg", module, opt, interval))
        self.ema_kimg = nv.get("ema", batch * 10 / 32)
        self.ema_rampup = nv.get("ramp", 0.05)
        self.cur_nimg = 0
        if spec.kind == "eg3d":
            from link_core.data.cameras import CameraSpec, frontal_labels

            self.labels = frontal_labels(64, CameraSpec(2.7, 18.837, (0.0, 0.0, 0.2)))
        else:
            self.labels = torch.zeros(64, 0)
        self.labels = self.labels.to(device)

    @staticmethod
    def _sg2_kwargs(dnnlib: Any, nv: dict, device: Any) -> tuple:
        """StyleGAN2-ADA's train.py (cfg_specs-like): fp16 in the top 4 resolutions only on
        CUDA (their SG2-ADA blocks would run fp16 on the CPU too)."""
        E = dnnlib.EasyDict
        G_kwargs = E(
            class_name="training.networks.Generator", z_dim=512, w_dim=512,
            mapping_kwargs=E(num_layers=nv["map"]), synthesis_kwargs=E(),
        )  # fmt: skip
        D_kwargs = E(
            class_name="training.networks.Discriminator", block_kwargs=E(),
            mapping_kwargs=E(), epilogue_kwargs=E(mbstd_group_size=nv["mbstd"]),
        )  # fmt: skip
        for kw in (G_kwargs.synthesis_kwargs, D_kwargs):
            kw.channel_base, kw.channel_max = nv["cbase"], nv["cmax"]
            kw.num_fp16_res = 4 if device.type == "cuda" else 0
            kw.conv_clamp = 256
        loss_kwargs = E(class_name="training.loss.StyleGAN2Loss", r1_gamma=nv["gamma"])
        return G_kwargs, D_kwargs, loss_kwargs, 4, (0.0025, 0.0025)

    @staticmethod
    def _eg3d_kwargs(dnnlib: Any, nv: dict, batch: int) -> tuple:
        """EG3D's train.py with --cfg ffhq --gen_pose_cond True (blur off, density reg 0.25
        every 4, R1 γ 1; cbase / cmax / map depth / render / samples from ``nv``)."""
        E = dnnlib.EasyDict
        sr = {
            512: "training.superresolution.SuperresolutionHybrid8XDC",
            256: "training.superresolution.SuperresolutionHybrid4X",
        }.get(nv["res"], "training.superresolution.SuperresolutionHybrid2X")
        rendering = eg3d_ffhq_rendering_kwargs(nv["res"], nv["samples"], sr)
        G_kwargs = E(
            class_name="training.triplane.TriPlaneGenerator", z_dim=512, w_dim=512,
            mapping_kwargs=E(num_layers=nv["map"]), channel_base=nv["cbase"],
            channel_max=nv["cmax"], fused_modconv_default="inference_only",
            rendering_kwargs=rendering, num_fp16_res=0, conv_clamp=None, sr_num_fp16_res=4,
            sr_kwargs=E(channel_base=nv["cbase"], channel_max=nv["cmax"],
                        fused_modconv_default="inference_only"),
        )  # fmt: skip
        D_kwargs = E(
            class_name="training.dual_discriminator.DualDiscriminator", block_kwargs=E(),
            mapping_kwargs=E(), epilogue_kwargs=E(mbstd_group_size=nv["mbstd"]),
            channel_base=nv["cbase"], channel_max=nv["cmax"], disc_c_noise=0,
            num_fp16_res=4, conv_clamp=256,
        )  # fmt: skip
        loss_kwargs = E(
            class_name="training.loss.StyleGAN2Loss", r1_gamma=1.0, style_mixing_prob=0,
            blur_init_sigma=0, blur_fade_kimg=batch * 200 / 32, gpc_reg_prob=0.5,
            gpc_reg_fade_kimg=1000, dual_discrimination=True, filter_mode="antialiased",
            neural_rendering_resolution_initial=nv["render"],
            neural_rendering_resolution_final=None, neural_rendering_resolution_fade_kimg=1000,
        )  # fmt: skip
        return G_kwargs, D_kwargs, loss_kwargs, 4, (0.0025, 0.002)

    @staticmethod
    def _sr_at_64(G: Any) -> None:
        """Their 2X SR only accepts 128 px: rebuild its two blocks (their classes) one octave
        lower, so it maps the 32² render to 64 px like ours, and copy its RGB input, which
        their keep-size block would otherwise add to in place (backward fails)."""
        from training.networks_stylegan2 import SynthesisBlock
        from training.superresolution import SynthesisBlockNoUp

        sr = G.superresolution
        kw = dict(w_dim=512, img_channels=3, use_fp16=True, conv_clamp=256)
        kw["fused_modconv_default"] = "inference_only"
        sr.block0 = SynthesisBlockNoUp(32, 128, resolution=32, is_last=False, **kw)
        sr.block1 = SynthesisBlock(128, 64, resolution=64, is_last=True, **kw)
        sr.input_resolution = 32
        forward = sr.forward
        sr.forward = lambda rgb, x, ws, **k: forward(rgb.clone(), x, ws, **k)
        G.img_resolution = 64

    def _labels(self, n: int) -> Any:
        idx = self.torch.randint(len(self.labels), (n,), device=self.device)
        return self.labels[idx]

    def step(self, index: int) -> None:
        torch, B = self.torch, self.batch
        with self.clock.time("data"):
            real = torch.rand(B, 3, self.spec.res, self.spec.res, device=self.device) * 2 - 1
            real_c = self._labels(B)
            all_z = torch.randn(len(self.phases) * B, 512, device=self.device).split(B)
            all_c = self._labels(len(self.phases) * B).split(B)
        for (name, module, opt, interval), z, c in zip(self.phases, all_z, all_c, strict=True):
            if index % interval:
                continue
            label = {"Gmain": "G main", "Greg": "G reg", "Dmain": "D main", "Dreg": "D reg"}
            with self.clock.time(label[name]):
                opt.zero_grad(set_to_none=True)
                module.requires_grad_(True)
                if self.kind == "sg2":
                    self.loss.accumulate_gradients(
                        phase=name, real_img=real, real_c=real_c, gen_z=z, gen_c=c,
                        sync=True, gain=interval,
                    )  # fmt: skip
                else:
                    self.loss.accumulate_gradients(
                        phase=name, real_img=real, real_c=real_c, gen_z=z, gen_c=c,
                        gain=interval, cur_nimg=self.cur_nimg,
                    )  # fmt: skip
                module.requires_grad_(False)
                params = [p for p in module.parameters() if p.grad is not None]
                if self.kind == "eg3d" and params:  # their EG3D loop: one flat tensor
                    flat = torch.cat([p.grad.flatten() for p in params])
                    self.misc.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
                    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
                        p.grad = g.reshape(p.shape)
                else:
                    for p in params:
                        self.misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
                opt.step()
        with self.clock.time("ema"):
            ema_nimg = self.ema_kimg * 1000
            if self.ema_rampup is not None:
                ema_nimg = min(ema_nimg, self.cur_nimg * self.ema_rampup)
            beta = 0.5 ** (B / max(ema_nimg, 1e-8))
            with torch.no_grad():
                for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                    p_ema.copy_(p.lerp(p_ema, beta))
                for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                    b_ema.copy_(b)
        self.cur_nimg += B


# -- worker -------------------------------------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    """Build one side, warm it up, then answer ``rep`` / ``profile`` / ``quit`` on stdin."""
    # Their modules and ours print; keep stdout for the protocol lines only.
    sys.stdout = sys.stderr
    import torch

    spec = CONFIGS[args.config]
    t0 = time.perf_counter()
    if args.worker == "ours":
        side: Side = Ours(spec, args.device, args.batch, args.threads, args.ours_set)
    else:
        side = Theirs(spec, args.device, args.batch, args.threads, Path(args.nvlabs_root))
    built = time.perf_counter() - t0
    base = 16
    t0 = time.perf_counter()
    side.cycle(base)  # warm-up: allocator, caches, first-call costs
    base += 16
    _emit(
        {
            "ready": True,
            "params": side.params,
            "build_s": round(built, 2),
            "warmup_s": round(time.perf_counter() - t0, 2),
            "threads": torch.get_num_threads(),
        }
    )
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "rep":
            _emit(side.cycle(base))
            base += 16
        elif cmd == "profile":
            from torch.profiler import ProfilerActivity, profile

            activities = [ProfilerActivity.CPU]
            if side.clock.device.type == "cuda":
                activities.append(ProfilerActivity.CUDA)
            with profile(activities=activities) as prof:
                cycle = side.cycle(base)
            base += 16
            _emit({**_top_ops(prof), "cycle": cycle})
        elif cmd == "quit":
            return


class Worker:
    """A worker subprocess of one side of one config."""

    def __init__(self, side: str, config: str, args: argparse.Namespace, root: Path | None):
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            side,
            "--config",
            config,
            "--device",
            args.device,
            "--batch",
            str(args.batch_for[config]),
            "--threads",
            str(args.threads),
            "--out",
            os.devnull,
        ]
        for s in args.ours_set:
            cmd += ["--ours-set", s]
        if root is not None:
            cmd += ["--nvlabs-root", str(root)]
        env = dict(os.environ)
        env.setdefault("LINKGAN_CACHE", str(Path(tempfile.gettempdir()) / "linkgan_parity_cache"))
        self.name = f"{config}/{side}"
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
        )

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG) :])
        raise RuntimeError(f"{self.name}: worker exited (code {self.proc.wait()})")

    def ask(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- parent -------------------------------------------------------------------------------
def summarize(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats: the three rows and each phase's wall time."""

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 4)

    g = [statistics.mean(c["phases"][k].get("G main", 0.0) for k, _ in STEP_KINDS) for c in cycles]
    d_main = [
        statistics.mean(c["phases"][k].get("D main", 0.0) for k, _ in STEP_KINDS) for c in cycles
    ]
    d = [dm + c["phases"]["all"].get("D reg", 0.0) for dm, c in zip(d_main, cycles, strict=True)]
    step = [sum(WEIGHTS[k] * c["steps"][k] for k in WEIGHTS) / 16 for c in cycles]
    phases = {
        f"{kind}/{name}": med([c["phases"][kind].get(name, 0.0) for c in cycles])
        for kind, _ in STEP_KINDS
        for name in sorted({n for c in cycles for n in c["phases"][kind]})
    }
    steps = {kind: med([c["steps"][kind] for c in cycles]) for kind, _ in STEP_KINDS}
    return {
        "g_fwd_bwd": med(g),
        "d_fwd_bwd": med(d),
        "train_step": med(step),
        "phases": phases,
        "steps": steps,
    }


def machine_info(threads: int) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):  # the machine is shared: say how busy it was
        info["load_avg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def run_config(config: str, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Both sides of one config, repeats interleaved; its rows and extras for the JSON."""
    spec = CONFIGS[config]
    root = args.nvlabs_eg3d if spec.kind == "eg3d" else args.nvlabs_sg2
    print(f"\n== {config} (batch {args.batch_for[config]}, {args.device}): {spec.note}", flush=True)
    workers = {"ours": Worker("ours", config, args, None)}
    try:
        if root is not None:
            workers["nvlabs"] = Worker("nvlabs", config, args, root)
        ready = {side: w.read() for side, w in workers.items()}
        for side, r in ready.items():
            print(
                f"   {side}: params G {r['params']['G']:,} D {r['params']['D']:,}, "
                f"built {r['build_s']} s, warm-up cycle {r['warmup_s']} s, "
                f"{r['threads']} threads",
                flush=True,
            )
        cycles: dict[str, list] = {side: [] for side in workers}
        for i in range(args.repeats):
            for side, w in workers.items():  # alternate: the same noise for both
                cycles[side].append(w.ask("rep"))
                steps = cycles[side][-1]["steps"]
                print(
                    f"   rep {i + 1}/{args.repeats} {side:6s} steps: "
                    + ", ".join(f"{k} {v:.3f} s" for k, v in steps.items()),
                    flush=True,
                )
        profiles = {side: w.ask("profile") for side, w in workers.items()} if args.profile else {}
    finally:
        for w in workers.values():
            w.close()
    sums = {side: summarize(c) for side, c in cycles.items()}
    rows = []
    notes = {
        "g_fwd_bwd": "G main phase: G fwd, D fwd on fakes, backward, Adam step",
        "d_fwd_bwd": "D main + R1 (D reg); NVIDIA's D main also runs G forward for its fakes, "
        "ours reuses G main's",
        "train_step": "(1 step with all lazy phases + 3 with G reg + 12 plain) / 16",
    }
    for phase in ("g_fwd_bwd", "d_fwd_bwd", "train_step"):
        ours = sums["ours"][phase]
        theirs = sums["nvlabs"][phase] if "nvlabs" in sums else None
        rows.append(
            {
                "config": config,
                "device": args.device,
                "phase": phase,
                "ours_s": ours,
                "nvlabs_s": theirs,
                "speedup": round(theirs / ours, 3) if theirs is not None and ours > 0 else None,
                "batch": args.batch_for[config],
                "repeats": args.repeats,
                "note": notes[phase],
            }
        )
    extras = {
        "note": spec.note,
        "params": {side: r["params"] for side, r in ready.items()},
        "phase_medians_s": {side: s["phases"] for side, s in sums.items()},
        "step_medians_s": {side: s["steps"] for side, s in sums.items()},
    }
    if profiles:
        extras["profile"] = profiles
    print(f"   {'phase':12s} {'ours_s':>9s} {'nvlabs_s':>9s} {'speedup':>8s}")
    for r in rows:
        sp = "–" if r["speedup"] is None else f"{r['speedup']:.2f}"
        print(f"   {r['phase']:12s} {fmt(r['ours_s']):>9s} {fmt(r['nvlabs_s']):>9s} {sp:>8s}")
    for side, s in sums.items():
        print(f"   {side} per-phase medians (step kind/phase): {s['phases']}")
    return rows, extras


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--config",
        action="append",
        required=True,
        help=f"one of {', '.join(CONFIGS)}; repeat or comma-separate",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--nvlabs-eg3d", type=Path, default=None, help="NVlabs/eg3d's eg3d/ folder")
    p.add_argument("--nvlabs-sg2", type=Path, default=None, help="NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=0, help="0: the config's batch for the device")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads on both sides")
    p.add_argument("--profile", action="store_true", help="also profile one cycle per side")
    p.add_argument(
        "--ours-set", action="append", default=[], help="extra --set override for our side"
    )
    p.add_argument("--out", type=Path, required=True)
    # internal: a worker subprocess
    p.add_argument("--worker", choices=("ours", "nvlabs"), help=argparse.SUPPRESS)
    p.add_argument("--nvlabs-root", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.config = [c.strip() for group in args.config for c in group.split(",") if c.strip()]
    unknown = [c for c in args.config if c not in CONFIGS]
    if unknown:
        p.error(f"--config: unknown {', '.join(unknown)} (known: {', '.join(CONFIGS)})")
    if args.worker:
        args.config = args.config[0]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    args.batch_for = {
        c: args.batch or (CONFIGS[c].batch_cuda if args.device == "cuda" else CONFIGS[c].batch_cpu)
        for c in args.config
    }
    result: dict[str, Any] = {
        "machine": machine_info(args.threads),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": [],
        "configs": {},
    }
    if args.nvlabs_eg3d is None and args.nvlabs_sg2 is None:
        print(PUBLISHED)
    for config in args.config:
        rows, extras = run_config(config, args)
        result["rows"] += rows
        result["configs"][config] = extras
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    with contextlib.suppress(OSError):
        result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"\n{'config':22s} {'phase':12s} {'ours_s':>9s} {'nvlabs_s':>9s} {'speedup':>8s}")
    for r in result["rows"]:
        sp = "–" if r["speedup"] is None else f"{r['speedup']:.2f}"
        print(
            f"{r['config']:22s} {r['phase']:12s} {fmt(r['ours_s']):>9s} "
            f"{fmt(r['nvlabs_s']):>9s} {sp:>8s}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
