"""Image folders and zips in the StyleGAN / EG3D layout (see :mod:`link_core.data.dataset`)."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import cv2
import numpy as np

from link_core.data.dataset import IMAGE_EXTENSIONS, LinkDataset, _is_pow2
from link_core.errors import DataError

_MAX_NAMED_ERRORS = 10

# Image folders and zips


def _decode_image(data: bytes) -> np.ndarray:
    """Encoded PNG/JPG bytes -> uint8 ``[H, W, 3]`` RGB (gray -> RGB, alpha dropped).

    Raises ValueError with a short reason when the bytes cannot be decoded.
    """
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("cannot decode")
    if arr.dtype == np.uint16:
        arr = np.rint(arr / 257.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return np.ascontiguousarray(arr[:, :, 2::-1])  # BGR(A) -> RGB, alpha dropped
    raise ValueError(f"unsupported image shape {arr.shape}")


def _decode_mask(data: bytes) -> np.ndarray:
    """Encoded single-channel PNG label map -> uint8 ``[H, W]``."""
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("cannot decode")
    if arr.dtype != np.uint8:
        raise ValueError(f"label map must be 8-bit, got {arr.dtype}")
    if arr.ndim == 3:
        # Tolerate a gray image saved as RGB; a real colour image is not a label map.
        if arr.shape[2] not in (3, 4) or not (
            np.array_equal(arr[:, :, 0], arr[:, :, 1])
            and np.array_equal(arr[:, :, 0], arr[:, :, 2])
        ):
            raise ValueError("label map must be single-channel")
        arr = arr[:, :, 0]
    return np.ascontiguousarray(arr)


def _sniff_size(f: BinaryIO) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG or JPEG header without decoding, or None if unknown.

    Why: lets the data set report mixed sizes at open time while reading a few bytes per file.
    """
    head = f.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    if head[:2] != b"\xff\xd8":
        return None
    buf = head[2:] + f.read(1 << 16)  # SOF is usually within the first 64 KiB
    pos = 0
    while pos + 9 <= len(buf):
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # standalone markers
            pos += 2
            continue
        (length,) = struct.unpack(">H", buf[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", buf[pos + 5 : pos + 9])
            return int(w), int(h)
        pos += 2 + length
    return None


def _mask_name(relpath: str) -> str:
    return "masks/" + os.path.splitext(relpath)[0] + ".png"


class ImageFolderDataset(LinkDataset):
    """Images in a directory or a ``.zip`` (StyleGAN/EG3D layout; see the module docstring).

    Args:
        path: a directory or a zip file.
        resolution: expected size (images are ``resolution²``); None takes the images' size.
        xflip: mirror augmentation (doubles the length); 25-float camera labels are mirrored.
        use_labels: read labels from ``dataset.json`` (else ``label_dim == 0``).
        use_masks: read part masks from ``masks/`` (else ``has_masks`` is False).

    Sizes are checked at open time from the file headers (PNG, most JPEGs) and again on
    every read; a corrupt file is found on read, or all at once by :meth:`validate`.
    A zip is opened lazily in each process (never shared across fork or pickle).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        resolution: int | None = None,
        xflip: bool = False,
        use_labels: bool = True,
        use_masks: bool = True,
    ) -> None:
        self.path = str(path)
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        if not self.path:
            raise DataError("data set path is empty")
        if not os.path.exists(self.path):
            raise DataError(f"data set not found: '{self.path}'")
        if os.path.isdir(self.path):
            self._kind = "dir"
            all_files = self._list_dir()
        elif os.path.isfile(self.path) and zipfile.is_zipfile(self.path):
            self._kind = "zip"
            try:
                with zipfile.ZipFile(self.path) as z:
                    all_files = sorted(n for n in z.namelist() if not n.endswith("/"))
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"cannot read zip '{self.path}': {e}") from None
        else:
            raise DataError(f"data set must be a directory or a .zip file: '{self.path}'")

        visible = [n for n in all_files if not n.startswith("__MACOSX/") and not _hidden(n)]
        self.image_names: list[str] = sorted(
            n
            for n in visible
            if not n.startswith("masks/") and n.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not self.image_names:
            raise DataError(f"no images (.png/.jpg) found in '{self.path}'")
        file_set = set(visible)

        masked = [_mask_name(n) in file_set for n in self.image_names]
        has_masks = bool(use_masks and any(masked))
        if has_masks and not all(masked):
            first = self.image_names[masked.index(False)]
            raise DataError(
                f"missing part mask '{_mask_name(first)}' for image '{first}' in '{self.path}'"
            )

        # dataset.json is read only when something from it is used.
        need_meta = (use_labels or has_masks) and "dataset.json" in file_set
        meta = self._read_json() if need_meta else {}
        if not isinstance(meta, dict):
            raise DataError(
                f"malformed dataset.json in '{self.path}': expected a JSON object at the top level"
            )
        labels = self._parse_labels(meta) if use_labels else None
        self._labels = labels
        label_dim = 0 if labels is None else labels.shape[1]

        parts = meta.get("parts")
        if parts is not None and (
            not isinstance(parts, list) or not all(isinstance(p, str) for p in parts)
        ):
            raise DataError(f"'parts' in dataset.json of '{self.path}' must be a list of names")
        part_names = tuple(parts) if (has_masks and parts) else ()

        size = self._check_sizes(resolution)
        super().__init__(len(self.image_names), size, label_dim, part_names, has_masks, xflip)

    # -- listing and metadata ---------------------------------------------------------

    def _list_dir(self) -> list[str]:
        out = []
        for root, dirs, files in os.walk(self.path):
            dirs.sort()
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), self.path)
                out.append(rel.replace(os.sep, "/"))
        return sorted(out)

    def _read_json(self) -> Any:
        try:
            return json.loads(self._read_bytes("dataset.json").decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"malformed dataset.json in '{self.path}': {e}") from None

    def _parse_labels(self, meta: dict[str, Any]) -> np.ndarray | None:
        """``dataset.json`` labels -> float32 ``[N, label_dim]`` in image order, or None."""
        where = f"dataset.json in '{self.path}'"
        raw = meta.get("labels")
        if raw is None:
            return None
        if not isinstance(raw, list):
            raise DataError(f"malformed {where}: 'labels' must be a list of [name, label]")
        table: dict[str, Any] = {}
        for entry in raw:
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
                raise DataError(
                    f"malformed {where}: each label must be [name, label], got {entry!r:.60}"
                )
            table[entry[0].replace("\\", "/")] = entry[1]
        present = set(self.image_names)
        absent = [name for name in table if name not in present]
        if absent:
            raise DataError(
                f"{where} labels image '{absent[0]}', which is missing from the data set"
                + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
            )
        values = []
        for name in self.image_names:
            if name not in table:
                raise DataError(f"missing label for image '{name}' in {where}")
            values.append(table[name])
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if min(values) < 0:
                bad = self.image_names[values.index(min(values))]
                raise DataError(f"negative class label for image '{bad}' in {where}")
            return np.eye(max(values) + 1, dtype=np.float32)[values]  # class index -> one-hot
        dim = None
        for name, v in zip(self.image_names, values, strict=True):
            ok = isinstance(v, list) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
            )
            if not ok:
                raise DataError(
                    f"label of image '{name}' in {where} must be a list of numbers or a class "
                    f"index, got {v!r:.60}"
                )
            if dim is None:
                dim = len(v)
            elif len(v) != dim:
                raise DataError(
                    f"label of image '{name}' in {where} has {len(v)} values, expected {dim}"
                )
        arr = np.asarray(values, dtype=np.float32).reshape(len(values), dim or 0)
        if not np.isfinite(arr).all():
            bad = self.image_names[int(np.nonzero(~np.isfinite(arr).all(axis=1))[0][0])]
            raise DataError(f"label of image '{bad}' in {where} is not finite")
        return arr

    def _check_sizes(self, resolution: int | None) -> int:
        """Check all sizes readable from headers; return the data set's resolution."""
        sizes: list[tuple[str, tuple[int, int]]] = []
        for name in self.image_names:
            size = self._with_file(name, _sniff_size)
            if size is None and not sizes:
                size = self._decode(name).shape[1::-1]  # first image: decode to know its size
            if size is not None:
                sizes.append((name, size))
        first_name, (w, h) = sizes[0]
        for name, size in sizes[1:]:
            if size != (w, h):
                raise DataError(
                    f"image '{name}' in '{self.path}' is {size[0]}x{size[1]}, but "
                    f"'{first_name}' is {w}x{h}: all images must have the same size"
                )
        if w != h or not _is_pow2(w):
            raise DataError(
                f"images in '{self.path}' must be square with a power-of-two size, "
                f"'{first_name}' is {w}x{h}"
            )
        if resolution is not None and int(resolution) != w:
            raise DataError(
                f"data set '{self.path}' has resolution {w}, but resolution {resolution} "
                "was asked for"
            )
        return w

    # -- file access ------------------------------------------------------------------

    def _zipfile(self) -> zipfile.ZipFile:
        # Opened per process: a ZipFile's file handle must not be shared across fork.
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def _with_file(self, name: str, fn: Callable[[BinaryIO], Any]) -> Any:
        try:
            if self._kind == "zip":
                with self._zipfile().open(name) as f:
                    return fn(f)
            with open(os.path.join(self.path, name), "rb") as f:
                return fn(f)
        except (OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
            raise DataError(f"cannot read '{name}' in '{self.path}': {e}") from None

    def _read_bytes(self, name: str) -> bytes:
        return self._with_file(name, lambda f: f.read())

    def _decode(self, name: str) -> np.ndarray:
        try:
            return _decode_image(self._read_bytes(name))
        except ValueError as e:
            raise DataError(f"corrupt image '{name}' in '{self.path}': {e}") from None

    def _load_checked(self, raw_index: int) -> tuple[np.ndarray, np.ndarray | None]:
        name = self.image_names[raw_index]
        image = self._decode(name)
        r = self.resolution
        if image.shape[:2] != (r, r):
            raise DataError(
                f"image '{name}' in '{self.path}' is {image.shape[1]}x{image.shape[0]}, "
                f"but the data set's images are {r}x{r}"
            )
        mask = None
        if self.has_masks:
            mname = _mask_name(name)
            try:
                mask = _decode_mask(self._read_bytes(mname))
            except ValueError as e:
                raise DataError(f"corrupt part mask '{mname}' in '{self.path}': {e}") from None
            if mask.shape != (r, r):
                raise DataError(
                    f"part mask '{mname}' in '{self.path}' is {mask.shape[1]}x{mask.shape[0]}, "
                    f"but its image is {r}x{r}"
                )
            if self.part_names and int(mask.max()) >= len(self.part_names):
                raise DataError(
                    f"part mask '{mname}' in '{self.path}' has id {int(mask.max())}, but "
                    f"dataset.json names only {len(self.part_names)} parts"
                )
        return image, mask

    def _raw_label(self, raw_index: int) -> np.ndarray:
        return self._labels[raw_index] if self._labels is not None else np.zeros(0, np.float32)

    def _load(self, raw_index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        image, mask = self._load_checked(raw_index)
        label = self._labels[raw_index] if self._labels is not None else np.zeros(0, np.float32)
        return image, mask, label

    def validate(self) -> None:
        """Decode every image and mask; raise one DataError listing all bad files (<= 10)."""
        bad: list[str] = []
        for i, name in enumerate(self.image_names):
            try:
                self._load_checked(i)
            except DataError as e:
                bad.append(f"'{name}' ({_reason(str(e))})")
        if bad:
            shown = ", ".join(bad[:_MAX_NAMED_ERRORS])
            more = (
                f" and {len(bad) - _MAX_NAMED_ERRORS} more" if len(bad) > _MAX_NAMED_ERRORS else ""
            )
            raise DataError(f"{len(bad)} bad image(s) in '{self.path}': {shown}{more}")

    def close(self) -> None:
        """Close the zip file held by this process, if any."""
        if self._zip is not None:
            self._zip.close()
        self._zip = None
        self._zip_pid = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_zip"] = None  # never pickle an open file; the worker reopens it
        state["_zip_pid"] = None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _hidden(relpath: str) -> bool:
    return any(part.startswith(".") for part in relpath.split("/"))


def _reason(message: str) -> str:
    """The part of a DataError message after the file's location, for validate()'s summary."""
    return message.rsplit("': ", 1)[-1] if "': " in message else message
