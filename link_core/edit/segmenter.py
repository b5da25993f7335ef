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
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from link_core.errors import ConfigError, OutputError, UserError

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
    where = getattr(dataset, "path", "the data set")
    if len(names) < 2:
        raise UserError(
            f"--data: dataset.json of '{where}' names {len(names)} parts ('parts': [...]); a "
            "segmenter needs the names of at least 2 (part 0 and another)"
        )
    _check_masks_hold_parts(dataset, names, where)
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


def _check_masks_hold_parts(dataset: Any, names: Sequence[str], where: str) -> None:
    """Up to 256 masks spread over the data set must show some part other than part 0, or
    there is nothing to learn (a UserError naming the data set)."""
    n = len(dataset)
    for i in np.unique(np.linspace(0, n - 1, num=min(n, 256)).astype(int)):
        if int(dataset[int(i)]["mask"].max()) > 0:
            return
    raise UserError(
        f"--data: the part masks of '{where}' hold only part 0 ('{names[0]}') in the "
        f"{min(n, 256)} checked: nothing to learn"
    )


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
    try:
        with warnings.catch_warnings():  # TorchScript is the format users' segmenters come in
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.script(net.eval()), str(tmp), _extra_files={META_FILE: meta})
        tmp.replace(path)
    except (OSError, RuntimeError) as e:  # torch reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path} ({str(e).splitlines()[0][:120]})") from None
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
    try:
        meta = json.loads(extra[META_FILE] or "{}")
        classes, resolution = meta.get("classes", []), meta.get("resolution", 0)
    except (ValueError, AttributeError, RecursionError):
        raise ConfigError(f"{where}: {path}: its {META_FILE} is not a JSON mapping") from None
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise ConfigError(f"{where}: {path}: 'classes' in {META_FILE} is no list of names")
    if not (isinstance(resolution, int) and 0 <= resolution <= 4096):
        raise ConfigError(f"{where}: {path}: 'resolution' in {META_FILE} is not 0..4096")
    return model.eval(), classes, resolution


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


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _num_classes(model: Any, res: int, where: str, path: Any) -> int:
    """Run a segmenter once on a grey image: its class count, or a ConfigError when it
    fails or returns anything but logits ``[1, K, H, W]`` (before training, not at step N)."""
    side = res or 64
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, side, side))
    except Exception as e:  # whatever a foreign TorchScript raises
        raise ConfigError(
            f"{where}: {path} fails on a [1, 3, {side}, {side}] image ({type(e).__name__})"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != 1:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{where}: {path} returns {shape} for a [1, 3, {side}, {side}] image, expected "
            "logits [1, K, H, W]"
        )
    return int(out.shape[1])


def build_mask_providers(specs: Mapping[str, Any]) -> dict[str, MaskFn]:
    """``link.masks`` -> named providers; every problem is a ConfigError naming the key."""
    providers: dict[str, MaskFn] = {}
    for name, spec in specs.items():
        where = f"link.masks.{name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping with 'segmenter' or 'color'")
        if "segmenter" in spec:
            path = spec["segmenter"]
            model, names, res = load_segmenter(path, f"{where}.segmenter")
            names = list(spec.get("names") or names)
            wanted = spec.get("classes")
            if not wanted or not isinstance(wanted, list):
                raise ConfigError(f"{where}.classes: name the classes that form the mask")
            num = _num_classes(model, res, f"{where}.segmenter", path)
            ids = []
            for cls in wanted:
                if isinstance(cls, int) and not isinstance(cls, bool):
                    if not 0 <= cls < num:
                        raise ConfigError(
                            f"{where}.classes: class {cls} is outside the segmenter's {num} "
                            f"classes (0..{num - 1})"
                        )
                    ids.append(cls)
                elif isinstance(cls, str) and cls in names and names.index(cls) < num:
                    ids.append(names.index(cls))
                else:
                    known = ", ".join(names) or "none stored: give numbers"
                    raise ConfigError(f"{where}.classes: unknown class {cls!r} (known: {known})")
            providers[name] = segmenter_provider(model, ids, res)
        elif "color" in spec:
            rgb = spec["color"]
            if not (isinstance(rgb, list | tuple) and len(rgb) == 3):
                raise ConfigError(f"{where}.color: expected [r, g, b] in [0, 1], got {rgb!r:.60}")
            bad = [v for v in rgb if not (_number(v) and 0 <= v <= 1)]
            if bad:
                raise ConfigError(
                    f"{where}.color: expected [r, g, b] numbers in [0, 1], got {bad[0]!r:.40}"
                )
            tol = spec.get("tolerance", 0.15)
            if not _number(tol) or tol <= 0:
                raise ConfigError(f"{where}.tolerance: expected a number > 0, got {tol!r:.40}")
            providers[name] = color_provider(rgb, float(tol))
        else:
            raise ConfigError(f"{where}: expected 'segmenter' or 'color'")
    return providers
