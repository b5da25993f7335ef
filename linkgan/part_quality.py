"""Quality per part, not only overall: does each linked part still vary as much as in the
data, and does the generator still draw every kind of thing the data shows (hats)?

- :func:`part_diversity`: each link's region diversity (RGB and depth,
  :mod:`link_core.metrics.diversity`) over N seeds from the model's default (frontal) camera,
  and, on the built-in synthetic heads, the data's over N heads from the same camera
  (rendered with depth, so ``box3d`` regions find their pixels the same way).
- :func:`attribute_check`: the frequency of each attribute of the built-in synthetic sets
  (heads: hair none / cap / bun / hat / cone, nose cone / round, skin natural / fantasy;
  toy faces: two-way splits of the background, left eye and mouth draws) in generated
  images, read by a small classifier trained on items whose attributes are known, against
  the same classifier's frequencies on held-out real items
  (:mod:`link_core.metrics.attributes`). The classifier is trained once per data set and
  resolution and cached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from link_core.errors import UserError
from link_core.interface import seeds_to_z, view_cameras
from link_core.link import Link, resize_mask
from link_core.metrics import default_maps
from link_core.metrics.attributes import (
    AttributeNet,
    accuracy,
    frequencies,
    frequency_ratios,
    load_attribute_net,
    predict_attributes,
    readable_attributes,
    save_attribute_net,
    train_attribute_net,
)
from link_core.metrics.diversity import RegionMoments
from link_core.synth.meshes import HEAD_KINDS
from link_core.train.config import Config

ATTRIBUTE_ITEMS = 1_000_000
"""First synthetic item index of the classifier's own heads: far past any data set's images,
so the classifier never sees a training image (the items are the same distribution)."""
ATTRIBUTE_TRAIN, ATTRIBUTE_HELD_OUT = 4096, 1024
ATTRIBUTE_YAW_DEG, ATTRIBUTE_PITCH_DEG = 45.0, 20.0
"""Cameras of the attribute check: yaw within ±45° and pitch within ±20° of the front, where
the nose and the hair line are both in view."""
ATTRIBUTE_VERSION = 1
"""Bumped when the classifier's recipe changes (a new cache entry)."""


ATTRIBUTE_KINDS: tuple[str, ...] = (*HEAD_KINDS, "toyfaces")
"""The built-in synthetic sets whose items record their attributes (and whose data the
diversity and attribute checks can render)."""


def _attribute_kind(cfg: Config) -> str:
    """``heads``, ``heads_hd`` or ``toyfaces``: the built-in sets whose items record their
    attributes."""
    if cfg.data.path or cfg.data.synthetic not in ATTRIBUTE_KINDS:
        data = cfg.data.path or f"synthetic {cfg.data.synthetic}"
        raise UserError(
            f"attributes: need the built-in synthetic heads or toy faces (data.synthetic), "
            f"not {data}"
        )
    return cfg.data.synthetic


def _vocab(kind: str) -> dict[str, tuple[str, ...]]:
    from link_core.synth.heads import HEAD_ATTRIBUTES, HEAD_HD_ATTRIBUTES
    from link_core.synth.toyfaces import TOYFACE_ATTRIBUTES

    return {"heads": HEAD_ATTRIBUTES, "heads_hd": HEAD_HD_ATTRIBUTES}.get(kind, TOYFACE_ATTRIBUTES)


def _render(cfg: Config, indices: Sequence[int], cameras: torch.Tensor) -> dict[str, torch.Tensor]:
    from link_core.synth import render_views

    kind = cfg.data.synthetic
    return render_views(kind, cfg.data.seed, list(indices), cameras, cfg.data.resolution)


@torch.no_grad()
def part_diversity(
    G: torch.nn.Module,
    links: Sequence[Link],
    cfg: Config | None = None,
    num: int = 256,
    seed: int = 0,
    batch: int = 16,
) -> dict[str, Any]:
    """``{"model": {link: {map: diversity}}, "data": ... | None, "settings": ...}``.

    Model: seeds ``seed …`` from the default camera (EG3D: frontal), maps ``image`` in
    [0, 1] and ``depth`` (3-D). Data (``cfg`` with the built-in heads or toy faces): items
    ``0 … num-1`` of the data set (heads rendered from that camera with depth,
    :func:`_data_outputs`), masks from the same regions.
    """
    device = next(G.parameters()).device
    moments: dict[str, dict[str, RegionMoments]] = {}
    for start in range(0, num, batch):
        n = min(batch, num - start)
        c = view_cameras(G, n, device)
        ws = G.mapping(seeds_to_z(range(seed + start, seed + start + n), G.z_dim).to(device), c)
        _accumulate(moments, G.synthesis(ws, c, noise_mode="const"), c, links)
    result: dict[str, Any] = {"model": _diversities(moments), "data": None}
    kind = None if cfg is None or cfg.data.path else cfg.data.synthetic
    if kind in ATTRIBUTE_KINDS:
        data: dict[str, dict[str, RegionMoments]] = {}
        for start in range(0, num, batch):
            n = min(batch, num - start)
            c = view_cameras(G, n, "cpu")
            _accumulate(data, _data_outputs(G, cfg, kind, range(start, start + n), c), c, links)
        result["data"] = _diversities(data)
    result["settings"] = {
        "num": num,
        "seed": seed,
        "camera": "the model's default (frontal) camera",
        "measure": "per-pixel variance across samples, weighted by the mean region mask "
        "(link_core.metrics.diversity); image in [0, 1], depth in world units",
    }
    return result


