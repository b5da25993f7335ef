"""Frame sinks: H.264 mp4 (imageio-ffmpeg), GIF (imageio + Pillow) or a folder of PNGs.

Every sink writes under a temporary name and renames on success, so an interrupted render
never leaves a half-written video where a finished one is expected (or replaces an old one).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType

import numpy as np

from link_core.data.images import write_png
from link_core.errors import UserError

VIDEO_FORMATS = (".mp4", ".gif")


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad with white to even height and width (yuv420p needs them)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255)


class FrameSink:
    """``with FrameSink(path, fps) as sink: sink.write(frame)`` for ``[H, W, 3]`` uint8 RGB
    frames of one size. ``path`` ending in ``.mp4`` or ``.gif`` writes a video; anything else
    is a folder that receives ``frame_00000.png`` …"""

    def __init__(self, path: str | Path, fps: float = 24.0, quality: float = 8.0):
        self.path = Path(path)
        self.fps = float(fps)
        self.quality = quality
        if not self.fps > 0:
            raise UserError(f"--fps: must be > 0, got {fps}")
        suffix = self.path.suffix.lower()
        self.kind = suffix[1:] if suffix in VIDEO_FORMATS else "png"
        if self.kind == "png" and suffix:
            raise UserError(
                f"--out: {self.path.name}: expected .mp4, .gif or a folder for PNG frames"
            )
        self.count = 0
        self._size: tuple[int, int] | None = None
        self._writer = None
        self._gif: list[np.ndarray] = []
        stem = f".{self.path.stem}.tmp-{os.getpid()}"
        self._tmp = self.path.with_name(stem + (suffix if self.kind != "png" else ""))

    def __enter__(self) -> FrameSink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "png":
            if self.path.exists() and any(self.path.iterdir()):
                raise UserError(f"--out: {self.path} exists and is not empty")
            self._tmp.mkdir(parents=True)
        return self

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
        frame = _even(np.ascontiguousarray(frame))
        size = (frame.shape[1], frame.shape[0])
        if self._size is None:
            self._size = size
            if self.kind == "mp4":
                import imageio_ffmpeg

                self._writer = imageio_ffmpeg.write_frames(
                    str(self._tmp),
                    size,
                    fps=self.fps,
                    codec="libx264",
                    quality=self.quality,
                    macro_block_size=2,
                    ffmpeg_log_level="error",
                )
                self._writer.send(None)
        elif size != self._size:
            raise ValueError(f"frame {self.count} is {size}, the first was {self._size}")
        if self.kind == "mp4":
            self._writer.send(frame.tobytes())
        elif self.kind == "gif":
            self._gif.append(frame)
        else:
            write_png(frame, self._tmp / f"frame_{self.count:05d}.png")
        self.count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if exc_type is None:
                if self.count == 0:
                    raise ValueError("no frames were written")
                if self.kind == "gif":
                    import imageio.v3 as iio

                    iio.imwrite(
                        self._tmp,
                        np.stack(self._gif),
                        extension=".gif",
                        duration=1000.0 / self.fps,
                        loop=0,
                    )
                if self.kind == "png" and self.path.exists():
                    self.path.rmdir()  # checked empty on enter
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            elif self._tmp.exists():
                self._tmp.unlink()


def read_video(path: str | Path) -> np.ndarray:
    """All frames ``[F, H, W, 3]`` uint8 of an mp4 or GIF (tests, reports)."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        import imageio.v3 as iio

        frames = iio.imread(path, index=None)
        return np.ascontiguousarray(frames[..., :3])
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    return np.stack(frames)
