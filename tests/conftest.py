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


# A 16² EG3D: 16² tri-planes, 8² neural rendering (6 + 6 samples per ray), SR 2×.
TINY_EG3D = [
    "model.backbone=eg3d",
    "model.c_dim=25",
    "model.extra={plane_resolution: 16, plane_channels: 8, decoder_hidden: 16, "
    "feature_channels: 8, render_resolution: 8, num_coarse: 6, num_fine: 6, sr_channels: 16, "
    "density_reg_points: 64, white_background: true}",
]


# The tiny EG3D on the built-in synthetic heads with a `top` box3d link (RGB, raw, depth and
# the volume term), framed like the synthetic cameras.
HEADS_3D = [
    *TINY,
    *TINY_EG3D,
    "data.synthetic=heads",
    "data.num_images=16",
    "model.extra.camera_fov_deg=30.0",
    "model.extra.camera_pivot=[0.0, 0.0, 0.0]",
    "model.extra.ray_start=1.9",
    "model.extra.ray_end=3.5",
    "model.extra.pose_mode=orbit",
    "link.links=[{name: top, axes: [0, 4], region: {box3d: [-0.5, 0.18, -0.5, 0.5, 0.5, 0.5]}}]",
    "link.maps={image: 1.0, image_raw: 1.0, image_depth: 1.0}",
    "link.volume_weight=0.5",
    "link.volume_points=64",
]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny_overrides() -> list[str]:
    """``--set`` overrides for a 16² model on 64 toy faces (a step takes ~20 ms)."""
    return list(TINY)


@pytest.fixture
def tiny_eg3d_overrides() -> list[str]:
    """The tiny config on the EG3D backbone (data set chosen by the test)."""
    return [*TINY, *TINY_EG3D]


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Built-in 3D data sets render into a per-session cache, not the user's."""
    import os

    old = os.environ.get("LINKGAN_CACHE")
    os.environ["LINKGAN_CACHE"] = str(tmp_path_factory.mktemp("linkgan_cache"))
    yield
    if old is None:
        os.environ.pop("LINKGAN_CACHE", None)
    else:
        os.environ["LINKGAN_CACHE"] = old
