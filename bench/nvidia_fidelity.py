"""Fidelity of ``linkgan import`` against NVIDIA's own code (StyleGAN2-ADA and EG3D).

    python bench/nvidia_fidelity.py --nvlabs-sg2 /work/nvlabs/sg2 \\
        --nvlabs-eg3d /work/nvlabs/eg3d/eg3d --out bench/results/nvidia_fidelity.json \\
        [--configs sg2-64 eg3d-tiny] [--write-fixture tests/fixtures/nvidia]

For each config, NVIDIA's networks are built with random weights the way their ``train.py``
builds them (``dnnlib.EasyDict`` kwargs, ``dnnlib.util.construct_class_by_name``), their
zero-initialised tensors (biases, noise strengths) filled with small random values so that
every tensor matters, and saved as their training loop saves a snapshot (deep copies,
``.eval().requires_grad_(False).cpu()``, ``pickle.dump``; their ``persistence`` decorator
pickles the source code). ``linkgan.nvidia_import.import_nvidia`` converts the file without
running it, and both sides run on the same z, c and constant noise: mapping ``w``,
``image``, D logits (on the same input images) and, for EG3D, ``image_raw`` and
``image_depth``. Reported per output: max abs difference and PSNR (images in [-1, 1]: peak
2; depth: the ray range; w and logits: the reference's peak to peak), next to NVIDIA's own
floor (their fp16 path against their fp32; for EG3D also two renders of theirs, whose
sampler jitters depths with ``torch.rand``). NVIDIA's code is imported from the given
folders only for the comparison (research-only licence: nothing of it is copied, stored or
shipped). ``--write-fixture`` stores, for the small configs, their tensors, record
descriptions, inputs and outputs for ``tests/test_import.py`` (no code, no pickle).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nvlabs_settings import eg3d_ffhq_rendering_kwargs  # noqa: E402

from link_core.data.cameras import CameraSpec, orbit_labels  # noqa: E402
from link_core.weights import checkpoint as ckpt  # noqa: E402
from linkgan.build import build_networks, load_generator  # noqa: E402
from linkgan.nvidia_import import import_nvidia  # noqa: E402

THEIR_PACKAGES = ("dnnlib", "training", "torch_utils", "legacy", "camera_utils")
SNAPSHOT_KIMG = 1234  # the file name's number; the importer must report it

# StyleGAN2-ADA: ``sg2-64`` is their 'auto' layout at 64² shrunk to test size (small z, w
# and channels, so its fixture stays small), conditional so that D's 8-layer label MLP is
# exercised; ``sg2-paper256`` is their cfg_specs['paper256'] (fmaps 0.5, map 8, mbstd 8;
# their fp16 floor is not run there: their fp16 path takes ~1 min per image on a CPU).
# EG3D: ``eg3d-tiny`` is small (z 32, mapping 1, channels ≤ 16, 24 + 24 samples; their
# planes are always 256² × 96 and their SR always w_dim 512, which bounds its size);
# ``eg3d-ffhq512`` is their --cfg=ffhq with --gen_pose_cond=True. Their EG3D code runs
# fp32 on a CPU whatever num_fp16_res says (its blocks check the device), so it has no
# fp16 floor here; its floor is two renders of theirs (their sampler's jitter).
# fmt: off
CONFIGS: dict[str, dict[str, Any]] = {
    "sg2-64": dict(
        kind="sg2", res=64, c_dim=5, z_dim=32, w_dim=32, cbase=2048, cmax=32, map=2,
        mbstd=4, batch=2, fixture=True,
    ),
    "sg2-paper256": dict(
        kind="sg2", res=256, c_dim=0, z_dim=512, w_dim=512, cbase=16384, cmax=512, map=8,
        mbstd=8, batch=4, fixture=False, fp16_floor=False,
    ),
    "eg3d-tiny": dict(
        kind="eg3d", res=128, z_dim=32, cbase=1024, cmax=16, map=1, render=32, samples=24,
        batch=1, fixture=True, fill_noise=False, fp16_floor=False,
    ),
    "eg3d-ffhq512": dict(
        kind="eg3d", res=512, z_dim=512, cbase=32768, cmax=512, map=2, render=64, samples=48,
        batch=1, fixture=False, fp16_floor=False,
    ),
}
# fmt: on


# -- NVIDIA's side ------------------------------------------------------------------------
@contextlib.contextmanager
def nvlabs(root: Path) -> Iterator[Any]:
    """Their code importable from ``root`` (both repos name their packages ``training``,
    ``dnnlib``, ...: the other repo's modules are dropped first); yields ``dnnlib``."""

    def drop() -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in THEIR_PACKAGES:
                del sys.modules[name]

    drop()
    sys.path.insert(0, str(root))
    try:
        import dnnlib

        yield dnnlib
    finally:
        sys.path.remove(str(root))


def sg2_kwargs(dnnlib: Any, spec: dict) -> tuple[Any, Any, Any]:
    """G, D and augment-pipe kwargs as StyleGAN2-ADA's train.py sets them up."""
    G_kwargs = dnnlib.EasyDict(
        class_name="training.networks.Generator",
        z_dim=spec["z_dim"],
        w_dim=spec["w_dim"],
        mapping_kwargs=dnnlib.EasyDict(),
        synthesis_kwargs=dnnlib.EasyDict(),
    )
    D_kwargs = dnnlib.EasyDict(
        class_name="training.networks.Discriminator",
        block_kwargs=dnnlib.EasyDict(),
        mapping_kwargs=dnnlib.EasyDict(),
        epilogue_kwargs=dnnlib.EasyDict(),
    )
    G_kwargs.synthesis_kwargs.channel_base = D_kwargs.channel_base = spec["cbase"]
    G_kwargs.synthesis_kwargs.channel_max = D_kwargs.channel_max = spec["cmax"]
    G_kwargs.mapping_kwargs.num_layers = spec["map"]
    G_kwargs.synthesis_kwargs.num_fp16_res = D_kwargs.num_fp16_res = 4
    G_kwargs.synthesis_kwargs.conv_clamp = D_kwargs.conv_clamp = 256
    D_kwargs.epilogue_kwargs.mbstd_group_size = spec["mbstd"]
    augment_kwargs = dnnlib.EasyDict(
        class_name="training.augment.AugmentPipe",
        **dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
        **dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    )
    return G_kwargs, D_kwargs, augment_kwargs


def eg3d_kwargs(dnnlib: Any, spec: dict) -> tuple[Any, Any, Any]:
    """G, D and augment-pipe kwargs as EG3D's train.py sets them up (--cfg ffhq,
    --gen_pose_cond True, defaults elsewhere; cbase/cmax/map-depth from ``spec``)."""
    res = spec["res"]
    sr_module = {
        512: "training.superresolution.SuperresolutionHybrid8XDC",
        256: "training.superresolution.SuperresolutionHybrid4X",
        128: "training.superresolution.SuperresolutionHybrid2X",
    }[res]
    G_kwargs = dnnlib.EasyDict(class_name=None, z_dim=spec["z_dim"], w_dim=512)
    G_kwargs.mapping_kwargs = dnnlib.EasyDict()
    D_kwargs = dnnlib.EasyDict(
        class_name="training.dual_discriminator.DualDiscriminator",
        block_kwargs=dnnlib.EasyDict(),
        mapping_kwargs=dnnlib.EasyDict(),
        epilogue_kwargs=dnnlib.EasyDict(),
    )
    G_kwargs.channel_base = D_kwargs.channel_base = spec["cbase"]
    G_kwargs.channel_max = D_kwargs.channel_max = spec["cmax"]
    G_kwargs.mapping_kwargs.num_layers = spec["map"]
    D_kwargs.epilogue_kwargs.mbstd_group_size = 4
    G_kwargs.class_name = "training.triplane.TriPlaneGenerator"
    G_kwargs.fused_modconv_default = "inference_only"
    D_kwargs.disc_c_noise = 0
    rendering = eg3d_ffhq_rendering_kwargs(res, spec["samples"], sr_module)
    G_kwargs.rendering_kwargs = rendering
    G_kwargs.sr_num_fp16_res = 4
    G_kwargs.sr_kwargs = dnnlib.EasyDict(
        channel_base=spec["cbase"], channel_max=spec["cmax"], fused_modconv_default="inference_only"
    )
    G_kwargs.num_fp16_res = 0
    G_kwargs.conv_clamp = None
    D_kwargs.num_fp16_res = 4
    D_kwargs.conv_clamp = 256
    augment_kwargs = dnnlib.EasyDict(
        class_name="training.augment.AugmentPipe",
        **dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
        **dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    )
    return G_kwargs, D_kwargs, augment_kwargs


def fill_zero_tensors(module: torch.nn.Module, gen: torch.Generator, noise: bool = True) -> None:
    """Give tensors their init leaves at 0 (biases, noise strengths unless not ``noise``)
    small random values, so that a wrongly mapped bias or noise input shows in the outputs."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if not noise and name.endswith("noise_strength"):
                continue
            if p.is_floating_point() and not bool(p.any()):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def round_to_fp16(module: torch.nn.Module) -> None:
    """Make every float tensor fp16-representable (before anything runs), so that a fixture
    can store it in half the bytes and still hold exactly what produced its outputs."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.is_floating_point():
                t.copy_(t.half().float())


def build_theirs(dnnlib: Any, spec: dict) -> dict[str, Any]:
    """Their G, D, G_ema, augment pipe and training_set_kwargs, as their training loop has
    them when it writes a snapshot."""
    torch.manual_seed(0)
    make = sg2_kwargs if spec["kind"] == "sg2" else eg3d_kwargs
    G_kwargs, D_kwargs, augment_kwargs = make(dnnlib, spec)
    c_dim = spec.get("c_dim", 25)
    common = dict(c_dim=c_dim, img_resolution=spec["res"], img_channels=3)
    construct = dnnlib.util.construct_class_by_name
    G = construct(**G_kwargs, **common).train().requires_grad_(False)
    if spec["kind"] == "eg3d":  # their loop adds it; the loss sets the rendering size
        G.register_buffer("dataset_label_std", torch.ones(25))
        G.neural_rendering_resolution = spec["render"]
    D = construct(**D_kwargs, **common).train().requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    for net in (G, D):
        fill_zero_tensors(net, gen, noise=spec.get("fill_noise", True))
        if spec["fixture"]:
            round_to_fp16(net)
    G_ema = copy.deepcopy(G).eval()
    augment_pipe = construct(**augment_kwargs).train().requires_grad_(False)
    augment_pipe.p.copy_(torch.as_tensor(0.2))
    training_set_kwargs = dnnlib.EasyDict(
        class_name="training.dataset.ImageFolderDataset",
        path="dataset.zip",
        use_labels=c_dim > 0,
        max_size=1000,
        xflip=False,
        resolution=spec["res"],
        random_seed=0,
    )
    return dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe, tsk=training_set_kwargs)


