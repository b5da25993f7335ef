"""LPIPS (Zhang et al. 2018) on VGG16 features, from weight files the user points to.

Nothing is downloaded: ``load_lpips(vgg, lin)`` reads a VGG16 ``features`` state dict
(torchvision's key names ``features.{i}.weight|bias``, or the same without the prefix) and,
optionally, LPIPS's learned per-channel weights (``lin{k}.model.1.weight`` [1, C, 1, 1], as
the ``lpips`` package's ``vgg.pth`` stores them). Both from safetensors, or from a torch file
read with ``weights_only=True`` (tensors only; no code in the file can run). Without the
learned weights every channel counts alike (LPIPS's "baseline" variant).

Distance (LPIPS eq. 1): images in [-1, 1] are shifted/scaled like ImageNet inputs, run
through VGG16 to relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; each tap is unit-normalized
over channels, the squared difference weighted per channel, averaged over space, and the
five taps summed. ``lpips(a, b) -> [B]``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from link_core.errors import UserError

# VGG16's convolution widths, 'M' = 2x2 max pool; LPIPS reads the ReLU after the last conv
# of each of the five stages.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
TAP_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS's input normalization for [-1, 1] images (ImageNet statistics in that range).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """``forward(a, b)`` with images ``[B, 3, H, W]`` in [-1, 1] (H, W >= 16) -> ``[B]``."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self.taps: list[int] = []  # indices (in ``features``) of the ReLUs LPIPS reads
        in_ch = 3
        for i, v in enumerate(VGG16_LAYOUT):
            if v == "M":
                self.taps.append(len(layers) - 1)
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
            if i == len(VGG16_LAYOUT) - 1:
                self.taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.lins = nn.ParameterList(
            [nn.Parameter(torch.full((1, c, 1, 1), 1.0 / c)) for c in TAP_CHANNELS]
        )
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10))
            if len(out) == len(self.taps):
                break
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if min(a.shape[-2:]) < 16:
            a = F.interpolate(a, size=(16, 16), mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=(16, 16), mode="bilinear", align_corners=False)
        total = a.new_zeros(a.shape[0])
        for fa, fb, lin in zip(self._taps(a), self._taps(b), self.lins, strict=True):
            total = total + ((fa - fb).square() * lin).sum(1).mean((1, 2))
        return total


def _read_tensors(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what}: {path} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{what}: {path} is not a tensor file ({type(e).__name__})") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UserError(f"{what}: {path} does not hold a state dict of tensors")
    return data


def load_lpips(vgg: str | Path, lin: str | Path | None = None) -> LPIPS:
    """An :class:`LPIPS` with VGG16 weights from ``vgg`` and, optionally, the learned channel
    weights from ``lin``. Missing or misshapen tensors are refused naming the key."""
    model = LPIPS()
    state = _read_tensors(vgg, "--lpips-vgg")
    if not any(k.startswith("features.") for k in state):
        state = {f"features.{k}": v for k, v in state.items()}
    ours = model.features.state_dict()
    for key, mine in ours.items():
        theirs = state.get(f"features.{key}")
        if theirs is None:
            raise UserError(f"--lpips-vgg: {vgg} has no tensor features.{key} (VGG16 expected)")
        if theirs.shape != mine.shape:
            raise UserError(
                f"--lpips-vgg: features.{key} has shape {tuple(theirs.shape)}, "
                f"expected {tuple(mine.shape)}"
            )
        ours[key] = theirs.float()
    model.features.load_state_dict(ours)
    if lin is not None:
        weights = _read_tensors(lin, "--lpips-lin")
        for k, c in enumerate(TAP_CHANNELS):
            w = weights.get(f"lin{k}.model.1.weight")
            if w is None or tuple(w.shape) != (1, c, 1, 1):
                raise UserError(f"--lpips-lin: {lin} needs lin{k}.model.1.weight of [1, {c}, 1, 1]")
            model.lins[k].data.copy_(w.float())
    return model
