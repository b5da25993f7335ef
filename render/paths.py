"""Camera paths for videos: a 360° turntable, EG3D's wobble around the front, a still camera,
or a user's JSON list of poses.

A path is ``[F, 25]`` EG3D camera labels (see :mod:`link_core.data.cameras`). Paths are built
around the generator's :class:`~link_core.data.cameras.CameraSpec` (``G.camera``), so they frame
the object the way the training cameras did unless the user overrides radius / FOV.

JSON path files hold a list (or ``{"poses": [...]}``) whose entries are either 25 numbers
(an EG3D label) or objects ``{"yaw": deg, "pitch": deg, "radius": r?, "fov": deg?}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch

from link_core.data.cameras import (
    CAMERA_LABEL_DIM,
    CameraSpec,
    frontal_labels,
    orbit_labels,
    turntable_poses,
    wobble_poses,
)
from link_core.errors import UserError

PATH_KINDS = ("turntable", "wobble", "still")


def camera_spec(
    G: torch.nn.Module, radius: float | None = None, fov_deg: float | None = None
) -> CameraSpec:
    """The generator's camera spec (``G.camera``) with optional overrides."""
    if not G.is_3d:
        raise UserError("this model has no camera (a 2-D backbone): use --path still")
    spec = G.camera
    changes = {}
    if radius is not None:
        changes["radius"] = radius
    if fov_deg is not None:
        changes["fov_deg"] = fov_deg
    try:
        return dataclasses.replace(spec, **changes)
    except ValueError as e:
        raise UserError(f"camera: {e}") from None


def camera_path(
    G: torch.nn.Module,
    path: str,
    frames: int,
    pitch_deg: float = 10.0,
    radius: float | None = None,
    fov_deg: float | None = None,
) -> torch.Tensor:
    """``[F, c_dim]`` labels for ``path`` = ``turntable`` | ``wobble`` | ``still`` | a JSON
    file. 2-D models (no camera) accept only ``still`` (their zero label)."""
    if frames < 1:
        raise UserError(f"--frames: must be >= 1, got {frames}")
    if path == "still":
        if not G.is_3d:
            return torch.zeros(frames, G.c_dim)
        return frontal_labels(frames, camera_spec(G, radius, fov_deg))
    if path == "turntable":
        return turntable_poses(frames, camera_spec(G, radius, fov_deg), pitch_deg=pitch_deg)
    if path == "wobble":
        return wobble_poses(frames, camera_spec(G, radius, fov_deg))
    file = Path(path)
    if file.suffix.lower() != ".json" and not file.exists():
        raise UserError(
            f"--path: expected {', '.join(PATH_KINDS)} or a JSON file of poses, got {path!r}"
        )
    return load_path_file(file, camera_spec(G, radius, fov_deg))


def load_path_file(file: str | Path, spec: CameraSpec | None = None) -> torch.Tensor:
    """Read a JSON list of poses -> ``[F, 25]`` labels (errors name the file and entry);
    angle entries orbit ``spec`` (default: EG3D's FFHQ camera)."""
    file = Path(file)
    spec = spec or CameraSpec()
    if file.exists() and not file.is_file():
        raise UserError(f"--path: {file} is not a regular file (a folder, FIFO or device)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--path: {file} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"--path: {file} is not a readable JSON file ({e})") from None
    except RecursionError:
        raise UserError(f"--path: {file}: JSON nested too deeply") from None
    if isinstance(data, dict):
        data = data.get("poses")
    if not isinstance(data, list) or not data:
        raise UserError(f"--path: {file} must hold a non-empty list of poses (or {{poses: []}})")
    labels = [_pose_label(entry, spec, f"{file}[{i}]") for i, entry in enumerate(data)]
    return torch.cat(labels)


def _pose_label(entry: object, spec: CameraSpec, where: str) -> torch.Tensor:
    if isinstance(entry, list):
        if len(entry) != CAMERA_LABEL_DIM or not all(_is_number(x) for x in entry):
            raise UserError(f"--path: {where}: a label is {CAMERA_LABEL_DIM} numbers")
        label = torch.tensor(entry, dtype=torch.float32)[None]
        if not torch.isfinite(label).all():
            raise UserError(f"--path: {where}: the label holds NaN or infinity")
        return label
    if isinstance(entry, dict):
        unknown = set(entry) - {"yaw", "pitch", "radius", "fov"}
        if unknown:
            raise UserError(f"--path: {where}: unknown key {sorted(unknown)[0]!r}")
        values = {k: entry.get(k) for k in ("yaw", "pitch", "radius", "fov")}
        for k, v in values.items():
            if v is not None and not (_is_number(v) and math.isfinite(v)):
                raise UserError(f"--path: {where}.{k}: expected a number, got {v!r}")
        try:
            pose_spec = dataclasses.replace(
                spec,
                radius=values["radius"] if values["radius"] is not None else spec.radius,
                fov_deg=values["fov"] if values["fov"] is not None else spec.fov_deg,
            )
        except ValueError as e:
            raise UserError(f"--path: {where}: {e}") from None
        pitch = values["pitch"] or 0.0
        if abs(pitch) >= 90:
            raise UserError(f"--path: {where}.pitch: must lie in (-90, 90) degrees, got {pitch}")
        yaw_t = torch.tensor([math.radians(values["yaw"] or 0.0)])
        return orbit_labels(yaw_t, torch.tensor([math.radians(pitch)]), pose_spec)
    raise UserError(f"--path: {where}: expected 25 numbers or {{yaw, pitch, radius, fov}}")


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