def save_snapshot(nets: dict[str, Any], path: Path) -> None:
    """Pickle as their training loop does (``training_loop.py``, 'Save network snapshot')."""
    snapshot_data: dict[str, Any] = dict(training_set_kwargs=dict(nets["tsk"]))
    for name in ("G", "D", "G_ema", "augment_pipe"):
        snapshot_data[name] = copy.deepcopy(nets[name]).eval().requires_grad_(False).cpu()
    with open(path, "wb") as f:
        pickle.dump(snapshot_data, f)


# -- inputs -------------------------------------------------------------------------------
def inputs(spec: dict) -> dict[str, torch.Tensor]:
    """z ``[B, z_dim]`` and c ``[B, c_dim]`` (EG3D: orbit cameras, our label layout =
    theirs: cam2world 16 + intrinsics 9)."""
    gen = torch.Generator().manual_seed(7)
    b = spec["batch"]
    z = torch.randn(b, spec["z_dim"], generator=gen)
    if spec["kind"] == "eg3d":
        yaw, pitch = torch.linspace(-0.4, 0.4, b), torch.linspace(0.15, -0.15, b)
        c = orbit_labels(yaw, pitch, CameraSpec(2.7, 18.837, (0.0, 0.0, 0.2)))
    elif spec["c_dim"]:
        c = torch.nn.functional.one_hot(torch.arange(b) % spec["c_dim"], spec["c_dim"]).float()
    else:
        c = torch.zeros(b, 0)
    return {"z": z, "c": c}


