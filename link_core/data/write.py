"""Writing data sets in the folder / zip layout (atomically), and linkgan's cache folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from link_core.data.folder import _mask_name
from link_core.errors import DataError


def cache_dir() -> Path:
    """Where built-in 3D data sets are cached: ``$LINKGAN_CACHE`` or ``~/.cache/linkgan``."""
    return Path(os.environ.get("LINKGAN_CACHE") or Path.home() / ".cache" / "linkgan")


def _encode_png(arr: np.ndarray, what: str) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise DataError(f"cannot encode {what} as PNG")
    return buf.tobytes()


def write_dataset_zip(
    dataset: Dataset, out_path: str | os.PathLike[str], num: int | None = None
) -> str:
    """Write the first ``num`` items (default all) of ``dataset`` in the folder/zip layout.

    ``out_path`` ending in ``.zip`` gives a zip, anything else a folder (which must not exist
    or be empty). Images become ``00000/img00000000.png``, masks ``masks/<same>.png``, and
    ``dataset.json`` holds the labels (null when ``label_dim == 0``) and the part names.
    Written to a temporary sibling and renamed, so a crash never leaves a half-written set.
    Returns ``out_path`` as a string.
    """
    out = str(out_path)
    total = len(dataset)  # type: ignore[arg-type]
    num = total if num is None else int(num)
    if not 0 < num <= total:
        raise DataError(f"cannot write {num} images to '{out}': the data set has {total}")
    as_zip = out.lower().endswith(".zip")
    if not as_zip and os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise DataError(f"output folder '{out}' already exists and is not empty")
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)

    part_names = list(getattr(dataset, "part_names", ()))
    labels: list[list[Any]] = []
    has_labels = getattr(dataset, "label_dim", 0) > 0

    def items():
        for i in range(num):
            item = dataset[i]
            name = f"{i // 1000:05d}/img{i:08d}.png"
            rgb = item["image"].numpy().transpose(1, 2, 0)
            yield name, _encode_png(np.ascontiguousarray(rgb[:, :, ::-1]), f"image {i}")
            if "mask" in item:
                yield _mask_name(name), _encode_png(item["mask"].numpy()[0], f"mask {i}")
            if has_labels:
                labels.append([name, [float(x) for x in item["label"].tolist()]])

    def meta() -> bytes:
        doc = {"labels": labels if has_labels else None, "parts": part_names or None}
        return json.dumps(doc, indent=1).encode("utf-8")

    base = os.path.basename(os.path.abspath(out))
    if as_zip:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
        try:
            with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
                for name, data in items():
                    z.writestr(name, data)  # PNGs are already compressed
                z.writestr("dataset.json", meta())
            os.replace(tmp, out)
        except BaseException:
            _remove(tmp)
            raise
    else:
        tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
        try:
            for name, data in items():
                dest = Path(tmp, name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            Path(tmp, "dataset.json").write_bytes(meta())
            if os.path.isdir(out):
                os.rmdir(out)  # empty (checked above); rename cannot replace a directory
            os.replace(tmp, out)
        except BaseException:
            _remove(tmp)
            raise
    return out


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
