"""Hostile input (issue #32): every case is a real file built in tmp_path that `linkgan` must
refuse with exactly one line ``error: …`` on stderr naming what and where, exit code 2, no
traceback, nothing overwritten (watched files and folders byte-identical afterwards), nothing
half-written (no output, no temp file) and no code from the file run (marker files stay
absent).

Cases: data archives (zips with ``../``, absolute and symlink entries, a zip bomb, duplicate
names; PNGs that are empty, truncated, lie in their header or come in mixed sizes and
modes; FIFOs), labels, part masks and mask providers, configs (unknown keys, wrong types,
huge values, YAML alias bombs, ``!!python`` tags), checkpoints (pickles with payloads,
safetensors with wrong shapes, dtypes, values or metadata, other models) and paths (an
output that is a file, a folder that cannot be made, a full disk).
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY, TINY_EG3D
from safetensors import safe_open
from safetensors.torch import save_file

from link_core.synth import ToyFaces
from linkgan.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny 2-D run (2 steps), shared by every case that needs a checkpoint."""
    run = tmp_path_factory.mktemp("hostile") / "run"
    argv = ["train", "--out", str(run), "--no-progress", *_sets([*TINY, "train.kimg=0.008"])]
    assert main(argv) == 0
    return run


# ----------------------------------------------------------------------------------------
# Building hostile files.


class _Payload:
    """Unpickling this runs ``touch MARKER``: a file that must never be created."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _png(arr: np.ndarray) -> bytes:
    """RGB (or gray) uint8/uint16 -> PNG bytes."""
    img = arr[..., ::-1] if arr.ndim == 3 and arr.shape[2] == 3 else arr
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    assert ok
    return buf.tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _raw_png(w: int, h: int, ctype: int, depth: int, rows: bytes) -> bytes:
    """A PNG written by hand: its header says whatever the case needs, CRCs correct."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _faces(n: int, res: int = 16) -> list[bytes]:
    faces = ToyFaces(res, num_images=n)
    return [_png(faces[i]["image"].permute(1, 2, 0).numpy()) for i in range(n)]


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _images(n: int = 4, res: int = 16) -> dict[str, bytes]:
    return {f"00000/img{i:08d}.png": data for i, data in enumerate(_faces(n, res))}


_S_IFLNK = 0o120000


def _raw_zip(path: Path, entries: list[tuple]) -> Path:
    """A zip written by hand, so names, attributes and sizes can be anything: entries are
    ``(name, data)`` (stored) or ``(name, data, method, crc, size, mode)``, with ``data``
    already compressed for method 8 and ``size`` its inflated size as the headers claim."""
    local, central = b"", b""
    for entry in entries:
        name, data = entry[0], entry[1]
        method, crc, size, mode = (
            entry[2:] if len(entry) > 2 else (0, zlib.crc32(data), len(data), 0o100644)
        )
        raw = name.encode()
        offset = len(local)
        head = struct.pack("<HHHHHIII", 20, 0, method, 0, 0x21, crc, len(data), size)
        local += b"PK\x03\x04" + head + struct.pack("<HH", len(raw), 0) + raw + data
        central += (
            b"PK\x01\x02"
            + struct.pack("<HH", 3 << 8 | 20, 20)
            + head[2:]
            + struct.pack("<HHHHHII", len(raw), 0, 0, 0, 0, mode << 16, offset)
            + raw
        )
    n = len(entries)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n, n, len(central), len(local), 0)
    path.write_bytes(local + central + end)
    return path


