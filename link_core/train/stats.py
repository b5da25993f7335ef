"""Training statistics: running means of named scalars, flushed per tick to stats.jsonl and
TensorBoard (``Loss/link/eyes/image/out``, ``Loss/D/r1``, ``Timing/s_per_kimg``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from link_core.train.distributed import DistInfo, mean_over_ranks


class StatsLog:
    """Running means of named scalars, flushed to stats.jsonl and TensorBoard per tick."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, dist: DistInfo | None = None):
        self.path = run_dir / "stats.jsonl"
        self.dist = dist or DistInfo()
        tensorboard = tensorboard and self.dist.is_main
        # Sums stay tensors on the device until a tick reads them: adding a GPU value as a
        # Python float would wait for the GPU once per term and step.
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.current: dict[str, torch.Tensor] = {}
        """Values added since :meth:`begin_phase` (to name a term that went NaN / Inf)."""
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency; degrade to JSONL if absent
                self.writer = None

    def begin_phase(self) -> None:
        self.current.clear()

    def add(self, name: str, value: torch.Tensor | float) -> None:
        v = value.detach().float() if torch.is_tensor(value) else torch.tensor(float(value))
        self.current[name] = v
        self.sums[name] = self.sums[name] + v if name in self.sums else v.clone()
        self.counts[name] = self.counts.get(name, 0) + 1

    def nonfinite(self, values: dict[str, torch.Tensor] | None = None) -> list[str]:
        """Names whose value (default: the running sums) is NaN or Inf (reads them)."""
        values = self.sums if values is None else values
        return [k for k, v in values.items() if not math.isfinite(float(v))]

    def flush(self, images_seen: int, extra: dict[str, float]) -> dict[str, float]:
        means = {k: float(self.sums[k]) / self.counts[k] for k in self.sums}
        means = mean_over_ranks(means, self.dist)  # every rank logs the same phases
        means.update(extra)
        self.sums.clear()
        self.counts.clear()
        return self.write_row(images_seen, means)

    def write_row(self, images_seen: int, means: dict[str, float]) -> dict[str, float]:
        """Append one row of values (not running means) to stats.jsonl and TensorBoard
        (rank 0 only)."""
        self.last.update(means)
        if not self.dist.is_main:
            return means
        row = {"kimg": images_seen / 1000, **{k: round(v, 6) for k, v in means.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(k, v, images_seen)
            self.writer.flush()
        return means

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress_postfix(images_seen: int, means: dict[str, float]) -> str:
    parts = [
        f"kimg {images_seen / 1000:.1f}",
        f"{means.get('Timing/img_per_s', 0):.1f} img/s",
        f"{means.get('Timing/s_per_kimg', 0):.1f}s/kimg",
    ]
    for key, label in (("Loss/G/adv", "G"), ("Loss/D/loss", "D"), ("Loss/link/total", "link")):
        if key in means:
            parts.append(f"{label} {means[key]:.3f}")
    return " ".join(parts)