def d_batch(x: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` distinct samples made from ``x [B, ...]`` (flips and negation, no RNG), so that
    D's minibatch-std group sees a full group: ``[n, ...]``."""
    variants = [x, x.flip(-1), -x, x.flip(-2), -x.flip(-1), -x.flip(-2), x.flip(-1, -2)]
    out = torch.cat(variants * math.ceil(n / (len(variants) * x.shape[0])))
    return out[:n]


def d_group(spec: dict) -> int:
    return spec["mbstd"] if spec["kind"] == "sg2" else 4


# -- runs ---------------------------------------------------------------------------------
@torch.no_grad()
def run_theirs(nets: dict, spec: dict, x: dict, fp32: bool, seed: int) -> dict[str, torch.Tensor]:
    """Their G_ema and D on ``x`` (noise const; ``fp32``: force_fp32 everywhere)."""
    torch.manual_seed(seed)  # EG3D's sampler draws from the global generator
    G, D = nets["G_ema"], nets["D"]
    ws = G.mapping(x["z"], x["c"])
    kw = {"force_fp32": True} if fp32 else {}
    if spec["kind"] == "sg2":
        out = {"w": ws, "image": G.synthesis(ws, noise_mode="const", **kw)}
        d_in = d_batch(out["image"], d_group(spec))
        out["d_logits"] = D(d_in, d_batch(x["c"], d_group(spec)), **kw)
        return out
    res = G.synthesis(ws, x["c"], noise_mode="const", **kw)
    out = {"w": ws, **{k: res[k] for k in ("image", "image_raw", "image_depth")}}
    n = d_group(spec)
    d_in = {"image": d_batch(res["image"], n), "image_raw": d_batch(res["image_raw"], n)}
    out["d_logits"] = D(d_in, d_batch(x["c"], n), **kw)
    return out


@torch.no_grad()
def run_ours(model: Path, spec: dict, x: dict, theirs: dict) -> dict[str, torch.Tensor]:
    """The imported model on the same z, c (noise const) and D on *their* images."""
    G, cfg = load_generator(model)
    _, D = build_networks(cfg)
    tensors, _ = ckpt.read_file(model, prefixes=("D",))
    ckpt.load_module(D, ckpt.split_prefix(tensors, "D"), "D")
    D.eval()
    c = x["c"] if spec["kind"] == "eg3d" or spec["c_dim"] else None
    ws = G.mapping(x["z"], c)
    res = G.synthesis(ws, c, noise_mode="const")
    out = {"w": ws, **{k: v for k, v in res.items() if k in theirs}}
    if spec["kind"] == "eg3d":  # depth as NVlabs composites it, and as we do by default
        for mode in ("nvlabs", "far"):
            G.depth_mode = mode
            out[f"image_depth ({mode})"] = G.synthesis(ws, c, noise_mode="const")["image_depth"]
        out["image_depth"] = out["image_depth (nvlabs)"]
    n = d_group(spec)
    d_c = d_batch(x["c"], n) if c is not None else None
    d_in = {"image": d_batch(theirs["image"], n)}
    if "image_raw" in theirs:
        d_in["image_raw"] = d_batch(theirs["image_raw"], n)
    out["d_logits"] = D(d_in, d_c)
    return out


def peak(name: str, ref: torch.Tensor, spec: dict) -> float:
    """PSNR peak: images 2 ([-1, 1]); depth the ray range; else the reference's range."""
    if name in ("image", "image_raw"):
        return 2.0
    if name == "image_depth":
        return 3.3 - 2.25
    return max(float(ref.max() - ref.min()), 1e-12)


def compare(a: torch.Tensor, b: torch.Tensor, pk: float) -> dict[str, float]:
    """Max abs difference and PSNR (dB; 200 when identical) of ``a`` against ``b``."""
    diff = (a.double() - b.double()).flatten()
    mse = float(diff.square().mean())
    psnr = 200.0 if mse == 0 else min(200.0, 10 * math.log10(pk**2 / mse))
    return {"max_abs": float(diff.abs().max()), "psnr_db": round(psnr, 2)}


def measure(
    root: Path,
    name: str,
    spec: dict,
    tmp: Path,
    fixture: Path | None,
    keep: Path | None = None,
    kimg: int = SNAPSHOT_KIMG,
) -> dict:
    """Build, snapshot, import and compare one config; returns its JSON entry. ``keep``: a
    folder (outside the repository: the pickle holds their source code) to keep the snapshot
    in, as ``keep/NAME/network-snapshot-KIMG.pkl``, for fine-tuning it end to end."""
    t0 = time.perf_counter()
    with nvlabs(root) as dnnlib:
        nets = build_theirs(dnnlib, spec)
        pkl = tmp / f"network-snapshot-{kimg:06d}.pkl"
        save_snapshot(nets, pkl)
        if keep is not None:
            (keep / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pkl, keep / name / pkl.name)
        x = inputs(spec)
        ref = run_theirs(nets, spec, x, fp32=True, seed=0)
        floors = {}
        if spec.get("fp16_floor", True):  # their fp16 path on CPU: ~1 min per 256² image
            floors["their fp16 vs fp32"] = run_theirs(nets, spec, x, fp32=False, seed=0)
        if spec["kind"] == "eg3d":
            floors["their render vs render (seed)"] = run_theirs(nets, spec, x, True, seed=1)
        if fixture is not None:
            write_fixture(fixture / name, nets, spec, x, ref)
    out = tmp / f"{name}.safetensors"
    card = import_nvidia(pkl, out, force=True)
    ours = run_ours(out, spec, x, ref)
    rows = {}
    for key, r in ref.items():
        pk = peak(key, r, spec)
        row = {"ours": compare(ours[key], r, pk)}
        for label, other in floors.items():
            row[label] = compare(other[key], r, pk)
        rows[key] = row
    for mode in ("nvlabs", "far") if spec["kind"] == "eg3d" else ():
        pk = peak("image_depth", ref["image_depth"], spec)
        rows["image_depth"][f"ours, depth_mode {mode}"] = compare(
            ours[f"image_depth ({mode})"], ref["image_depth"], pk
        )
    cfg = json.loads(json.dumps(card))
    return {
        "spec": {k: v for k, v in spec.items() if k != "fixture"},
        "params_G": sum(p.numel() for p in nets["G_ema"].parameters()),
        "card_kimg": cfg.get("kimg"),
        "differences": cfg.get("differences"),
        "outputs": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }


# -- fixture ------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON form of a record attribute: EasyDicts and numpy scalars are tagged so that the
    test can pickle them back as their snapshots hold them; None when not plain data."""
    if isinstance(value, np.generic):
        return {"__numpy__": value.dtype.str, "value": value.item()}
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple) and all(_plain(v) is not None for v in value):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        body = {str(k): _plain(v) for k, v in value.items()}
        return {"__easydict__": body} if type(value).__name__ == "EasyDict" else body
    return None


def describe(module: torch.nn.Module) -> dict[str, Any]:
    """Every submodule's class (qualified), constructor kwargs (persistent classes) and plain
    attributes, by dotted path ('' is the module), plus which tensors are buffers."""
    records = {}
    for path, m in module.named_modules():
        cls = type(m)
        if hasattr(m, "init_kwargs"):  # persistent: their record holds the bare class name
            name, kwargs = cls._orig_class_name, _plain(dict(m.init_kwargs))
        else:  # pickled by reference (torch.nn modules, their helpers)
            name, kwargs = f"{cls.__module__}.{cls.__qualname__}", None
        attrs = {}
        for k, v in vars(m).items():
            if not k.startswith("_") and k not in ("training", "init_args", "init_kwargs"):
                pv = _plain(v)
                if pv is not None or v is None:
                    attrs[k] = pv
        records[path] = {"class_name": name, "init_kwargs": kwargs, "attrs": attrs}
    buffers = [n for n, _ in module.named_buffers()]
    return {"records": records, "buffers": buffers}


def write_fixture(out: Path, nets: dict, spec: dict, x: dict, ref: dict) -> None:
    """Their tensors (fp32, NVIDIA names), record layout, inputs and reference outputs."""
    out.mkdir(parents=True, exist_ok=True)
    tensors, silent = {}, {}
    for net in ("G_ema", "D"):
        state = nets[net].state_dict()
        for n, t in state.items():
            strength = state.get(n.replace("noise_const", "noise_strength"))
            if n.endswith("noise_const") and strength is not None and not bool(strength.any()):
                silent[f"{net}/{n}"] = list(t.shape)  # multiplied by 0: not stored
            else:
                tensors[f"{net}/{n}"] = t.detach().half().contiguous().clone()  # exact
    save_file(tensors, str(out / "tensors.safetensors"))
    io = {f"input/{k}": v.float() for k, v in x.items()}
    # EG3D's outputs match to ~30-40 dB (sampling differs): fp16 (~80 dB) stores them
    # well enough in half the bytes; StyleGAN2's match to ~120 dB and stay fp32.
    low = spec["kind"] == "eg3d"
    io.update({f"ref/{k}": v.half() if low and k != "w" else v.float() for k, v in ref.items()})
    save_file({k: v.contiguous() for k, v in io.items()}, str(out / "io.safetensors"))
    layout = {net: describe(nets[net]) for net in ("G_ema", "D")}
    layout["spec"] = {k: v for k, v in spec.items() if k != "fixture"}
    layout["d_group"] = d_group(spec)
    layout["silent_noise"] = silent
    (out / "records.json").write_text(json.dumps(layout, sort_keys=True, separators=(",", ":")))


# -- main ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nvlabs-sg2", type=Path, required=True)
    ap.add_argument("--nvlabs-eg3d", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/nvidia_fidelity.json")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--write-fixture", type=Path, default=None)
    ap.add_argument(
        "--keep-snapshots",
        type=Path,
        default=None,
        help="keep NVIDIA's snapshots in this folder (outside the repository) as "
        "NAME/network-snapshot-KIMG.pkl",
    )
    ap.add_argument(
        "--snapshot-kimg",
        type=int,
        default=SNAPSHOT_KIMG,
        help="the kimg in the snapshots' file names (where their schedules stand)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            spec = CONFIGS[name]
            root = args.nvlabs_sg2 if spec["kind"] == "sg2" else args.nvlabs_eg3d
            fixture = args.write_fixture if spec["fixture"] else None
            results[name] = measure(
                root, name, spec, Path(tmp), fixture, args.keep_snapshots, args.snapshot_kimg
            )
            line = ", ".join(
                f"{k} {v['ours']['psnr_db']:.1f} dB" for k, v in results[name]["outputs"].items()
            )
            print(f"{name}: {line} ({results[name]['seconds']} s)", flush=True)
    if args.write_fixture is not None:
        for name in args.configs:
            if CONFIGS[name]["fixture"]:
                meas = {k: v["ours"]["psnr_db"] for k, v in results[name]["outputs"].items()}
                (args.write_fixture / name / "measured.json").write_text(json.dumps(meas))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"torch": torch.__version__, "device": "cpu", "configs": results}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
