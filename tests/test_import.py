"""NVIDIA pickle import: the fixture is built here in StyleGAN2-ADA's record layout (persistent
objects carrying source code, nested modules, plain-pickled tensors); nothing in it may run."""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from link_core.errors import CheckpointError
from link_core.interface import seeds_to_z
from link_core.train.config import load_config
from link_core.weights.safe_pickle import Record, load_nvidia_pickle
from linkgan.api import build_networks, load_generator
from linkgan.cli import main
from linkgan.nvidia_import import import_nvidia
from stylegan_link import nvidia_names as names

BUFFERS = ("w_avg", "noise_const", "resample_filter")


def _persistence_module() -> types.ModuleType:
    """A stand-in for torch_utils.persistence, only so that pickle can *name* its function."""
    mod = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called by the importer
        raise AssertionError("the importer must not call the pickle's own functions")

    _reconstruct_persistent_obj.__module__ = mod.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    return mod


class _Persistent:
    """Pickles like an NVIDIA persistent network: a record with source code and state."""

    def __init__(self, class_name: str, state: dict, source: str):
        self.meta = {
            "type": "class",
            "version": 6,
            "module_src": source,
            "class_name": class_name,
            "state": state,
        }

    def __reduce__(self):
        fn = sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj
        return fn, (self.meta,)


def _tree(
    flat: dict[str, torch.Tensor],
    class_name: str,
    source: str,
    kwargs=None,
    classes: dict[str, str] | None = None,
    attrs: dict | None = None,
    path: str = "",
) -> _Persistent:
    """Nest dotted names into module records (``_parameters`` / ``_buffers`` / ``_modules``);
    ``classes`` names the record class of a child by its dotted path, ``attrs`` adds plain
    attributes to the top record."""
    classes = classes or {}
    children: dict[str, dict] = OrderedDict()
    params, buffers = OrderedDict(), OrderedDict()
    for name, t in flat.items():
        head, _, rest = name.partition(".")
        if rest:
            children.setdefault(head, OrderedDict())[rest] = t
        elif head in BUFFERS:
            buffers[head] = t.clone()
        else:
            params[head] = torch.nn.Parameter(t.clone(), requires_grad=False)
    state = {
        "training": False,
        "_parameters": params,
        "_buffers": buffers,
        "_modules": OrderedDict(
            (
                k,
                _tree(
                    v,
                    classes.get(path + k, f"training.networks.Layer_{k}"),
                    source,
                    classes=classes,
                    path=f"{path}{k}.",
                ),
            )
            for k, v in children.items()
        ),
        "_init_kwargs": kwargs or {},
        **(attrs or {}),
    }
    return _Persistent(class_name, state, source)


class EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict`` does (NEWOBJ + SETITEMS), for the fixtures."""


EasyDict.__module__ = "dnnlib.util"


def _dump(snap: dict) -> bytes:
    """Pickle ``snap`` naming NVIDIA's globals (stand-in modules, only while dumping)."""
    stand_ins = {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": _persistence_module(),
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": types.ModuleType("dnnlib.util"),
    }
    stand_ins["dnnlib.util"].EasyDict = EasyDict
    added = [name for name in stand_ins if name not in sys.modules]
    for name in added:
        sys.modules[name] = stand_ins[name]
    try:
        return pickle.dumps(snap, protocol=2)
    finally:
        for name in added:
            del sys.modules[name]


def _nvidia_fixture(G, D, resolution: int, sentinel: Path) -> bytes:
    source = f"open({str(sentinel)!r}, 'w').write('ran')\n"  # what a naive load would execute
    g = {names.generator_name(k): v for k, v in G.state_dict().items()}
    g["synthesis.b8.resample_filter"] = torch.ones(4, 4)  # NVIDIA keeps filters as buffers
    d = {
        names.discriminator_name(k, resolution): names.convert_d(
            names.discriminator_name(k, resolution), v, to_ours=False
        )
        for k, v in D.state_dict().items()
    }
    kwargs = {"z_dim": G.z_dim, "w_dim": G.w_dim, "mapping_kwargs": {"lr_multiplier": 0.01}}
    snap = {
        "G": _tree(g, "training.networks.Generator", source, kwargs),
        "D": _tree(d, "training.networks.Discriminator", source),
        "G_ema": _tree(g, "training.networks.Generator", source, kwargs),
        "training_set_kwargs": {"resolution": resolution},
        "augment_pipe": None,
    }
    return _dump(snap)


