"""Shared fixtures: tiny configs that make real training runs take seconds on 2 cores."""

from __future__ import annotations

import pytest
import torch

TINY = [
    "data.resolution=16",
    "data.num_images=64",
    "model.resolution=16",
    "model.z_dim=16",
    "model.w_dim=16",
    "model.channel_base=256",
    "model.channel_max=16",
    "train.batch=4",
    "train.num_threads=1",
    "train.sample_every_kimg=1000",
    "train.log_every_steps=4",
    "link.interval=2",
    "link.links=[{name: left_eye, axes: [0, 4], region: {box: [0.1875, 0.3125, 0.4375, 0.5625]}}]",
    "metrics.num=8",
]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny_overrides() -> list[str]:
    """``--set`` overrides for a 16² model on 64 toy faces (a step takes ~20 ms)."""
    return list(TINY)
