"""Data-parallel training on PyTorch's distributed engine (``torchrun``).

``torchrun --nproc_per_node N -m linkgan train ...`` starts one process per GPU (or per CPU
worker); :func:`init_distributed` joins them (NCCL on GPUs, gloo on CPU) from torchrun's
environment. Each rank draws the *global* batch's random inputs from the same per-step seed
and keeps its slice, so N ranks see exactly the samples one process would, and a run can
resume with a different number of processes.

Gradients are averaged across ranks after every backward pass — the main phases, the lazy
link / path-length / density phases and R1 alike — by one all-reduce over a flat buffer per
optimizer (what DistributedDataParallel does for one forward/backward, done by hand because
the phases use different parameter subsets and R1 differentiates through D's gradient,
which DDP's hooks do not support). Buffers that track batch statistics (``w_avg``) are
averaged after each step. Rank 0 alone writes checkpoints, logs and samples.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``); a plain process gets rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def rows(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's contiguous slice of a global-batch tensor ``[world·b, ...]``."""
    b = x.shape[0] // info.world
    return x[info.rank * b : (info.rank + 1) * b]


def average_gradients(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """Average ``.grad`` over ranks in one all-reduce (a parameter without a gradient on
    this rank counts as zeros, so every rank sends the same layout)."""
    if not info.enabled:
        return
    import torch.distributed as dist

    params = list(params)
    if not params:
        return
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
    )
    dist.all_reduce(flat)
    flat /= info.world
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad = g.view_as(p)  # views of one buffer: no copies


def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (running statistics like ``w_avg``) over ranks."""
    if not info.enabled:
        return
    import torch.distributed as dist

    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b /= info.world


def all_true(flag: bool, info: DistInfo, device: torch.device | str = "cpu") -> bool:
    """True when ``flag`` holds on every rank (one tiny all-reduce)."""
    if not info.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() == 0)


def from_main(values: Sequence[float], info: DistInfo, device: torch.device | str = "cpu"):
    """Rank 0's ``values`` on every rank (decisions that depend on its clock)."""
    if not info.enabled:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], device=device, dtype=torch.float64)
    dist.broadcast(t, 0)
    return t.tolist()


def mean_over_ranks(values: dict[str, float], info: DistInfo, device="cpu") -> dict[str, float]:
    """Average a dict of scalars over ranks (every rank must hold the same keys)."""
    if not info.enabled or not values:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(keys, (t / info.world).tolist(), strict=True))


def fingerprints(modules: dict[str, torch.nn.Module], info: DistInfo) -> list[list[float]]:
    """Per rank, a float64 sum of each module's parameters and buffers: equal lists mean the
    ranks hold identical weights (gathered on every rank)."""
    mine = [
        float(sum(t.detach().double().sum() for t in (*m.parameters(), *m.buffers())))
        for m in modules.values()
    ]
    if not info.enabled:
        return [mine]
    import torch.distributed as dist

    gathered: list = [None] * info.world
    dist.all_gather_object(gathered, mine)
    return gathered


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def close_distributed(info: DistInfo, clean: bool = True) -> None:
    """Leave the process group before the interpreter exits.

    Without this, gloo's background threads meet a peer that has already exited and abort
    the process ("terminate called without an active exception", ~1 run in 10 on a 2-core
    CPU). After a clean run every rank waits for the others first (a barrier), so none
    tears down a connection another still uses; after an error there is nothing to wait
    for (the other ranks may never arrive), so the group is only destroyed.
    """
    if not info.enabled:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if clean:
        dist.barrier()
    dist.destroy_process_group()
