"""GAN inversion with a loaded model: project a real photo into it and write the w file
(for ``--w``), the reconstruction, a progress video and the loss curve."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from link_core.errors import UserError
from link_core.interface import view_cameras
from link_core.train.config import config_to_dict
from link_core.weights import checkpoint as ckpt

if TYPE_CHECKING:
    from linkgan.model import Model


def read_target_image(path: str | Path, resolution: int) -> torch.Tensor:
    """A real photo as ``[1, 3, R, R]`` in [-1, 1]: centre-cropped square, area-resized."""
    import cv2
    import numpy as np

    from link_core.data.formats import MAX_FILE_BYTES, decode_image

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--image: {path} is not a readable image (no such file)")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(f"--image: {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        img = decode_image(path.read_bytes(), inflate=True)[:, :, ::-1]  # checked, then BGR
    except ValueError as e:
        raise UserError(f"--image: {path} is not a readable image ({e})") from None
    h, w = img.shape[:2]
    side = min(h, w)
    img = img[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    img = cv2.resize(img, (resolution, resolution), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(img[:, :, ::-1]).astype(np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1.0


def read_camera(path: str | Path, c_dim: int) -> torch.Tensor:
    """``[1, c_dim]`` from a JSON list of floats (EG3D: 16 cam2world + 9 intrinsics)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UserError(f"--camera: {path} is not a regular file (a folder, FIFO or device)")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        c = torch.tensor(values, dtype=torch.float32).reshape(1, -1)
    except (OSError, ValueError, TypeError, RuntimeError, RecursionError) as e:
        raise UserError(f"--camera: {path} is not a JSON list of numbers ({e})") from None
    if c.shape[1] != c_dim or not torch.isfinite(c).all():
        raise UserError(f"--camera: {path} has {c.shape[1]} values, this model needs {c_dim}")
    return c


def invert(
    model: Model,
    image: str | Path,
    out: str | Path,
    camera: str | Path | None = None,
    settings: Any = None,
    progress: bool = True,
    lpips_vgg: str | Path | None = None,
    lpips_lin: str | Path | None = None,
) -> dict[str, Any]:
    """Project a real image into the model (``link_core.edit.inversion``) and write ``out/``:
    ``w.safetensors`` (w, camera, noise maps: use with ``--w``), ``reconstruction.png``
    (target | reconstruction), ``progress.mp4``, ``losses.json`` and, after pivotal tuning,
    ``model.safetensors`` (the tuned G: use it as ``--ckpt`` with that w).
    ``lpips_vgg`` (and ``lpips_lin``): local VGG16 (and LPIPS) weights; adds LPIPS to the
    image loss (:mod:`link_core.metrics.lpips`)."""
    import shutil
    import tempfile

    import numpy as np
    from tqdm.auto import tqdm

    from link_core.data.images import grid, to_uint8, write_png
    from link_core.edit.inversion import InversionSettings
    from link_core.edit.inversion import invert as run_inversion
    from link_core.edit.latents import save_w
    from render.video import FrameSink

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out: {out} exists and is not an empty folder")
    s = settings or InversionSettings()
    if s.steps < 1 or s.tune_steps < 0:
        raise UserError(f"--steps: must be >= 1, got {s.steps}")
    perceptual = None
    if lpips_vgg is not None:
        from link_core.metrics.lpips import load_lpips

        perceptual = load_lpips(lpips_vgg, lpips_lin)
    elif lpips_lin is not None:
        raise UserError("--lpips-lin: needs --lpips-vgg (the VGG16 weights) too")
    model.restore_noise()
    G, cfg = model.G, model.config
    target = read_target_image(image, G.img_resolution)
    c = read_camera(camera, G.c_dim) if camera else view_cameras(G, 1)
    scale = max(1, 256 // G.img_resolution)

    def side_by_side(x: torch.Tensor) -> np.ndarray:
        tiles = to_uint8(torch.cat([target, x.clamp(-1, 1)]))
        big = np.repeat(np.repeat(tiles, scale, axis=1), scale, axis=2)
        return grid(big, cols=2, pad=4)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        total = s.steps + s.tune_steps
        bar = tqdm(total=total, desc="invert", unit="step", disable=not progress)

        def on_step(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.4f}")

        with FrameSink(tmp / "progress.mp4", fps=12) as sink:
            result = run_inversion(
                G,
                target,
                c,
                s,
                perceptual,
                snapshot=lambda i, x: sink.write(side_by_side(x)),
                progress=on_step,
            )
        bar.close()
        save_w(tmp / "w.safetensors", result.ws, c, result.noise)
        write_png(side_by_side(result.image), tmp / "reconstruction.png")
        if result.generator is not None:
            ckpt.save_inference_weights(
                tmp / "model.safetensors", result.generator, config_to_dict(cfg)
            )
        n = len(result.losses)
        k = max(1, min(10, n // 5))
        summary = {
            "checkpoint": str(model.source),
            "image": str(image),
            "steps": s.steps,
            "tune_steps": s.tune_steps,
            "w_plus": s.w_plus,
            "noise_maps": s.noise_maps,
            "loss_first": round(sum(result.losses[:k]) / k, 6),
            "loss_last": round(sum(result.losses[-k:]) / k, 6),
            "mse_final": round(float((result.image - target).square().mean()), 6),
            "losses": [round(v, 6) for v in result.losses],
        }
        (tmp / "losses.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {k: v for k, v in summary.items() if k != "losses"} | {"out": str(out)}