def _bomb_stream(gib: int = 2) -> bytes:
    """A raw deflate stream of ~1 KiB per MiB of zeros: 2 MB that inflate to ``gib`` GiB
    (one fully flushed block repeated, so building it inflates nothing)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    co.compress(bytes(1 << 20))
    block = co.flush(zlib.Z_FULL_FLUSH)
    return block * (gib << 10) + co.flush()


def _seg_folder(root: Path, masks: Callable[[int], np.ndarray], parts=("background", "face")):
    """A data set with part masks (for train-segmenter): 4 faces and ``masks(i)``."""
    files = _images(4)
    for i in range(4):
        files[f"masks/00000/img{i:08d}.png"] = _png(masks(i))
    files["dataset.json"] = json.dumps({"labels": None, "parts": list(parts)}).encode()
    return _folder(root, files)


def _two_part_mask(i: int) -> np.ndarray:
    m = np.zeros((16, 16), np.uint8)
    m[4:12, 4:12] = 1
    return m


def _labelled(root: Path, labels) -> Path:
    files = _images(3)
    files["dataset.json"] = json.dumps({"labels": labels}).encode()
    return _folder(root, files)


def _names(n: int = 3) -> list[str]:
    return [f"00000/img{i:08d}.png" for i in range(n)]


def _weights(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors.torch import load_file

    path = run / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    return load_file(str(path)), meta


def _edited_weights(run: Path, out: Path, edit: Callable) -> Path:
    tensors, meta = _weights(run)
    edit(tensors, meta)
    save_file(tensors, str(out), metadata=meta)
    return out


def _segmenter(path: Path, net: torch.nn.Module | None = None) -> Path:
    from link_core.edit.segmenter import SegNet, save_segmenter

    return save_segmenter(net or SegNet(3, width=4), path, ["background", "face", "eyes"], 16)


class _Flat(torch.nn.Module):
    """A "segmenter" whose output is no logit map: [B, K] instead of [B, K, H, W]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _mkfifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


# ----------------------------------------------------------------------------------------
# The cases.


@dataclass
class Case:
    argv: list[str]
    names: list[str]
    """Substrings the error line must hold (what is wrong and where)."""
    keep: list[Path] = field(default_factory=list)
    """Files / folders that must be byte-identical afterwards (besides the trained run)."""
    absent: list[Path] = field(default_factory=list)
    """Outputs that must not exist afterwards (nothing half-written, no code run)."""
    subprocess_limit: int | None = None
    """Run ``python -m linkgan`` with RLIMIT_FSIZE at this many bytes (a full disk)."""
    max_seconds: float = 20.0
    max_rss_growth: int | None = None
    """Bytes the process's peak memory may grow by (a zip bomb must not be inflated)."""


def _train(t: Path, *overrides: str, config: Path | None = None) -> list[str]:
    argv = ["train", "--out", str(t / "run"), "--no-progress"]
    argv += ["--config", str(config)] if config else []
    return argv + _sets([*TINY, "train.kimg=0.008", *overrides])


def _train_data(t: Path, data: Path, *more: str) -> Case:
    return Case(_train(t, f"data.path={data}", *more), [str(data)], absent=[t / "run"])


def _with(case: Case, *names: str, **kw) -> Case:
    case.names += list(names)
    for key, value in kw.items():
        setattr(case, key, value)
    return case


def _gen(t: Path, ckpt: Path | str, *more: str) -> Case:
    out = t / "gen"
    return Case(["generate", "--ckpt", str(ckpt), "--seeds", "0", "--out", str(out), *more], [])


def _gen_weights(t: Path, weights: Path, *names: str) -> Case:
    """``generate`` from a doctored weights file: the error names the file (and ``names``),
    and no output folder is left."""
    return _with(_gen(t, weights), str(weights), *names, absent=[t / "gen"])


def _yaml(t: Path, text: str) -> Path:
    path = t / "preset.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _config_case(t: Path, text: str, *names: str, file_level: bool = True) -> Case:
    """Training from a hostile preset; errors about the file itself (YAML, size, aliases)
    name the file, errors about a value name its key."""
    preset = _yaml(t, text)
    named = [str(preset)] if file_level else []
    return Case(_train(t, config=preset), [*named, *names], absent=[t / "run"])


