"""NVIDIA pickle import: the fixture is built here in StyleGAN2-ADA's record layout (persistent
objects carrying source code, nested modules, plain-pickled tensors); nothing in it may run."""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from link_core.config import load_config
from link_core.errors import CheckpointError
from link_core.interface import seeds_to_z
from link_core.safe_pickle import Record, load_nvidia_pickle
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


def _tree(flat: dict[str, torch.Tensor], class_name: str, source: str, kwargs=None) -> _Persistent:
    """Nest dotted names into module records (``_parameters`` / ``_buffers`` / ``_modules``)."""
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
            (k, _tree(v, f"training.networks.Layer_{k}", source)) for k, v in children.items()
        ),
        "_init_kwargs": kwargs or {},
    }
    return _Persistent(class_name, state, source)


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
    sys.modules.setdefault("torch_utils", types.ModuleType("torch_utils"))
    sys.modules["torch_utils.persistence"] = _persistence_module()
    try:
        return pickle.dumps(snap, protocol=2)
    finally:
        del sys.modules["torch_utils.persistence"]


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
    assert "torch_utils.persistence" not in sys.modules

    out = tmp_path / "imported.safetensors"
    card = import_nvidia(pkl, out)
    assert card["generator"] == "G_ema" and card["discriminator"] == "imported"
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
    from link_core import checkpoint as ckpt

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