@pytest.fixture(scope="module", params=[0, 5], ids=["uncond", "cond"])
def fixture_model(request):
    cfg = load_config(
        None, ["model.resolution=16", "data.resolution=16", f"model.c_dim={request.param}"]
    )
    torch.manual_seed(3)
    G, D = build_networks(cfg)
    for p in [*G.parameters(), *D.parameters()]:  # not the init: every tensor must travel
        p.data.add_(0.1 * torch.randn_like(p))
    return G.eval(), D.eval(), cfg


def test_import_reproduces_the_fixture_and_runs_nothing(tmp_path, fixture_model):
    G, D, cfg = fixture_model
    sentinel = tmp_path / "code_ran"
    pkl = tmp_path / "network-snapshot.pkl"
    pkl.write_bytes(_nvidia_fixture(G, D, cfg.model.resolution, sentinel))
    assert "torch_utils.persistence" not in sys.modules and "dnnlib.util" not in sys.modules

    out = tmp_path / "imported.safetensors"
    card = import_nvidia(pkl, out)
    assert card["generator"] == "G_ema" and card["discriminator"] == "imported"
    assert "kimg" not in card  # the file name carries no kimg
    assert not sentinel.exists()  # the records' source code was never compiled

    G2, cfg2 = load_generator(out)
    for key in ("resolution", "z_dim", "w_dim", "c_dim", "mapping_layers", "channel_max"):
        assert getattr(cfg2.model, key) == getattr(cfg.model, key), key
    z = seeds_to_z([0, 1], G.z_dim)
    c = torch.randn(2, G.c_dim) if G.c_dim else None
    with torch.no_grad():
        a = G.synthesis(G.mapping(z, c), c, noise_mode="const")["image"]
        b = G2.synthesis(G2.mapping(z, c), c, noise_mode="const")["image"]
    assert torch.allclose(a, b, atol=1e-5)
    # The discriminator came across too (the conditioning MLP rescaled to our lr).
    _, D2 = build_networks(cfg2)
    from link_core.weights import checkpoint as ckpt

    tensors, _ = ckpt.read_file(out, prefixes=("D",))
    ckpt.load_module(D2, ckpt.split_prefix(tensors, "D"), "D")
    img, c4 = torch.rand(4, 3, 16, 16), torch.randn(4, G.c_dim) if G.c_dim else None
    assert torch.allclose(D({"image": img}, c4), D2.eval()({"image": img}, c4), atol=1e-5)


class _Hostile:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    sentinel = tmp_path / "pwned"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"G": _Hostile(sentinel)}))
    with pytest.raises(CheckpointError, match=r"refuses to load global '(posix|os)\.system'"):
        load_nvidia_pickle(pkl)
    assert not sentinel.exists()
    # Through the CLI: one line, exit code 2, no output file.
    out = tmp_path / "x.safetensors"
    assert main(["import", "--pkl", str(pkl), "--out", str(out)]) == 2
    assert not out.exists() and not sentinel.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"not a pickle at all", "not a readable pickle"),
        (pickle.dumps({"G": 1}), "expected a dict with network records"),
        (pickle.dumps(__import__("builtins").eval), "refuses to load global 'builtins.eval'"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path, payload, message):
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        load_nvidia_pickle(pkl)


def test_mismatched_tensor_is_named(tmp_path, fixture_model):
    G, D, cfg = fixture_model
    pkl = tmp_path / "snap.pkl"
    data = _nvidia_fixture(G, D, cfg.model.resolution, tmp_path / "s")
    snap = load_nvidia_pickle_bytes(tmp_path, data)
    conv = snap["G_ema"].state["_modules"]["synthesis"].state["_modules"]["b8"]
    conv = conv.state["_modules"]["conv0"]
    conv.state["_parameters"]["weight"] = torch.zeros(1, 2, 3, 3)
    assert isinstance(snap["G_ema"], Record)
    from linkgan.nvidia_import import map_tensors

    with pytest.raises(CheckpointError, match=r"synthesis\.b8\.conv0\.weight has shape"):
        map_tensors(G, dict(snap["G_ema"].tensors()), names.generator_name, str(pkl))


def load_nvidia_pickle_bytes(tmp_path: Path, data: bytes) -> dict:
    path = tmp_path / "tmp.pkl"
    path.write_bytes(data)
    return load_nvidia_pickle(path)


