"""What a data set's files must be before anything decodes them, for files a user hands in:
a PNG's whole structure (checked before libpng sees it: libpng prints its complaints to
stderr and allocates what a header says), a JPEG's start, a header's size, and a zip's
entries (no names that climb out, no links, no duplicates, no bombs). Every problem is a
ValueError (files) or a DataError (zip entries) with a short reason."""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from typing import BinaryIO

import cv2
import numpy as np

from link_core.errors import DataError

MAX_FILE_BYTES = 256 << 20
"""No image, part mask or ``dataset.json`` of a data set may be larger (a 1024² 16-bit RGBA
PNG is 8 MiB): a bigger file, or a zip entry that says it inflates to more, is refused before
a byte of it is read or inflated (a zip bomb)."""
MAX_IMAGE_SIDE = 8192
"""Images whose header claims more pixels a side are refused before decoding."""

# PNG structure (checked before libpng sees a file: libpng prints its complaints to stderr
# and allocates what the header says).

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
"""Adam7's passes: (x start, y start, x step, y step)."""


def _png_header(head: bytes) -> tuple[int, int, int, int, int]:
    """``(width, height, bit depth, colour type, interlace)`` from a PNG's first 29 bytes;
    ValueError for a header that no decoder should be handed."""
    if len(head) < 29 or head[12:16] != b"IHDR":
        raise ValueError("truncated PNG header")
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if ctype not in _PNG_DEPTHS or depth not in _PNG_DEPTHS[ctype]:
        raise ValueError(f"invalid PNG mode (colour type {ctype}, {depth}-bit)")
    if not w or not h or interlace > 1:
        raise ValueError(f"invalid PNG header ({w}x{h}, interlace {interlace})")
    return w, h, depth, ctype, interlace


def _png_data_size(w: int, h: int, depth: int, ctype: int, interlace: int) -> int:
    """Bytes the image data of such a PNG inflates to (a filter byte per row, per pass)."""
    bits = depth * _PNG_CHANNELS[ctype]

    def plane(pw: int, ph: int) -> int:
        return ph * (1 + (pw * bits + 7) // 8) if pw and ph else 0

    if not interlace:
        return plane(w, h)
    return sum(
        plane(max(0, -(-(w - x) // dx)), max(0, -(-(h - y) // dy))) for x, y, dx, dy in _ADAM7
    )


def _check_png(data: bytes, inflate: bool) -> tuple[int, int]:
    """A whole PNG's structure, its ``(width, height)``: every chunk complete with its CRC
    (a few % of a decode) and an IEND. ``inflate``: also the image data inflates to exactly
    what the header says (in bounded steps: a bomb inside a PNG stops at its declared size;
    costs about half a decode, so data-set reads leave it to OpenCV). ValueError with a
    short reason otherwise."""
    w, h, depth, ctype, interlace = _png_header(data[:29])
    if max(w, h) > MAX_IMAGE_SIDE:
        raise ValueError(f"its header claims {w}x{h} pixels (more than {MAX_IMAGE_SIDE} a side)")
    expected = _png_data_size(w, h, depth, ctype, interlace)
    view = memoryview(data)
    pos, got, ended = 8, 0, False
    inflater = zlib.decompressobj()
    while pos + 12 <= len(data):
        length = int.from_bytes(view[pos : pos + 4], "big")
        kind = bytes(view[pos + 4 : pos + 8]).decode("latin-1")
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ValueError(f"truncated inside its {kind} chunk")
        if zlib.crc32(view[pos + 4 : end]) != int.from_bytes(view[end : end + 4], "big"):
            raise ValueError(f"CRC error in its {kind} chunk")
        if kind == "IDAT" and inflate:
            try:
                got += len(inflater.decompress(view[pos + 8 : end], expected + 1 - got))
            except zlib.error as e:
                raise ValueError(f"corrupt image data ({e})") from None
            if got > expected:
                raise ValueError(f"more image data than its {w}x{h} header says")
        elif kind == "IEND":
            ended = True
            break
        pos = end + 4
    if not ended:
        raise ValueError("truncated (no IEND chunk)")
    if inflate and (got != expected or not inflater.eof):
        raise ValueError(f"less image data than its {w}x{h} header says")
    return w, h


def check_image_bytes(data: bytes, inflate: bool = False) -> tuple[int, int] | None:
    """What must hold before encoded image bytes reach OpenCV: a PNG's whole structure
    (:func:`_check_png`; its ``(width, height)`` is returned) or a JPEG's start marker
    (None). ValueError with a short reason."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    if data[:8] == _PNG_SIGNATURE:
        return _check_png(data, inflate)
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a PNG or JPEG file")
    return None


def _checked(data: bytes, size: tuple[int, int] | None, inflate: bool) -> np.ndarray:
    """Check, then decode with OpenCV (IMREAD_UNCHANGED); ``size`` (width, height): a PNG
    whose header says otherwise is refused before OpenCV allocates for it."""
    found = check_image_bytes(data, inflate)
    if size is not None and found is not None and found != tuple(size):
        raise ValueError(f"its header says {found[0]}x{found[1]}, expected {size[0]}x{size[1]}")
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("cannot decode")
    return arr


# Image folders and zips


def decode_image(
    data: bytes, size: tuple[int, int] | None = None, inflate: bool = False
) -> np.ndarray:
    """Encoded PNG/JPG bytes -> uint8 ``[H, W, 3]`` RGB (gray -> RGB, alpha dropped); checked
    first (:func:`check_image_bytes`, ``size``: the width and height it must have).

    Raises ValueError with a short reason when the bytes cannot be decoded.
    """
    arr = _checked(data, size, inflate)
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


def decode_mask(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """Encoded single-channel PNG label map -> uint8 ``[H, W]`` (checked like
    :func:`decode_image`)."""
    arr = _checked(data, size, False)
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


def sniff_size(f: BinaryIO) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG or JPEG header without decoding, or None for a JPEG
    whose size is not near its start; ValueError for anything else (an empty file, another
    format, an invalid PNG header).

    Why: lets the data set report mixed sizes and broken files at open time while reading a
    few bytes per file.
    """
    head = f.read(29)
    if not head:
        raise ValueError("empty file (0 bytes)")
    if head[:8] == _PNG_SIGNATURE:
        w, h, *_ = _png_header(head)
        return w, h
    if head[:2] != b"\xff\xd8":
        raise ValueError("not a PNG or JPEG file")
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


def zip_entries(path: str, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """A zip's file entries by name, refusing what no data set holds: names that climb out
    of the archive (``../``, absolute, a drive), symbolic links, duplicate names and entries
    that say they inflate to more than :data:`MAX_FILE_BYTES` (zipfile never yields more
    than an entry declares, so nothing is ever inflated past the limit)."""
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise DataError(
                f"unsafe entry name '{name}' in zip '{path}' (absolute or climbing out with '..')"
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(f"entry '{name}' in zip '{path}' is a symbolic link (not allowed)")
        if name.endswith("/"):
            continue
        if name in entries:
            raise DataError(f"duplicate entry '{name}' in zip '{path}'")
        if info.file_size > MAX_FILE_BYTES:
            raise DataError(
                f"entry '{name}' in zip '{path}' inflates to {info.file_size} bytes (limit "
                f"{MAX_FILE_BYTES}): refused unread (a zip bomb?)"
            )
        entries[name] = info
    return entries
