"""Writing a synthetic 3-D data set to disk, in worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing
import os
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
from torch.utils.data import Dataset

from link_core.data import write_dataset_zip
from link_core.synth.dataset import SynthDataset, _render_batch
from link_core.synth.meshes import (
    BATCH,
)


def _worker_init() -> None:
    # The rasterizer is single-threaded; one torch thread per worker process avoids
    # oversubscribing the cores the other workers use.
    torch.set_num_threads(1)


class _Progress(Dataset):
    """Passes items through and ticks a tqdm bar (for :func:`write_dataset_zip`)."""

    def __init__(self, dataset: SynthDataset, bar: Any, pool: Any = None, ahead: int = 0) -> None:
        self.dataset = dataset
        self.bar = bar
        self.pool = pool
        self.ahead = ahead  # batches kept in flight
        self.pending: OrderedDict[int, Any] = OrderedDict()  # batch -> future
        self.next_batch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # label_dim, part_names, ...
        return getattr(self.__dict__["dataset"], name)

    def _prefetch(self, b: int) -> None:
        """Keep a few batches from ``b`` on in flight; move batch ``b`` into the cache."""
        num_batches = -(-self.dataset.num_raw // BATCH)
        while self.next_batch < min(num_batches, b + self.ahead):
            spec = self.dataset._spec(self.next_batch)
            self.pending[self.next_batch] = self.pool.submit(_render_batch, *spec)
            self.next_batch += 1
        if b in self.pending:
            self.dataset._store(b, self.pending.pop(b).result())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.pool is not None and index % BATCH == 0:
            self._prefetch(index // BATCH)
        item = self.dataset[index]
        self.bar.update(1)
        return item


def synthesize(
    kind: str,
    num: int,
    resolution: int,
    out_path: str,
    seed: int = 0,
    cameras: str = "orbit",
    progress: bool = True,
    pitch_range_deg: float = 30.0,
    workers: int | None = None,
) -> str:
    """Render ``num`` views and write them as an EG3D-layout data set (zip or folder).

    Images, part masks (``masks/``) and ``dataset.json`` (25-float camera labels and the
    part names) go through :func:`link_core.data.write_dataset_zip` (atomic). ``workers``
    processes render batches (default: one per core, up to 16, for sets of 4+ batches on a
    multi-core machine; 0 renders here); the output does not depend on it. Workers are
    spawned, so a script that calls this needs the usual ``if __name__ == "__main__":``
    guard. Returns ``out_path``.
    Bad arguments raise :class:`~link_core.errors.DataError`.
    """
    from tqdm import tqdm

    dataset = SynthDataset(kind, num, resolution, seed, cameras, pitch_range_deg)
    dataset.cache_all = False  # streamed once: keep memory flat for large sets
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        workers = min(16, cores) if cores > 1 and num >= 4 * BATCH else 0
    desc = f"synth {kind} {resolution}²"
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress) as bar:
        if workers <= 0:
            return write_dataset_zip(_Progress(dataset, bar), out_path)
        # spawn: a forked child would inherit torch's thread pool in an unknown state
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, context, initializer=_worker_init) as pool:
            wrapped = _Progress(dataset, bar, pool, ahead=2 * workers)
            try:
                return write_dataset_zip(wrapped, out_path)
            finally:
                for future in wrapped.pending.values():
                    future.cancel()