# -- EG3D ---------------------------------------------------------------------------------
# A tiny tri-plane generator in NVlabs' layout: 8² rendering, a keep-size SR block then an
# upsampling one (like their 2X/4X modules), SR without noise, their third plane (zx).
EG3D_NV = [
    "model.backbone=eg3d",
    "model.c_dim=25",
    "model.resolution=16",
    "data.resolution=16",
    "model.z_dim=16",
    "model.w_dim=16",
    "model.channel_base=256",
    "model.channel_max=16",
    "model.extra={plane_resolution: 16, plane_channels: 8, decoder_hidden: 16, "
    "feature_channels: 8, render_resolution: 8, num_coarse: 6, num_fine: 6, "
    "sr_blocks: [[16, 1], [12, 2]], sr_noise: false, plane_axes: xy-xz-zx, clamp_box: false, "
    "ray_start: 2.0, ray_end: 3.4, camera_pivot: [0.0, 0.0, 0.1]}",
]
RENDERING = {
    "image_resolution": 16,
    "disparity_space_sampling": False,
    "clamp_mode": "softplus",
    "superresolution_module": "training.superresolution.SuperresolutionHybrid2X",
    "c_gen_conditioning_zero": False,
    "c_scale": 1.0,
    "superresolution_noise_mode": "none",
    "decoder_lr_mul": 1.0,
    "sr_antialias": True,
    "depth_resolution": 6,
    "depth_resolution_importance": 6,
    "ray_start": 2.0,
    "ray_end": 3.4,
    "box_warp": 1.0,
    "avg_camera_radius": 2.7,
    "avg_camera_pivot": [0.0, 0.0, 0.1],
}


@pytest.fixture(scope="module")
def eg3d_model():
    cfg = load_config(None, EG3D_NV)
    torch.manual_seed(4)
    G, D = build_networks(cfg)
    for p in [*G.parameters(), *D.parameters()]:
        p.data.add_(0.1 * torch.randn_like(p))
    return G.eval(), D.eval(), cfg


def _eg3d_fixture(G, D, sentinel: Path, rendering: dict, scale: dict | None = None) -> bytes:
    """Our tiny EG3D written as an NVlabs snapshot; ``scale`` multiplies stored tensors
    (what NVlabs stores when an lr multiplier or c_scale differs from ours)."""
    from eg3d_link import nvidia_names as eg3d_names

    source = f"open({str(sentinel)!r}, 'w').write('ran')\n"
    g = {}
    for k, v in G.state_dict().items():
        name = eg3d_names.generator_name(k)
        if name is not None:
            g[name] = v / (scale or {}).get(name, 1.0)
    for j in range(2):  # the unused SR noise NVlabs keeps, and its filter buffers
        g[f"superresolution.block{j}.conv0.noise_strength"] = torch.zeros([])
        g[f"superresolution.block{j}.conv1.noise_const"] = torch.randn(16, 16)
    g["superresolution.block1.resample_filter"] = torch.ones(4, 4)
    d = {}
    for k, v in D.state_dict().items():
        name = eg3d_names.discriminator_name(k, 16)
        if name is not None:
            d[name] = names.convert_d(name, v, to_ours=False)
    classes = {
        "superresolution": "training.superresolution.SuperresolutionHybrid2X",
        "superresolution.block0": "training.superresolution.SynthesisBlockNoUp",
        "superresolution.block1": "training.networks_stylegan2.SynthesisBlock",
    }
    kwargs = {
        "z_dim": 16,
        "c_dim": 25,
        "w_dim": 16,
        "img_resolution": 16,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2},
        "rendering_kwargs": rendering,
    }
    g_rec = _tree(
        g,
        "training.triplane.TriPlaneGenerator",
        source,
        kwargs,
        classes,
        attrs={"neural_rendering_resolution": 8, "rendering_kwargs": rendering},
    )
    snap = {
        "G": g_rec,
        "D": _tree(d, "training.dual_discriminator.DualDiscriminator", source),
        "G_ema": g_rec,
        "augment_pipe": None,
    }
    return _dump(snap)


def _render(G, c_scale: float = 1.0):
    from link_core.data.cameras import orbit_labels

    z = seeds_to_z([0, 1], G.z_dim)
    c = orbit_labels(torch.tensor([0.3, -0.5]), torch.tensor([0.1, -0.2]), G.camera)
    with torch.no_grad():
        return G.synthesis(G.mapping(z, c * c_scale), c, noise_mode="const")