def _data_outputs(
    G: torch.nn.Module, cfg: Config, kind: str, indices: range, c: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Data items as generator outputs at G's resolution: toy faces as drawn; heads rendered
    from cameras ``c`` with depth (the background's infinite depth set to the far bound,
    ``model.extra.ray_end``)."""
    from link_core.synth import draw_toyface

    if kind == "toyfaces":
        drawn = [draw_toyface(cfg.data.seed, i, cfg.data.resolution)[0] for i in indices]
        image = torch.from_numpy(np.stack(drawn)).permute(0, 3, 1, 2).float() / 127.5 - 1
        outputs = {"image": image}
    else:
        views = _render(cfg, indices, c)
        far = float(cfg.model.extra.get("ray_end", 10.0))
        depth = views["depth"].nan_to_num(posinf=far).clamp(max=far)
        outputs = {"image": views["image"].float() / 127.5 - 1, "image_depth": depth}
    size = G.img_resolution
    for name, x in outputs.items():  # the regions' pixels, as the model's
        if x.shape[-1] != size:
            mode = "area" if name == "image" else "nearest"
            outputs[name] = F.interpolate(x, size=size, mode=mode)
    return outputs


def _accumulate(
    moments: dict[str, dict[str, RegionMoments]],
    outputs: dict[str, torch.Tensor],
    c: torch.Tensor,
    links: Sequence[Link],
) -> None:
    maps = default_maps(outputs)
    for lk in links:
        mask = lk.region(outputs, c)
        for name, fn in maps.items():
            x = fn(outputs)
            m = resize_mask(mask, x.shape[-2:])
            moments.setdefault(lk.name, {}).setdefault(name, RegionMoments()).add(x.cpu(), m.cpu())


def _diversities(moments: dict[str, dict[str, RegionMoments]]) -> dict[str, dict[str, float]]:
    return {k: {m: round(v.diversity(), 6) for m, v in per.items()} for k, per in moments.items()}


def attribute_cameras(num: int, seed: int) -> torch.Tensor:
    """``[num, 25]`` camera labels within :data:`ATTRIBUTE_YAW_DEG` / ``_PITCH_DEG`` of the
    front of the synthetic heads, seeded."""
    from link_core.data.cameras import orbit_labels
    from link_core.synth import SYNTH_CAMERA

    g = torch.Generator().manual_seed(seed)
    yaw = (torch.rand(num, generator=g, dtype=torch.float64) * 2 - 1) * ATTRIBUTE_YAW_DEG
    pitch = (torch.rand(num, generator=g, dtype=torch.float64) * 2 - 1) * ATTRIBUTE_PITCH_DEG
    return orbit_labels(torch.deg2rad(yaw), torch.deg2rad(pitch), SYNTH_CAMERA).float()


def _real_items(
    cfg: Config, kind: str, start: int, num: int, seed: int, progress: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Items ``start …`` of the synthetic set (uint8; heads rendered from
    :func:`attribute_cameras` with ``seed``) and their attribute labels."""
    from tqdm.auto import tqdm

    from link_core.synth import draw_toyface
    from link_core.synth.render import item_attributes

    images, attrs = [], []
    if kind in HEAD_KINDS:
        cameras = attribute_cameras(num, seed)
        chunk = 128
        for k in tqdm(range(0, num, chunk), "render heads", disable=not progress):
            idx = range(start + k, start + min(num, k + chunk))
            images.append(_render(cfg, idx, cameras[k : k + len(idx)])["image"])
        attrs = [item_attributes(kind, cfg.data.seed, start + i) for i in range(num)]
    else:
        for i in tqdm(range(start, start + num), "draw toy faces", disable=not progress):
            record: dict[str, str] = {}
            image, _ = draw_toyface(cfg.data.seed, i, cfg.data.resolution, record)
            images.append(torch.from_numpy(image).permute(2, 0, 1)[None])
            attrs.append(record)
    labels = {
        name: torch.tensor([values.index(a[name]) for a in attrs])
        for name, values in _vocab(kind).items()
    }
    return torch.cat(images), labels


def attribute_classifier(
    cfg: Config,
    cache: Path | None = None,
    progress: bool = True,
    train: int | None = None,
    held_out: int | None = None,
) -> tuple[AttributeNet, dict[str, Any]]:
    """The attribute classifier of ``cfg``'s synthetic set at ``data.resolution``: loaded
    from the cache, or trained on ``train`` items (default :data:`ATTRIBUTE_TRAIN`) and
    checked on ``held_out`` more (:data:`ATTRIBUTE_HELD_OUT`; held-out accuracy and
    frequencies in its card)."""
    from link_core.data import cache_dir

    kind = _attribute_kind(cfg)
    vocab = _vocab(kind)
    res, seed = cfg.data.resolution, cfg.data.seed
    train = ATTRIBUTE_TRAIN if train is None else train
    held_out = ATTRIBUTE_HELD_OUT if held_out is None else held_out
    root = Path(cache) if cache is not None else cache_dir() / "attributes"
    path = root / f"{kind}_s{seed}_r{res}_n{train}_{held_out}_v{ATTRIBUTE_VERSION}.safetensors"
    loaded = load_attribute_net(path)
    if loaded is not None:
        return loaded
    images, labels = _real_items(cfg, kind, ATTRIBUTE_ITEMS, train, 1, progress)
    net = train_attribute_net(images, labels, vocab)
    start = ATTRIBUTE_ITEMS + train
    held, held_labels = _real_items(cfg, kind, start, held_out, 2, progress)
    predicted = predict_attributes(net, held)
    card = {
        "data": f"synthetic {kind}, seed {seed}, {res}^2",
        "train": f"items {ATTRIBUTE_ITEMS}..{start - 1}",
        "held_out": f"items {start}..{start + held_out - 1}",
        "cameras": (
            f"yaw within ±{ATTRIBUTE_YAW_DEG:g}°, pitch within ±{ATTRIBUTE_PITCH_DEG:g}°"
            if kind in HEAD_KINDS
            else "none (2-D)"
        ),
        "held_out_accuracy": {k: round(v, 4) for k, v in accuracy(predicted, held_labels).items()},
        "held_out_true": frequencies(held_labels, vocab),
        "held_out_predicted": frequencies(predicted, vocab),
    }
    save_attribute_net(net, path, card)
    return net, {"vocab": {k: list(v) for k, v in vocab.items()}, **card}


def attribute_check(
    G: torch.nn.Module,
    cfg: Config,
    num: int = 1024,
    seed: int = 0,
    progress: bool = True,
    cache: Path | None = None,
    classifier: tuple[int | None, int | None] = (None, None),
) -> dict[str, Any]:
    """Attribute frequencies of ``num`` generated heads (seeds ``seed …``, cameras from
    :func:`attribute_cameras`) against the classifier's on held-out real heads:
    ``{"model", "data", "ratio", "worst", "readable", "classifier", "settings"}``; ``ratio``
    is model / data per value (1 is right; ``worst`` the farthest from 1 among the
    ``readable`` attributes, those the classifier reads well above chance, or among all
    when none is)."""
    net, card = attribute_classifier(cfg, cache, progress, *classifier)
    device = next(G.parameters()).device
    heads = cfg.data.synthetic in HEAD_KINDS
    cameras = attribute_cameras(num, 3) if heads else torch.zeros(num, G.c_dim)
    images = []
    batch = 16
    from tqdm.auto import tqdm

    for start in tqdm(range(0, num, batch), "generate", disable=not progress):
        n = min(batch, num - start)
        c = cameras[start : start + n].to(device)
        z = seeds_to_z(range(seed + start, seed + start + n), G.z_dim).to(device)
        with torch.no_grad():
            img = G.synthesis(G.mapping(z, c), c, noise_mode="const")["image"].clamp(-1, 1)
        img = img.cpu()
        if img.shape[-1] != cfg.data.resolution:
            img = F.interpolate(img, size=cfg.data.resolution, mode="area")
        images.append(img)
    model = frequencies(predict_attributes(net, torch.cat(images)), net.vocab)
    data = card["held_out_predicted"]
    ratio = frequency_ratios(model, data)
    readable = readable_attributes(card["held_out_accuracy"], card["held_out_true"])
    worst = max(
        ((k, v, r) for k in readable or ratio for v, r in ratio[k].items()),
        key=lambda t: abs(math.log(max(t[2], 1e-6))),
    )
    return {
        "model": model,
        "data": data,
        "ratio": {k: {v: round(r, 4) for v, r in per.items()} for k, per in ratio.items()},
        "worst": {"attribute": worst[0], "value": worst[1], "ratio": round(worst[2], 4)},
        "readable": readable,
        "classifier": {k: card[k] for k in ("data", "train", "held_out", "held_out_accuracy")},
        "settings": {"num": num, "seed": seed, "cameras": card["cameras"]},
    }
