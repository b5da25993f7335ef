"""Attribute frequencies: does a generator draw hats as often as its data does?

FID summarises a whole image set in one number; a fine-tune that drops a rare part (the
hats of the synthetic heads) moves it by a few points among other changes. A classifier
trained on images whose attributes are known (a synthetic set records its discrete draws)
reads the attributes of generated images, and the frequencies of each value are compared
with the same classifier's on held-out real images, so its own errors cancel to first order.

The network is small (three strided convolutions and one linear head per attribute),
trained from scratch in seconds on the CPU, and stored as safetensors plus a JSON card.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Vocab = Mapping[str, Sequence[str]]
"""Attribute name -> its values (a label is an index into them)."""


class AttributeNet(nn.Module):
    """``[B, 3, R, R]`` images in [-1, 1] -> logits per attribute ``{name: [B, K_name]}``."""

    def __init__(self, vocab: Vocab, width: int = 32):
        super().__init__()
        self.vocab = {k: tuple(v) for k, v in vocab.items()}
        self.width = int(width)

        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, 2, 1), nn.GroupNorm(4, b), nn.SiLU())

        w = self.width
        self.features = nn.Sequential(block(3, w), block(w, 2 * w), block(2 * w, 4 * w))
        self.heads = nn.ModuleDict({k: nn.Linear(8 * w, len(v)) for k, v in self.vocab.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        h = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)  # a part anywhere in the frame
        return {k: head(h) for k, head in self.heads.items()}


@torch.enable_grad()  # callers may measure under no_grad
def train_attribute_net(
    images: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    vocab: Vocab,
    *,
    epochs: int = 12,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> AttributeNet:
    """A classifier of ``images`` (uint8 ``[N, 3, R, R]``) into ``labels`` (``{name: [N]}``
    indices into ``vocab[name]``): Adam with a one-cycle rate, cross-entropy summed over
    the attributes, batches shuffled with ``seed``."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected uint8 [N, 3, R, R], got {images.dtype} {images.shape}")
    n = images.shape[0]
    if set(labels) != set(vocab) or any(len(v) != n for v in labels.values()):
        raise ValueError("labels: one [N] tensor per attribute of the vocabulary")
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        net = AttributeNet(vocab)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(n / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            x = images[idx].float() / 127.5 - 1
            logits = net(x)
            loss = sum(F.cross_entropy(logits[k], labels[k][idx]) for k in vocab)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@torch.no_grad()
def predict_attributes(
    net: AttributeNet, images: torch.Tensor, batch: int = 256
) -> dict[str, torch.Tensor]:
    """Predicted value indices ``{name: [N]}`` of images ``[N, 3, R, R]`` (uint8, or float
    in [-1, 1])."""
    out: dict[str, list[torch.Tensor]] = {k: [] for k in net.vocab}
    for start in range(0, images.shape[0], batch):
        x = images[start : start + batch]
        x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
        for k, logits in net(x).items():
            out[k].append(logits.argmax(1))
    return {k: torch.cat(v) for k, v in out.items()}


def frequencies(predicted: Mapping[str, torch.Tensor], vocab: Vocab) -> dict[str, dict[str, float]]:
    """``{name: {value: share of the samples}}`` of predicted (or true) indices."""
    result = {}
    for k, values in vocab.items():
        counts = torch.bincount(predicted[k], minlength=len(values)).double()
        total = counts.sum().clamp(min=1)
        result[k] = {v: float(c / total) for v, c in zip(values, counts, strict=True)}
    return result


def accuracy(
    predicted: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Share of correct predictions per attribute."""
    return {k: float((predicted[k] == labels[k]).double().mean()) for k in labels}


def frequency_ratios(
    model: Mapping[str, Mapping[str, float]], data: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """``model / data`` per attribute value (how often the model draws it, relative to the
    data; 1 is right, 0 is a value the model dropped). A value the data never shows: inf
    when the model draws it, else 1."""
    ratios: dict[str, dict[str, float]] = {}
    for k, per in data.items():
        ratios[k] = {}
        for v, d in per.items():
            m = model[k][v]
            ratios[k][v] = m / d if d > 0 else (math.inf if m > 0 else 1.0)
    return ratios


def readable_attributes(
    held_out_accuracy: Mapping[str, float], held_out_true: Mapping[str, Mapping[str, float]]
) -> list[str]:
    """The attributes whose classifier reads them: held-out accuracy at least halfway from
    chance (the most frequent value's share) to 1. A ratio read by a classifier near chance
    (the heads' nose at 32²: 0.56, where always answering its commoner value scores 0.60)
    says nothing about the generator, so it is not a candidate for the worst attribute."""
    readable = []
    for name, acc in held_out_accuracy.items():
        chance = max(held_out_true[name].values())
        if acc >= chance + (1.0 - chance) / 2:
            readable.append(name)
    return readable


def save_attribute_net(net: AttributeNet, path: Path, card: Mapping[str, Any]) -> None:
    """``path`` (``.safetensors``, no code) and ``path.with_suffix('.json')`` (vocab, width
    and ``card``), each written atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"vocab": {k: list(v) for k, v in net.vocab.items()}, "width": net.width, **card}
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(path)
    tmp_json = path.with_name(path.name + ".json.tmp")
    tmp_json.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    tmp_json.replace(path.with_suffix(".json"))


def load_attribute_net(path: Path) -> tuple[AttributeNet, dict[str, Any]] | None:
    """The classifier and card stored by :func:`save_attribute_net`, or None when either
    file is missing or does not match (a cache entry to rebuild)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        net = AttributeNet(meta["vocab"], int(meta["width"]))
        net.load_state_dict(load_file(str(path)))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError):
        return None
    return net.eval(), meta