def test_eg3d_import_reproduces_the_fixture_and_runs_nothing(tmp_path, eg3d_model):
    G, D, cfg = eg3d_model
    sentinel = tmp_path / "code_ran"
    pkl = tmp_path / "eg3d-snapshot.pkl"
    pkl.write_bytes(_eg3d_fixture(G, D, sentinel, RENDERING))
    out = tmp_path / "eg3d.safetensors"
    card = import_nvidia(pkl, out)
    assert not sentinel.exists()
    assert card["backbone"] == "eg3d" and "differences" in card

    G2, cfg2 = load_generator(out)
    extra = cfg2.model.extra
    assert extra["sr_blocks"] == [[16, 1], [12, 2]] and extra["plane_axes"] == "xy-xz-zx"
    assert extra["sr_noise"] is False and extra["clamp_box"] is False
    assert (extra["ray_start"], extra["ray_end"], extra["camera_pivot"]) == (2.0, 3.4, [0, 0, 0.1])
    assert (cfg2.model.resolution, extra["render_resolution"], extra["num_fine"]) == (16, 8, 6)
    assert extra["depth_mode"] == G2.depth_mode == "nvlabs"  # NVlabs' depth compositing
    G.depth_mode = "nvlabs"
    try:
        a, b = _render(G), _render(G2)
    finally:
        G.depth_mode = "far"
    for key in ("image", "image_raw", "image_depth"):
        assert a[key].shape == b[key].shape and torch.allclose(a[key], b[key], atol=1e-5), key

    _, D2 = build_networks(cfg2)
    from link_core.weights import checkpoint as ckpt

    tensors, _ = ckpt.read_file(out, prefixes=("D",))
    ckpt.load_module(D2, ckpt.split_prefix(tensors, "D"), "D")
    c4 = torch.randn(2, 25)
    outs = {"image": a["image"], "image_raw": a["image_raw"]}
    assert torch.allclose(D(outs, c4), D2.eval()(outs, c4), atol=1e-5)


def test_eg3d_import_folds_lr_and_pose_scale_into_weights(tmp_path, eg3d_model):
    """NVlabs' decoder may run at another lr multiplier and its mapping sees c·c_scale: the
    imported model must compute the same, with both folded into the stored weights."""
    G, D, _ = eg3d_model
    rendering = {**RENDERING, "decoder_lr_mul": 0.5, "c_scale": 0.25}
    scale = {f"decoder.net.{i}.{p}": 0.5 for i in (0, 2) for p in ("weight", "bias")}
    pkl = tmp_path / "snap.pkl"
    pkl.write_bytes(_eg3d_fixture(G, D, tmp_path / "s", rendering, scale))
    import_nvidia(pkl, tmp_path / "m.safetensors")
    G2, _ = load_generator(tmp_path / "m.safetensors")
    a, b = _render(G, c_scale=0.25), _render(G2)
    assert torch.allclose(a["image"], b["image"], atol=1e-5)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"disparity_space_sampling": True}, "disparity-space"),
        ({"ray_start": "auto"}, "ray_start 'auto'"),
        ({"box_warp": "wide"}, "rendering_kwargs.box_warp is 'wide'"),
    ],
)
def test_eg3d_settings_we_cannot_reproduce_are_refused(tmp_path, eg3d_model, change, message):
    G, D, _ = eg3d_model
    pkl = tmp_path / "snap.pkl"
    pkl.write_bytes(_eg3d_fixture(G, D, tmp_path / "s", {**RENDERING, **change}))
    with pytest.raises(CheckpointError, match=message):
        import_nvidia(pkl, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_nvlabs_plane_layout_reads_zx_on_the_third_plane():
    """A plane whose features are its own (u, v) grid: the third plane reads (z, y) in the
    paper's layout and (z, x) in NVlabs'."""
    from eg3d_link import sample_triplanes

    n = 64
    u = (torch.arange(n) + 0.5) / n * 2 - 1
    grid = torch.stack([u[None, :].expand(n, n), u[:, None].expand(n, n)])  # [2, H, W]: (u, v)
    planes = torch.zeros(1, 3, 2, n, n)
    planes[:, 2] = grid
    p = torch.tensor([[[0.2, -0.1, 0.3]]])  # box 1: grid coordinates 2·p
    ours = sample_triplanes(planes, p, 1.0, "xy-xz-zy")[0, 0] * 3  # mean over 3 planes
    nv = sample_triplanes(planes, p, 1.0, "xy-xz-zx")[0, 0] * 3
    assert torch.allclose(ours, torch.tensor([0.6, -0.2]), atol=1e-3)
    assert torch.allclose(nv, torch.tensor([0.6, 0.4]), atol=1e-3)


# -- numpy scalars and EasyDicts, as NVIDIA's real snapshots hold them --------------------
class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_numpy_scalars_and_easydicts_load_as_plain_data(tmp_path):
    """Their layers keep gains as numpy scalars (``scalar(dtype, bytes)``, dtype rebuilt via
    ``numpy.dtype`` + BUILD) and kwargs as EasyDicts (NEWOBJ, SETITEMS): both read as data."""
    kwargs = EasyDict(mapping_kwargs=EasyDict(num_layers=2), gain=np.float64(2**0.5))
    kwargs.extra = 1  # an instance attribute: pickled as BUILD state
    record = _Persistent("training.networks.Generator", {"_init_kwargs": kwargs}, "raise 0")
    pkl = tmp_path / "snap.pkl"
    pkl.write_bytes(_dump({"G": record, "n": np.int64(7), "f": np.float32(0.5)}))
    snap = load_nvidia_pickle(pkl)
    got = snap["G"].kwargs()
    assert got == {"mapping_kwargs": {"num_layers": 2}, "gain": 2**0.5}
    assert isinstance(got["mapping_kwargs"], dict) and type(got["gain"]) is np.float64
    assert snap["n"] == 7 and snap["f"].dtype == np.float32


def test_numpy_object_scalars_are_refused(tmp_path):
    """``scalar(dtype('O'), bytes)`` would turn file bytes into a pointer: refused."""
    scalar = np.float64(0).__reduce__()[0]  # numpy's own scalar() function
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"G": _Reduce(scalar, (np.dtype("O"), b"\0" * 8))}))
    with pytest.raises(CheckpointError, match="only numbers"):
        load_nvidia_pickle(pkl)