BILLION_LAUGHS = "\n".join(
    ["model:", "  extra:", "    a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
)
"""Ten lists of ten aliases: 10⁹ strings once expanded, 1 KB of YAML."""


def _zip_case(t: Path, hostile: tuple, *names: str) -> Case:
    entries = list(_images(3).items()) + [hostile]
    return _with(_train_data(t, _raw_zip(t / "data.zip", entries)), *names)


def _payload_pickle(t: Path) -> Path:
    path = t / "evil.pkl"
    path.write_bytes(pickle.dumps({"G": _Payload(t / "marker"), "D": 1}))
    return path


def _full_disk_generate(t: Path, run: Path) -> Case:
    out = t / "gen"
    assert main(["generate", "--ckpt", str(run), "--seeds", "0-3", "--out", str(out)]) == 0
    # Different images this time (truncation 0.5): a partial overwrite would show.
    argv = ["generate", "--ckpt", str(run), "--seeds", "0-3", "--trunc", "0.5", "--out", str(out)]
    return Case(argv, ["File too large", str(out)], keep=[out], subprocess_limit=100)


def _full_disk_metrics(t: Path, run: Path) -> Case:
    out = t / "m.json"
    out.write_text('{"link_mse": "the previous result"}\n')
    argv = ["metrics", "--ckpt", str(run), "--num", "8", "--no-progress", "--out", str(out)]
    return Case(argv, ["File too large", str(out)], keep=[out], subprocess_limit=40)


def _resume_case(t: Path, run: Path, edit: Callable, *names: str) -> Case:
    from link_core.weights import checkpoint as ckpt

    copy = t / "resumed"
    shutil.copytree(run, copy)
    (path,) = ckpt.list_checkpoints(copy)
    tensors, meta = ckpt.read_file(path)
    edit(meta)
    ckpt.atomic_save(tensors, meta, path)
    argv = ["train", "--out", str(copy), "--resume", "--no-progress", "--set", "train.kimg=0.1"]
    return Case(argv, [str(path), *names], keep=[copy])


def _other_widths(t: Path, run: Path) -> Path:
    """A weights file whose config is the run's (w_dim 16) but whose tensors come from a
    model with w_dim 32: another model's weights under this one's name."""
    from link_core.train.config import load_config
    from link_core.weights import checkpoint as ckpt
    from linkgan.build import build_networks

    _, meta = ckpt.read_file(run / "model.safetensors", prefixes=())
    other, _ = build_networks(load_config(None, [*TINY, "model.w_dim=32"]))
    return ckpt.save_inference_weights(t / "other.safetensors", other, meta["config"])


def _cases(t: Path, run: Path) -> dict[str, Callable[[], Case]]:
    ckpt_file = run / "model.safetensors"
    pixels = b"\0" + bytes(8 * 3)  # one filtered row of 8 black pixels
    return {
        # -- data archives ----------------------------------------------------------------
        "zip_dotdot_name": lambda: _zip_case(t, ("../escape.png", _faces(1)[0]), "../escape.png"),
        "zip_absolute_name": lambda: _zip_case(t, ("/etc/cron.png", _faces(1)[0]), "/etc/cron.png"),
        "zip_backslash_dotdot": lambda: _zip_case(
            t, ("..\\..\\win.png", _faces(1)[0]), "..\\..\\win.png"
        ),
        "zip_symlink_entry": lambda: _zip_case(
            t,
            ("00000/link.png", b"/etc/passwd", 0, zlib.crc32(b"/etc/passwd"), 11, _S_IFLNK | 0o777),
            "00000/link.png",
            "link",
        ),
        "zip_bomb": lambda: _with(
            _zip_case(
                t, ("00000/img00000009.png", _bomb_stream(), 8, 0, 2 << 30, 0o100644), "img00000009"
            ),
            "2147483648",
            max_seconds=10.0,
            max_rss_growth=256 << 20,
        ),
        "zip_duplicate_names": lambda: _zip_case(
            t, ("00000/img00000001.png", _faces(3)[2]), "00000/img00000001.png", "duplicate"
        ),
        "png_zero_bytes": lambda: _with(
            _train_data(t, _folder(t / "d", {**_images(3), "00000/img00000009.png": b""})),
            "img00000009.png",
            "empty",
        ),
        "png_truncated": lambda: _with(
            _train_data(
                t, _folder(t / "d", {**_images(3), "00000/img00000009.png": _faces(1)[0][:200]})
            ),
            "img00000009.png",
            "truncated",
        ),
        "png_header_claims_huge": lambda: _with(
            _train_data(
                t,
                _folder(
                    t / "d",
                    {**_images(3), "00000/img00000009.png": _raw_png(1 << 16, 1 << 16, 2, 8, b"")},
                ),
            ),
            "img00000009.png",
            "65536x65536",
        ),
        # A photo whose header says 16x16 and whose data holds 8 rows of 8 pixels (CRCs
        # right): refused before libpng sees it (which would print to stderr).
        "png_header_lies_short": lambda: Case(
            ["invert", "--ckpt", str(run), "--steps", "1", "--quiet", "--out", str(t / "inv")]
            + ["--image", str(_write(t / "photo.png", _raw_png(16, 16, 2, 8, pixels * 8)))],
            ["--image", str(t / "photo.png"), "less image data"],
            absent=[t / "inv"],
        ),
        # One flipped byte inside the image data, header and end intact: found on read.
        "png_corrupt_body": lambda: _seg_case(
            t, {"00000/img00000002.png": _flip_byte(_faces(3)[2])}, "img00000002.png", "CRC error"
        ),
        "png_invalid_mode": lambda: _with(
            _train_data(
                t,
                _folder(
                    t / "d", {**_images(3), "00000/img00000009.png": _raw_png(16, 16, 2, 4, b"")}
                ),
            ),
            "img00000009.png",
            "colour type 2",
        ),
        "mixed_sizes": lambda: _with(
            _train_data(
                t, _folder(t / "d", {**_images(3), "00000/img00000009.png": _faces(1, 32)[0]})
            ),
            "img00000009.png",
            "32x32",
        ),
        "mixed_modes_bmp_named_png": lambda: _with(
            _train_data(
                t,
                _folder(
                    t / "d",
                    {
                        **_images(2),
                        "00000/gray.png": _png(np.full((16, 16), 9, np.uint8)),
                        "00000/deep.png": _png(np.full((16, 16, 3), 999, np.uint16)),
                        "00000/rgba.png": _png(np.zeros((16, 16, 4), np.uint8)),
                        "00000/img00000009.png": cv2.imencode(
                            ".bmp", np.zeros((16, 16, 3), np.uint8)
                        )[1].tobytes(),
                    },
                ),
            ),
            "img00000009.png",
            "not a PNG or JPEG",
        ),
        "data_folder_fifo": lambda: _with(
            _train_data(t, _fifo_folder(t / "d")), "img00000009.png", "not a regular file"
        ),
        # -- labels -----------------------------------------------------------------------
        "labels_nan": lambda: _with(
            _train_data(
                t,
                _labelled(t / "d", [[n, [0.5, float("nan")]] for n in _names()]),
                "model.c_dim=2",
            ),
            "img00000000.png",
            "not finite",
        ),
        "labels_wrong_length": lambda: _with(
            _train_data(
                t,
                _labelled(t / "d", [[n, [0.5] * (2 + (n == _names()[1]))] for n in _names()]),
                "model.c_dim=2",
            ),
            "img00000001.png",
            "3 values",
        ),
        "labels_missing_entry": lambda: _with(
            _train_data(
                t, _labelled(t / "d", [[n, [0.5, 0.5]] for n in _names()[:2]]), "model.c_dim=2"
            ),
            "img00000002.png",
            "missing label",
        ),
        "labels_duplicate_entry": lambda: _with(
            _train_data(
                t,
                _labelled(
                    t / "d",
                    [[n, [0.5, 0.5]] for n in _names()] + [[_names()[1], [0.9, 0.1]]],
                ),
                "model.c_dim=2",
            ),
            "img00000001.png",
            "twice",
        ),
        "labels_nested_json_bomb": lambda: _with(
            _train_data(
                t,
                _folder(
                    t / "d",
                    {
                        **_images(2),
                        "dataset.json": b'{"labels": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
                    },
                ),
            ),
            "dataset.json",
        ),
        # -- part masks and mask providers ------------------------------------------------
        "mask_wrong_size": lambda: _seg_mask_case(
            t,
            lambda i: np.zeros((8 if i == 2 else 16, 16), np.uint8),
            "masks/00000/img00000002.png",
            "16x8",
        ),
        "mask_all_zero": lambda: _seg_mask_case(
            t, lambda i: np.zeros((16, 16), np.uint8), "part 0", "background"
        ),
        "mask_no_part_names": lambda: _seg_mask_case(
            t, _two_part_mask, "dataset.json", "parts", parts=()
        ),
        "mask_id_outside_parts": lambda: _seg_mask_case(
            t, lambda i: _two_part_mask(i) * 7, "masks/00000/img00000000.png", "id 7"
        ),
        "link_mask_class_outside_segmenter": lambda: _link_mask_case(
            t,
            {"segmenter": str(_segmenter(t / "seg.pt")), "classes": [7]},
            "link.masks.m.classes",
            "7",
        ),
        "link_mask_segmenter_not_a_logit_map": lambda: _link_mask_case(
            t,
            {"segmenter": str(_segmenter(t / "seg.pt", _Flat())), "classes": [1]},
            "link.masks.m.segmenter",
            "[1, 3]",
        ),
        "link_mask_color_not_numbers": lambda: _link_mask_case(
            t, {"color": ["red", 0, 0]}, "link.masks.m.color", "'red'"
        ),
        "link_mask_segmenter_payload": lambda: _with(
            _link_mask_case(
                t, {"segmenter": str(_torch_payload(t)), "classes": [1]}, "link.masks.m.segmenter"
            ),
            absent=[t / "run", t / "marker"],
        ),
        # -- configs ----------------------------------------------------------------------
        "config_unknown_section": lambda: _config_case(
            t, "trian: {kimg: 1}\n", "'trian'", file_level=False
        ),
        "config_unknown_nested_key": lambda: _config_case(
            t,
            "model:\n  backbone: eg3d\n  c_dim: 25\n  extra: {plane_resolutoin: 16}\n",
            "plane_resolutoin",
            file_level=False,
        ),
        "config_wrong_type": lambda: _config_case(
            t, "train: {lr_g: fast}\n", "train.lr_g", file_level=False
        ),
        "config_wrong_type_section": lambda: _config_case(
            t, "loss: [1, 2]\n", "loss", file_level=False
        ),
        "config_huge_batch": lambda: Case(
            _train(t, f"train.batch={10**12}"), ["train.batch", str(10**12)], absent=[t / "run"]
        ),
        "config_huge_resolution": lambda: Case(
            _train(t, "model.resolution=1048576", "data.resolution=1048576"),
            ["model.resolution", "1048576"],
            absent=[t / "run"],
        ),
        "config_huge_z_dim": lambda: Case(
            _train(t, f"model.z_dim={10**9}"), ["model.z_dim", str(10**9)], absent=[t / "run"]
        ),
        "config_huge_plane_resolution": lambda: Case(
            _train(
                t, *TINY_EG3D, "data.synthetic=heads", f"model.extra.plane_resolution={1 << 20}"
            ),
            ["model.extra.plane_resolution", str(1 << 20)],
            absent=[t / "run"],
        ),
        "config_nan_budget": lambda: Case(
            _train(t, "train.kimg=.nan"), ["train.kimg", "nan"], absent=[t / "run"]
        ),
        "config_nan_box": lambda: Case(
            _train(t, "link.links=[{name: a, axes: [0, 4], region: {box: [.nan, 0, 0.5, 0.5]}}]"),
            ["link.links[0]", "box"],
            absent=[t / "run"],
        ),
        "config_billion_laughs": lambda: _config_case(t, BILLION_LAUGHS, "alias"),
        "config_recursive_alias": lambda: _config_case(
            t, "model:\n  extra: &loop {self: *loop}\n", "alias"
        ),
        "config_python_object_tag": lambda: _with(
            _config_case(
                t,
                f"train: !!python/object/apply:os.system ['touch {t / 'marker'}']\n",
                "python/object",
            ),
            absent=[t / "run", t / "marker"],
        ),
        "config_set_python_tag": lambda: Case(
            _train(t, f"train.init=!!python/object/apply:os.system ['touch {t / 'marker'}']"),
            ["--set train.init"],
            absent=[t / "run", t / "marker"],
        ),
        "config_deep_nesting": lambda: _config_case(
            t, "a: " + "[" * 50_000 + "]" * 50_000 + "\n", "deep"
        ),
        "config_not_utf8": lambda: _binary_config_case(t),
        "config_too_large": lambda: _config_case(t, "# padding\n" * 300_000, "MiB"),
        # -- checkpoints ------------------------------------------------------------------
        "pickle_payload_import": lambda: Case(
            ["import", "--pkl", str(_payload_pickle(t)), "--out", str(t / "nv.safetensors")],
            [str(t / "evil.pkl"), "posix.system"],
            absent=[t / "nv.safetensors", t / "marker"],
        ),
        "pickle_payload_as_ckpt": lambda: _with(
            _gen(t, _payload_pickle(t)), str(t / "evil.pkl"), absent=[t / "gen", t / "marker"]
        ),
        "pickle_payload_as_init": lambda: Case(
            _train(t, f"train.init={_payload_pickle(t)}"),
            ["train.init", str(t / "evil.pkl")],
            absent=[t / "run", t / "marker"],
        ),
        "npy_object_payload_as_w": lambda: Case(
            ["edit", "--ckpt", str(run), "--w", str(_npy_payload(t)), "--out", str(t / "e")],
            ["--w", str(t / "w.npy")],
            absent=[t / "e", t / "marker"],
        ),
        "safetensors_wrong_shape": lambda: _gen_weights(
            t, _edited_weights(run, t / "w.safetensors", _reshape_first), "shape"
        ),
        "safetensors_wrong_dtype": lambda: _gen_weights(
            t, _edited_weights(run, t / "w.safetensors", _int_first), "int32"
        ),
        "safetensors_nan_weights": lambda: _gen_weights(
            t, _edited_weights(run, t / "w.safetensors", _nan_first), "NaN"
        ),
        "safetensors_header_too_large": lambda: _gen_weights(
            t, _write(t / "w.safetensors", struct.pack("<Q", 1 << 60) + b"{}")
        ),
        "safetensors_truncated": lambda: _gen_weights(
            t, _write(t / "w.safetensors", ckpt_file.read_bytes()[:-1000])
        ),
        "metadata_unexpected_field": lambda: _gen_weights(
            t, _edited_weights(run, t / "w.safetensors", _extra_config_key), "model.evil"
        ),
        "metadata_deep_json": lambda: _gen_weights(
            t, _edited_weights(run, t / "w.safetensors", _deep_config), "metadata"
        ),
        "resume_counters_malformed": lambda: _resume_case(
            t, run, lambda meta: meta.update(counters="lots"), "counters"
        ),
        "ckpt_2d_where_3d_needed": lambda: Case(
            ["export", "--ckpt", str(run), "--out", str(t / "meshes"), "--no-progress"],
            [str(run), "3-D"],
            absent=[t / "meshes"],
        ),
        "ckpt_other_widths": lambda: _with(
            _gen(t, _other_widths(t, run)),
            str(t / "other.safetensors"),
            "shape",
            absent=[t / "gen"],
        ),
        "ckpt_2d_as_init_of_3d": lambda: Case(
            [
                "train",
                "--out",
                str(t / "run"),
                "--no-progress",
                "--config",
                str(ROOT / "configs/quickstart_3d_scratch.yaml"),
                "--set",
                f"train.init={run}",
            ],
            ["model.backbone", "eg3d", "stylegan2"],
            absent=[t / "run"],
        ),
        "import_pkl_fifo": lambda: Case(
            ["import", "--pkl", str(_mkfifo(t / "snap.pkl")), "--out", str(t / "nv.safetensors")],
            [str(t / "snap.pkl"), "not a regular file"],
            absent=[t / "nv.safetensors"],
        ),
        # -- paths ------------------------------------------------------------------------
        "out_is_a_file": lambda: _with(
            _gen(t, run), str(t / "gen"), "not a folder", keep=[_write(t / "gen", b"precious")]
        ),
        # Tests run as root, whom chmod does not stop: a folder that cannot be made is one
        # under a regular file, which fails for root as for anyone.
        "out_under_a_file": lambda: Case(
            ["edit", "--ckpt", str(run), "--out", str(t / "f" / "edits"), "--link", "0"],
            [str(t / "f")],
            keep=[_write(t / "f", b"precious")],
        ),
        "metrics_out_is_a_folder": lambda: Case(
            ["metrics", "--ckpt", str(run), "--num", "8", "--no-progress", "--out", str(t / "m")],
            [str(t / "m"), "folder"],
            keep=[_folder(t / "m", {"keep.txt": b"precious"})],
        ),
        "train_out_is_a_file": lambda: Case(
            _train(t), [str(t / "run"), "not a folder"], keep=[_write(t / "run", b"precious")]
        ),
        "segmenter_out_under_a_file": lambda: Case(
            ["train-segmenter", "--data", str(_seg_folder(t / "d", _two_part_mask))]
            + ["--out", str(t / "f" / "seg.pt"), "--steps", "2", "--quiet"],
            [str(t / "f" / "seg.pt"), str(t / "f")],
            keep=[_write(t / "f", b"precious")],
        ),
        "import_out_is_a_folder": lambda: Case(
            ["import", "--pkl", str(_payload_pickle(t)), "--out", str(t / "nv.safetensors")],
            [str(t / "nv.safetensors"), "folder"],
            keep=[_folder(t / "nv.safetensors", {"keep.txt": b"precious"})],
            absent=[t / "marker"],
        ),
        "full_disk_generate": lambda: _full_disk_generate(t, run),
        "full_disk_metrics_json": lambda: _full_disk_metrics(t, run),
    }


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _fifo_folder(root: Path) -> Path:
    _folder(root, _images(2))
    _mkfifo(root / "00000" / "img00000009.png")  # reading it would block forever
    return root


def _binary_config_case(t: Path) -> Case:
    preset = t / "preset.yaml"
    preset.write_bytes(b"train: \xff\xfe\x00 kimg\n")
    return Case(_train(t, config=preset), [str(preset), "UTF-8"], absent=[t / "run"])


def _npy_payload(t: Path) -> Path:
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(t / "marker")
    np.save(t / "w.npy", arr, allow_pickle=True)
    return t / "w.npy"


def _torch_payload(t: Path) -> Path:
    torch.save({"model": _Payload(t / "marker")}, t / "seg.pt")
    return t / "seg.pt"


def _first_weight(tensors) -> str:
    return sorted(k for k in tensors if k.endswith("weight"))[0]


def _reshape_first(tensors, meta) -> None:
    k = _first_weight(tensors)
    tensors[k] = tensors[k].flatten()[1:].clone()


def _int_first(tensors, meta) -> None:
    k = _first_weight(tensors)
    tensors[k] = tensors[k].to(torch.int32)


def _nan_first(tensors, meta) -> None:
    k = _first_weight(tensors)
    tensors[k] = tensors[k].clone()
    tensors[k].view(-1)[0] = float("nan")


def _extra_config_key(tensors, meta) -> None:
    config = json.loads(meta["config"])
    config["model"]["evil"] = "__import__('os').system('true')"
    meta["config"] = json.dumps(config)


def _deep_config(tensors, meta) -> None:
    meta["config"] = "[" * 100_000 + "]" * 100_000


def _flip_byte(png: bytes) -> bytes:
    i = png.index(b"IDAT") + 4 + 10
    return png[:i] + bytes([png[i] ^ 0xFF]) + png[i + 1 :]


def _seg_case(t: Path, replace: dict[str, bytes], *names: str) -> Case:
    data = _seg_folder(t / "d", _two_part_mask)
    _folder(data, replace)
    out = t / "seg.pt"
    argv = ["train-segmenter", "--data", str(data), "--out", str(out), "--steps", "2", "--quiet"]
    return Case(argv, [str(data), *names], absent=[out])


def _seg_mask_case(t: Path, masks, *names: str, parts=("background", "face")) -> Case:
    data = _seg_folder(t / "d", masks, parts)
    out = t / "seg_out.pt"
    argv = ["train-segmenter", "--data", str(data), "--out", str(out), "--steps", "2", "--quiet"]
    return Case(argv, [str(data), *names], absent=[out])


def _link_mask_case(t: Path, spec: dict, *names: str) -> Case:
    link = "link.links=[{name: a, axes: [0, 4], region: {mask: m}}]"
    return Case(
        _train(t, link, f"link.masks={json.dumps({'m': spec})}"), list(names), absent=[t / "run"]
    )


CASE_NAMES = sorted(_cases(Path("/nonexistent"), Path("/nonexistent")))


# ----------------------------------------------------------------------------------------
# The check every case goes through.


def _snapshot(paths: list[Path]) -> dict[str, bytes]:
    out = {}
    for root in paths:
        if root.is_file():
            out[str(root)] = root.read_bytes()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                out[str(p)] = p.read_bytes() if p.is_file() else b"<dir>"
        else:
            out[str(root)] = b"<missing>"
    return out


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("the command hung")


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _run_limited(argv: list[str], limit: int) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "linkgan", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size(limit),
    )
    return result.returncode, result.stderr


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_input_is_one_error_line_and_exit_2(name, tmp_path, trained, capfd):
    t = tmp_path / "case"
    t.mkdir()
    case = _cases(t, trained)[name]()
    watched = [trained, *case.keep]
    before = _snapshot(watched)
    capfd.readouterr()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.monotonic()
    if case.subprocess_limit is not None:
        rc, err = _run_limited(case.argv, case.subprocess_limit)
    else:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(60)  # a hang (a FIFO read, an inflating bomb) fails instead of stalling
        try:
            rc = main(case.argv)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        err = capfd.readouterr().err
    seconds = time.monotonic() - start
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    for text in case.names:
        assert text in lines[0], (text, lines[0])
    assert seconds < case.max_seconds, f"took {seconds:.1f} s"
    if case.max_rss_growth is not None:
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss
        assert grown < case.max_rss_growth, f"peak memory grew by {grown >> 20} MiB"
    assert _snapshot(watched) == before, "a watched file or folder changed"
    for path in case.absent:
        assert not path.exists(), f"{path} exists"
    assert not _temps(t), _temps(t)


def test_there_are_at_least_40_cases():
    assert len(CASE_NAMES) >= 40
