"""Image folders and zips in the StyleGAN / EG3D layout (see :mod:`link_core.data.dataset`)."""

from __future__ import annotations

import json
import os
import stat
import struct
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from link_core.data.dataset import IMAGE_EXTENSIONS, LinkDataset, _is_pow2
from link_core.data.formats import (
    MAX_FILE_BYTES,
    MAX_IMAGE_SIDE,
    PNG_END,
    decode_image,
    decode_mask,
    sniff_size,
    zip_entries,
)
from link_core.errors import DataError

_MAX_NAMED_ERRORS = 10


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
        self._entries: dict[str, zipfile.ZipInfo] = {}
        if os.path.isdir(self.path):
            self._kind = "dir"
            all_files = self._list_dir()
        elif os.path.isfile(self.path) and zipfile.is_zipfile(self.path):
            self._kind = "zip"
            try:
                with zipfile.ZipFile(self.path) as z:
                    infos = z.infolist()
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"cannot read zip '{self.path}': {e}") from None
            self._entries = zip_entries(self.path, infos)
            all_files = sorted(self._entries)
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
        if self._kind == "dir":  # what will be read: regular files of a sane size only
            used = self.image_names + [_mask_name(n) for n in self.image_names if has_masks]
            for name in used + (["dataset.json"] if need_meta else []):
                self._check_dir_file(name)
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

        size = self._check_sizes(resolution, has_masks)
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

    def _check_dir_file(self, name: str) -> None:
        """A folder's file that will be read: a regular file (never a FIFO, whose read
        blocks forever, or a device) of at most :data:`MAX_FILE_BYTES`."""
        try:
            st = os.stat(os.path.join(self.path, name))
        except OSError as e:
            raise DataError(f"cannot read '{name}' in '{self.path}': {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise DataError(
                f"'{name}' in '{self.path}' is not a regular file (a FIFO, socket or device): "
                "refusing to read it"
            )
        if st.st_size > MAX_FILE_BYTES:
            raise DataError(
                f"'{name}' in '{self.path}' is {st.st_size} bytes (limit {MAX_FILE_BYTES})"
            )

    def _read_json(self) -> Any:
        try:
            return json.loads(self._read_bytes("dataset.json").decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"malformed dataset.json in '{self.path}': {e}") from None
        except RecursionError:
            raise DataError(f"malformed dataset.json in '{self.path}': nested too deeply") from None

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
            name = entry[0].replace("\\", "/")
            if name in table:
                raise DataError(f"{where} labels image '{name}' twice")
            table[name] = entry[1]
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

    def _sniff(self, name: str, strict: bool = False) -> tuple[int, int] | None:
        """A file's size from its header (:func:`sniff_size`), None where unknown. A header
        that claims more than :data:`MAX_IMAGE_SIDE` is always a DataError naming the file;
        ``strict``: so is a broken header or a PNG that does not end in IEND (truncated);
        otherwise such files are found when read (or by :meth:`validate`)."""
        try:
            try:
                size = self._with_file(name, sniff_size)
            except ValueError:
                if strict:
                    raise
                return None
            if size is not None and max(size) > MAX_IMAGE_SIDE:
                raise ValueError(
                    f"its header claims {size[0]}x{size[1]} pixels (more than {MAX_IMAGE_SIDE} "
                    "a side)"
                )
            if strict and size is not None and name.lower().endswith(".png"):
                tail = self._tail(name)
                if tail is not None and tail != PNG_END:
                    raise ValueError("truncated (no IEND chunk at its end)")
        except ValueError as e:
            raise DataError(f"corrupt image '{name}' in '{self.path}': {e}") from None
        return size

    def check_files(self) -> None:
        """Every image's and mask's header and end (a PNG's IEND) without decoding, as a
        training run does before it writes anything: one DataError naming the bad files
        (<= 10). Cheap (a few bytes per file); :meth:`validate` decodes everything."""
        bad: list[str] = []
        names = self.image_names + [_mask_name(n) for n in self.image_names if self.has_masks]
        for name in names:
            try:
                self._sniff(name, strict=True)
            except DataError as e:
                bad.append(f"'{name}' ({_reason(str(e))})")
        _raise_bad(bad, "file(s)", self.path)

    def _tail(self, name: str) -> bytes | None:
        """The last 12 bytes of a file, where they are cheap to reach (a folder's file, a
        stored zip entry); None otherwise."""
        if self._kind == "dir":
            with open(os.path.join(self.path, name), "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 12))
                return f.read(12)
        info = self._entries[name]
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1:
            return None
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                return None  # reading it names the problem
            start = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
            f.seek(start + max(0, info.compress_size - 12))
            return f.read(min(12, info.compress_size))

    def _check_sizes(self, resolution: int | None, has_masks: bool = False) -> int:
        """Check all sizes readable from headers (images, and part masks against their
        images); return the data set's resolution."""
        sizes: list[tuple[str, tuple[int, int]]] = []
        for name in self.image_names:
            size = self._sniff(name)
            if size is None and not sizes:
                size = self._decode(name).shape[1::-1]  # first image: decode to know its size
            if size is not None:
                sizes.append((name, size))
            if has_masks:
                mname = _mask_name(name)
                msize = self._sniff(mname)
                if size is not None and msize is not None and msize != size:
                    raise DataError(
                        f"part mask '{mname}' in '{self.path}' is {msize[0]}x{msize[1]}, but "
                        f"its image '{name}' is {size[0]}x{size[1]}"
                    )
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
        data = self._with_file(name, lambda f: f.read(MAX_FILE_BYTES + 1))
        if len(data) > MAX_FILE_BYTES:
            raise DataError(f"'{name}' in '{self.path}' is larger than {MAX_FILE_BYTES} bytes")
        return data

    def _decode(self, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
        try:
            return decode_image(self._read_bytes(name), size)
        except ValueError as e:
            raise DataError(f"corrupt image '{name}' in '{self.path}': {e}") from None

    def _load_checked(self, raw_index: int) -> tuple[np.ndarray, np.ndarray | None]:
        name = self.image_names[raw_index]
        r = self.resolution
        image = self._decode(name, (r, r))  # a header that lies is refused before decoding
        if image.shape[:2] != (r, r):
            raise DataError(
                f"image '{name}' in '{self.path}' is {image.shape[1]}x{image.shape[0]}, "
                f"but the data set's images are {r}x{r}"
            )
        mask = None
        if self.has_masks:
            mname = _mask_name(name)
            try:
                mask = decode_mask(self._read_bytes(mname), (r, r))
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
        _raise_bad(bad, "image(s)", self.path)

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


def _raise_bad(bad: list[str], what: str, path: object) -> None:
    """One DataError naming the first ``_MAX_NAMED_ERRORS`` of ``bad`` (none: return)."""
    if not bad:
        return
    shown = ", ".join(bad[:_MAX_NAMED_ERRORS])
    more = f" and {len(bad) - _MAX_NAMED_ERRORS} more" if len(bad) > _MAX_NAMED_ERRORS else ""
    raise DataError(f"{len(bad)} bad {what} in '{path}': {shown}{more}")