# -- snapshots written by NVIDIA's own code ------------------------------------------------
# tests/fixtures/nvidia/<config>: what bench/nvidia_fidelity.py --write-fixture stored from
# NVIDIA's networks (their tensors, record classes / kwargs / attributes, inputs and outputs;
# none of their code). The pickle is rebuilt here in their record layout and imported.
NV_FIXTURES = Path(__file__).parent / "fixtures" / "nvidia"
MARGIN_DB = 2.0  # below the PSNR the bench measured (float noise across machines)
CAP_DB = 80.0  # beyond: float rounding (EG3D outputs are stored in fp16, ~85 dB)


def _revive(value):
    """A records.json value as their pickle holds it (EasyDicts, numpy scalars)."""
    if isinstance(value, dict) and "__numpy__" in value:
        return np.dtype(value["__numpy__"]).type(value["value"])
    if isinstance(value, dict) and "__easydict__" in value:
        return EasyDict({k: _revive(v) for k, v in value["__easydict__"].items()})
    if isinstance(value, dict):
        return {k: _revive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive(v) for v in value]
    return value


def _fixture_record(layout: dict, tensors: dict, path: str, source: str) -> _Persistent:
    """The record at dotted ``path`` with its own tensors and its child records."""
    rec = layout["records"][path]
    prefix = f"{path}." if path else ""
    own = {n[len(prefix) :]: t for n, t in tensors.items() if n.rpartition(".")[0] == path}
    buffers = set(layout["buffers"])
    kids = [p for p in layout["records"] if p.startswith(prefix) and p != path]
    kids = [p for p in kids if "." not in p[len(prefix) :]]
    state = {
        "training": False,
        "_parameters": OrderedDict(
            (k, torch.nn.Parameter(t, requires_grad=False))
            for k, t in own.items()
            if prefix + k not in buffers
        ),
        "_buffers": OrderedDict((k, t) for k, t in own.items() if prefix + k in buffers),
        "_modules": OrderedDict(
            (p[len(prefix) :], _fixture_record(layout, tensors, p, source)) for p in kids
        ),
        **{k: _revive(v) for k, v in rec["attrs"].items()},
        "_init_kwargs": _revive(rec["init_kwargs"] or {}),
    }
    return _Persistent(rec["class_name"], state, source)


