"""Semantic mask providers: the paper's instance-varying links (§3.3, "semantic regions").

A provider turns the generated outputs into a soft mask ``[B, 1, H, W]`` per sample; the
link loss calls it without gradients. Three kinds, all built from ``link.masks`` in the
config (:func:`build_mask_providers`):

- ``{segmenter: seg.pt, classes: [object]}``: a TorchScript segmentation network (logits
  ``[B, K, H, W]`` from an image in [-1, 1]); the mask is the softmax mass of the named or
  numbered classes. ``linkgan train-segmenter`` makes one from a data set's part masks
  (:func:`train_segmenter`), with its class names and resolution stored inside the file.
- ``{color: [r, g, b], tolerance: t}``: pixels within ``t`` of a colour (in [0, 1] units),
  with a soft edge of width ``t / 2``.
- (fixed ``box`` regions need no provider.)
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from link_core.errors import ConfigError, UserError

Outputs = Mapping[str, torch.Tensor]
MaskFn = Callable[[Outputs, "torch.Tensor | None"], torch.Tensor]
META_FILE = "linkgan_segmenter.json"


class SegNet(nn.Module):
    """A small fully-convolutional encoder-decoder: ``[B, 3, H, W]`` in [-1, 1] ->
    logits ``[B, K, H, W]`` (H, W divisible by 4)."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()

        def block(a: int, b: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, stride, 1), nn.GroupNorm(4, b), nn.SiLU())

        self.enc1 = block(3, width)
        self.enc2 = block(width, 2 * width, 2)
        self.enc3 = block(2 * width, 2 * width, 2)
        self.mid = block(2 * width, 2 * width)
        self.dec2 = block(4 * width, width)
        self.dec1 = block(2 * width, width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        m = self.mid(self.enc3(e2))
        d2 = self.dec2(torch.cat([F.interpolate(m, size=e2.shape[-2:]), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:]), e1], 1))
        return self.head(d1)


