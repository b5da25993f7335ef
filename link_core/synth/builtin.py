"""The data set a config names: a folder or zip, or a built-in synthetic set (rendered once,
cached).
"""

from __future__ import annotations

from link_core.data import ImageFolderDataset, LinkDataset, cache_dir
from link_core.synth.toyfaces import ToyFaces


def open_dataset(
    path: str,
    resolution: int,
    xflip: bool = False,
    seed: int = 0,
    num_images: int = 4096,
    synthetic: str = "toyfaces",
    cameras: str = "orbit",
) -> LinkDataset:
    """The data set of a config: a folder or zip when ``path`` is set, else the built-in
    ``synthetic`` set (``toyfaces``, or the 3D ``heads`` / ``scenes``, see
    :func:`synthetic_3d_zip`).

    Raises DataError if a folder's or zip's images are not ``resolution²``.
    """
    if path:
        return ImageFolderDataset(path, resolution=resolution, xflip=xflip)
    if synthetic == "toyfaces":
        return ToyFaces(resolution=resolution, num_images=num_images, seed=seed, xflip=xflip)
    zip_path = synthetic_3d_zip(synthetic, num_images, resolution, seed, cameras)
    return ImageFolderDataset(zip_path, resolution=resolution, xflip=xflip)


def synthetic_3d_zip(kind: str, num: int, resolution: int, seed: int, cameras: str) -> str:
    """The zip of a built-in 3D data set, rendered on first use (pytorch3d) and cached.

    The name holds every parameter, so a cached file is reused only for the same set.
    """
    path = cache_dir() / f"{kind}_n{num}_r{resolution}_{cameras}_s{seed}.zip"
    if not path.is_file():
        from link_core.synth.write import synthesize  # pytorch3d stays out of plain imports

        synthesize(kind, num, resolution, str(path), seed=seed, cameras=cameras)
    return str(path)