def _load_nv_fixture(name: str):
    from safetensors.torch import load_file

    folder = NV_FIXTURES / name
    layout = json.loads((folder / "records.json").read_text())
    tensors = {k: v.float() for k, v in load_file(folder / "tensors.safetensors").items()}
    for k, shape in layout["silent_noise"].items():  # noise inputs at strength 0
        tensors[k] = torch.zeros(shape)
    io = {k: v.float() for k, v in load_file(folder / "io.safetensors").items()}
    measured = json.loads((folder / "measured.json").read_text())
    return layout, tensors, io, measured


def _nv_snapshot(layout: dict, tensors: dict, sentinel: Path) -> bytes:
    source = f"open({str(sentinel)!r}, 'w').write('ran')\n"
    nets = {}
    for net in ("G_ema", "D"):
        mine = {n.partition("/")[2]: t for n, t in tensors.items() if n.startswith(net + "/")}
        nets[net] = _fixture_record(layout[net], mine, "", source)
    tsk = EasyDict(class_name="training.dataset.ImageFolderDataset", resolution=64)
    snap = {"training_set_kwargs": dict(tsk), "G": nets["G_ema"], **nets, "augment_pipe": None}
    return _dump(snap)


def _d_batch(x: torch.Tensor, n: int) -> torch.Tensor:
    """D's input batch as bench/nvidia_fidelity.py ``d_batch`` makes it (flips, negation)."""
    variants = [x, x.flip(-1), -x, x.flip(-2), -x.flip(-1), -x.flip(-2), x.flip(-1, -2)]
    return torch.cat(variants * -(-n // (len(variants) * x.shape[0])))[:n]


def _psnr(a: torch.Tensor, b: torch.Tensor, peak: float) -> float:
    mse = float((a.double() - b.double()).square().mean())
    return 200.0 if mse == 0 else 10 * math.log10(peak**2 / mse)


def _import_nv_fixture(tmp_path: Path, name: str, edit=None):
    layout, tensors, io, measured = _load_nv_fixture(name)
    if edit:
        edit(layout)
    sentinel = tmp_path / "code_ran"
    pkl = tmp_path / "network-snapshot-000042.pkl"
    pkl.write_bytes(_nv_snapshot(layout, tensors, sentinel))
    out = tmp_path / "imported.safetensors"
    card = import_nvidia(pkl, out)
    assert not sentinel.exists()  # their records' source code never ran
    return card, out, layout, io, measured


@pytest.mark.parametrize("name", ["sg2-64", "eg3d-tiny"])
def test_snapshot_of_nvidia_code_matches_their_outputs(tmp_path, name):
    card, out, layout, io, measured = _import_nv_fixture(tmp_path, name)
    spec = layout["spec"]
    assert card["kimg"] == 42
    G, cfg = load_generator(out)
    assert cfg.model.d_mapping_layers == 8 and cfg.model.mbstd_group == layout["d_group"]
    _, D = build_networks(cfg)
    from link_core.weights import checkpoint as ckpt

    tensors, _ = ckpt.read_file(out, prefixes=("D",))
    ckpt.load_module(D, ckpt.split_prefix(tensors, "D"), "D")
    z, c = io["input/z"], io["input/c"]
    n = layout["d_group"]
    with torch.no_grad():
        ws = G.mapping(z, c)
        if spec["kind"] == "eg3d":  # the importer picks NVlabs' depth compositing
            assert cfg.model.extra["depth_mode"] == G.depth_mode == "nvlabs"
        ours = {"w": ws, **G.synthesis(ws, c, noise_mode="const")}
        d_in = {k: _d_batch(io[f"ref/{k}"], n) for k in ("image", "image_raw") if f"ref/{k}" in io}
        ours["d_logits"] = D.eval()(d_in, _d_batch(c, n))
    peaks = {"image": 2.0, "image_raw": 2.0, "image_depth": 3.3 - 2.25}
    for key, target in measured.items():
        ref = io[f"ref/{key}"]
        peak = peaks.get(key, float(ref.max() - ref.min()))
        got = _psnr(ours[key], ref, peak)
        assert got >= min(target - MARGIN_DB, CAP_DB), (key, got, target)


def test_minibatch_std_group_is_read_from_the_record(tmp_path):
    """paper256/512 use group 8, EG3D 4: the importer reads D's epilogue record."""

    def group_2(layout):
        layout["D"]["records"]["b4.mbstd"]["attrs"]["group_size"] = 2

    _, out, *_ = _import_nv_fixture(tmp_path, "sg2-64", group_2)
    assert load_generator(out)[1].model.mbstd_group == 2