def train_segmenter(
    dataset: Any,
    steps: int = 500,
    batch: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[SegNet, dict[str, float]]:
    """Fit a :class:`SegNet` to a data set's part masks (cross-entropy, Adam). The data set
    must have ``has_masks``; items give ``image`` (uint8 or [-1, 1]) and ``mask`` ids.
    Returns the network (eval mode) and ``{"pixel_accuracy", "loss"}`` on up to 256 images."""
    if not getattr(dataset, "has_masks", False):
        raise UserError("--data: the data set has no part masks (masks/ folder) to learn from")
    names = list(dataset.part_names)
    gen = torch.Generator().manual_seed(seed)
    net = SegNet(len(names))
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def fetch(indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        items = [dataset[int(i)] for i in indices]
        img = torch.stack([_as_unit_range(it["image"]) for it in items])
        mask = torch.stack([it["mask"][0].long() for it in items])
        return img, mask

    loss = torch.zeros(())
    for step in range(steps):
        idx = torch.randint(len(dataset), (batch,), generator=gen)
        img, mask = fetch(idx.tolist())
        loss = F.cross_entropy(net(img), mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress:
            progress(step, float(loss.detach()))
    net.eval()
    with torch.no_grad():
        img, mask = fetch(range(min(256, len(dataset))))
        logits = net(img)
        acc = float((logits.argmax(1) == mask).float().mean())
        final = float(F.cross_entropy(logits, mask))
    return net, {"pixel_accuracy": round(acc, 4), "loss": round(final, 4)}


def _as_unit_range(image: torch.Tensor) -> torch.Tensor:
    """Data-set images (uint8 [0, 255] or float [-1, 1]) -> float [-1, 1]."""
    if image.dtype == torch.uint8:
        return image.float() / 127.5 - 1.0
    return image.float()


def save_segmenter(net: nn.Module, path: str | Path, classes: Sequence[str], resolution: int):
    """TorchScript file with the class names and the training resolution inside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"classes": list(classes), "resolution": int(resolution)})
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():  # TorchScript is the format users' segmenters come in
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net.eval()), str(tmp), _extra_files={META_FILE: meta})
    tmp.replace(path)
    return path


def load_segmenter(path: str | Path, where: str = "segmenter") -> tuple[Any, list[str], int]:
    """(TorchScript module, class names, resolution) of a segmenter file. A file without
    our metadata must come with ``classes`` in the config; resolution 0 means "as is"."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{where}: {path} does not exist")
    extra = {META_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:  # not TorchScript
        raise ConfigError(
            f"{where}: {path} is not a TorchScript model ({type(e).__name__})"
        ) from None
    meta = json.loads(extra[META_FILE] or "{}")
    return model.eval(), list(meta.get("classes", [])), int(meta.get("resolution", 0))


def segmenter_provider(
    model: Any, class_ids: Sequence[int], resolution: int = 0, map_name: str = "image"
) -> MaskFn:
    """Mask = softmax mass of ``class_ids`` on ``outputs[map_name]`` (resized to the
    segmenter's resolution first, the mask back to the image's)."""
    ids = list(class_ids)

    def provider(outputs: Outputs, c: torch.Tensor | None = None) -> torch.Tensor:
        img = outputs[map_name][:, :3].float()
        size = img.shape[-2:]
        if resolution and img.shape[-1] != resolution:
            img = F.interpolate(img, size=(resolution, resolution), mode="area")
        with torch.no_grad():
            prob = model(img.clamp(-1, 1)).softmax(1)[:, ids].sum(1, keepdim=True)
        return F.interpolate(prob, size=size, mode="bilinear", align_corners=False)

    return provider


def color_provider(rgb: Sequence[float], tolerance: float = 0.15) -> MaskFn:
    """Mask = 1 within ``tolerance`` of ``rgb`` (both in [0, 1]), fading to 0 over half of it."""
    colour = torch.tensor([float(v) for v in rgb]).view(1, 3, 1, 1)

    def provider(outputs: Outputs, c: torch.Tensor | None = None) -> torch.Tensor:
        img = (outputs["image"][:, :3].float() + 1) / 2
        dist = (img - colour.to(img)).square().sum(1, keepdim=True).sqrt()
        return ((1.5 * tolerance - dist) / (0.5 * tolerance)).clamp(0, 1)

    return provider


def build_mask_providers(specs: Mapping[str, Any]) -> dict[str, MaskFn]:
    """``link.masks`` -> named providers; every problem is a ConfigError naming the key."""
    providers: dict[str, MaskFn] = {}
    for name, spec in specs.items():
        where = f"link.masks.{name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping with 'segmenter' or 'color'")
        if "segmenter" in spec:
            model, names, res = load_segmenter(spec["segmenter"], f"{where}.segmenter")
            names = list(spec.get("names") or names)
            wanted = spec.get("classes")
            if not wanted:
                raise ConfigError(f"{where}.classes: name the classes that form the mask")
            ids = []
            for cls in wanted:
                if isinstance(cls, int):
                    ids.append(cls)
                elif cls in names:
                    ids.append(names.index(cls))
                else:
                    known = ", ".join(names) or "none stored: give numbers"
                    raise ConfigError(f"{where}.classes: unknown class {cls!r} (known: {known})")
            providers[name] = segmenter_provider(model, ids, res)
        elif "color" in spec:
            rgb = spec["color"]
            if not (isinstance(rgb, Sequence) and len(rgb) == 3):
                raise ConfigError(f"{where}.color: expected [r, g, b] in [0, 1]")
            tol = float(spec.get("tolerance", 0.15))
            if tol <= 0:
                raise ConfigError(f"{where}.tolerance: must be > 0, got {tol}")
            providers[name] = color_provider(rgb, tol)
        else:
            raise ConfigError(f"{where}: expected 'segmenter' or 'color'")
    return providers
