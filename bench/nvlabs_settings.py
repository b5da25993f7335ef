"""Settings NVIDIA's EG3D ``train.py`` builds for ``--cfg ffhq`` (facts about their code, for the
benches that run it beside ours: ``nvidia_fidelity.py``, ``parity_step.py``)."""

from __future__ import annotations

from typing import Any


def eg3d_ffhq_rendering_kwargs(resolution: int, samples: int, sr_module: str) -> dict[str, Any]:
    """``rendering_kwargs`` of an EG3D generator as their FFHQ config sets them, at
    ``resolution``, with ``samples`` uniform + ``samples`` importance samples per ray and the
    super-resolution class ``sr_module``."""
    return {
        "image_resolution": resolution,
        "disparity_space_sampling": False,
        "clamp_mode": "softplus",
        "superresolution_module": sr_module,
        "c_gen_conditioning_zero": False,
        "gpc_reg_prob": 0.5,
        "c_scale": 1.0,
        "superresolution_noise_mode": "none",
        "density_reg": 0.25,
        "density_reg_p_dist": 0.004,
        "reg_type": "l1",
        "decoder_lr_mul": 1.0,
        "sr_antialias": True,
        "depth_resolution": samples,
        "depth_resolution_importance": samples,
        "ray_start": 2.25,
        "ray_end": 3.3,
        "box_warp": 1,
        "avg_camera_radius": 2.7,
        "avg_camera_pivot": [0, 0, 0.2],
    }
