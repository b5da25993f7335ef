"""Mesh files: binary PLY (plyfile), OBJ and GLB (trimesh), written atomically.

Every writer builds the whole file in a temporary file next to the target and renames it
into place (``os.replace``), so an interrupted or failing export never leaves a truncated
mesh behind, and an existing file is only replaced by a complete one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from export.mesh import Mesh

FORMATS = ("ply", "obj", "glb")


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file in the target's folder, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_ply(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Binary little-endian PLY: float32 x, y, z, uint8 red, green, blue (when the mesh has
    colours) and uchar-counted int32 triangle lists.

    plyfile describes the elements and writes the header; the body is two numpy structured
    arrays written as raw bytes. plyfile's own writer packs list properties row by row
    (about 3 s per million faces); every triangle has 3 indices, so a packed
    ``(uchar 3, int32 ×3)`` record is the same bytes at numpy speed.
    """
    from plyfile import PlyData, PlyElement

    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex = np.empty(mesh.num_vertices, dtype=fields)
    vertex["x"], vertex["y"], vertex["z"] = mesh.vertices.T
    if mesh.colors is not None:
        vertex["red"], vertex["green"], vertex["blue"] = mesh.colors.T
    face = np.empty(mesh.num_faces, dtype=[("count", "u1"), ("vertex_indices", "<i4", (3,))])
    face["count"] = 3
    face["vertex_indices"] = mesh.faces
    header = PlyData(
        [
            PlyElement.describe(vertex, "vertex"),
            # Only the header is taken from this element: one list property of int32
            # counted by a uchar, as the packed records above lay it out.
            PlyElement.describe(
                np.empty(mesh.num_faces, dtype=[("vertex_indices", "O")]),
                "face",
                len_types={"vertex_indices": "u1"},
                val_types={"vertex_indices": "i4"},
            ),
        ],
        text=False,
        byte_order="<",
    ).header

    def write(f: IO[bytes]) -> None:
        f.write(header.encode("ascii") + b"\n")
        f.write(vertex.tobytes())
        f.write(face.tobytes())

    return _atomic_write(path, write)


def _write_trimesh(mesh: Mesh, path: str | os.PathLike, file_type: str) -> Path:
    data = mesh.to_trimesh().export(file_type=file_type)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return _atomic_write(path, lambda f: f.write(payload))


def write_obj(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Wavefront OBJ with per-vertex colours as ``v x y z r g b`` (trimesh)."""
    return _write_trimesh(mesh, path, "obj")


def write_glb(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Binary glTF with a ``COLOR_0`` vertex attribute (trimesh); opens in web viewers."""
    return _write_trimesh(mesh, path, "glb")


_WRITERS = {"ply": write_ply, "obj": write_obj, "glb": write_glb}


def write_mesh(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` in the format its suffix names (``.ply``, ``.obj`` or ``.glb``)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    writer = _WRITERS.get(suffix)
    if writer is None:
        raise ValueError(
            f"cannot write a mesh to {os.fspath(path)!r}: unknown format {suffix or '(none)'!r} "
            f"(known: {', '.join('.' + f for f in FORMATS)})"
        )
    return writer(mesh, path)


def read_mesh(path: str | os.PathLike) -> Mesh:
    """Load a PLY, OBJ or GLB mesh (vertex order and colours as stored; nothing merged)."""
    import trimesh

    return Mesh.from_trimesh(trimesh.load(os.fspath(path), process=False, force="mesh"))
