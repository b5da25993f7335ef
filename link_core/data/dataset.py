"""Data sets: the built-in toy faces and image folders / zips in the StyleGAN/EG3D layout.

Every data set returns the same item, a dict of tensors:

- ``"image"``: uint8 ``[3, H, W]`` RGB;
- ``"label"``: float32 ``[label_dim]`` (``[0]`` when the data set has no labels);
- ``"mask"``: uint8 ``[1, H, W]`` part ids, indices into ``part_names`` (only if ``has_masks``).

and has the attributes ``resolution``, ``num_channels`` (3), ``label_dim``, ``has_masks``,
``part_names`` (tuple, empty if none) and ``len()``.

Folder / zip layout (what :func:`write_dataset_zip` writes and :class:`ImageFolderDataset`
reads)::

    00000/img00000000.png ...        images (PNG/JPG, any sub-folders, sorted by relative path)
    masks/00000/img00000000.png ...  optional single-channel PNG label maps, one per image
    dataset.json                     optional {"labels": [[relpath, [floats] | int], ...],
                                               "parts": [names...]}

Mirroring (``xflip=True``) doubles the data set; the second half is mirrored. Part ids
named ``left_*`` / ``right_*`` swap on a mirror so that ``left_eye`` stays the part on the
image's left. Camera labels (EG3D, 25 floats) are mirrored with the image
(:func:`mirror_camera_label`).

Every problem with a data set raises :class:`~link_core.errors.DataError` with one line
that says what is wrong and where.

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from link_core.data.cameras import CAMERA_LABEL_DIM

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

Item = dict[str, torch.Tensor]


def image_to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 images (any shape, e.g. ``[B, 3, H, W]``) -> float32 in [-1, 1], same shape."""
    return image.to(torch.float32) / 127.5 - 1.0


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _mirror_permutation(part_names: Sequence[str]) -> np.ndarray | None:
    """Id lookup table that swaps ``left_X`` <-> ``right_X`` parts, or None if there are none.

    Why: after a mirror the left eye sits on the right; swapping ids keeps a part's name
    tied to the same side of the image, so a mask-based link keeps meaning one thing.
    """
    index = {name: i for i, name in enumerate(part_names)}
    lut = np.arange(256, dtype=np.uint8)
    swapped = False
    for name, i in index.items():
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if name.startswith(a) and b + name[len(a) :] in index:
                lut[i] = index[b + name[len(a) :]]
                swapped = True
    return lut if swapped else None


def mirror_camera_label(label: np.ndarray) -> np.ndarray:
    """The camera that sees the world mirrored in x as this one's image mirrored left-right.

    With ``S = diag(-1, 1, 1)``: the mirrored world point ``S·p`` seen by
    ``(R' = S·R·S, t' = S·t)`` lands where ``p`` lands in the original view, with the camera's
    x (image u) flipped. Intrinsics stay (principal point at the centre).
    """
    out = np.asarray(label, dtype=np.float32).copy()
    m = out[:16].reshape(4, 4)
    s = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    m[:3, :3] = s[:, None] * m[:3, :3] * s[None, :]
    m[:3, 3] = s * m[:3, 3]
    out[:16] = m.reshape(16)
    return out


class LinkDataset(Dataset):
    """Common base: item format, mirroring, attributes. Subclasses implement ``_load``.

    ``_load(i)`` for a raw index ``0 <= i < num_raw`` returns ``(image, mask, label)``:
    image uint8 ``[H, W, 3]``, mask uint8 ``[H, W]`` or None, label float32 ``[label_dim]``.
    """

    num_channels: int = 3

    def __init__(
        self,
        num_raw: int,
        resolution: int,
        label_dim: int,
        part_names: Sequence[str],
        has_masks: bool,
        xflip: bool,
    ) -> None:
        self.num_raw = int(num_raw)
        self.resolution = int(resolution)
        self.label_dim = int(label_dim)
        self.part_names: tuple[str, ...] = tuple(part_names)
        self.has_masks = bool(has_masks)
        self.xflip = bool(xflip)
        self._mirror_lut = _mirror_permutation(self.part_names)

    def __len__(self) -> int:
        return self.num_raw * (2 if self.xflip else 1)

    def _load(self, raw_index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        raise NotImplementedError

    def _raw_label(self, raw_index: int) -> np.ndarray:
        """The label of raw item ``raw_index``; subclasses that keep labels apart from the
        images override this so that :meth:`label` decodes nothing."""
        return self._load(raw_index)[2]

    def label(self, index: int) -> torch.Tensor:
        """Item ``index``'s label (float32 ``[label_dim]``, mirrored with its image) without
        decoding the image where the subclass can (training draws a label per fake)."""
        index = int(index)
        if index < 0:
            index += len(self)
        flip = index >= self.num_raw
        label = np.asarray(self._raw_label(index - self.num_raw if flip else index), np.float32)
        if flip and self.label_dim == CAMERA_LABEL_DIM:
            label = mirror_camera_label(label)
        return torch.from_numpy(label.copy())

    def __getitem__(self, index: int) -> Item:
        """Item ``index``: see the module docstring for the dict's keys and shapes."""
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a data set of {len(self)}")
        flip = index >= self.num_raw
        image, mask, label = self._load(index - self.num_raw if flip else index)
        if flip:
            image = image[:, ::-1]
            if self.label_dim == CAMERA_LABEL_DIM:
                label = mirror_camera_label(label)
            if mask is not None:
                mask = mask[:, ::-1]
                if self._mirror_lut is not None:
                    mask = self._mirror_lut[mask]
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "label": torch.from_numpy(np.asarray(label, dtype=np.float32).copy()),
        }
        if self.has_masks and mask is not None:
            item["mask"] = torch.from_numpy(np.ascontiguousarray(mask)[None])
        return item
