"""Generators with known 3-D fields for tests: real networks with hand-set weights."""

from __future__ import annotations

import math

import torch
from conftest import TINY, TINY_EG3D

LEVEL = 10.0  # export's default marching-cubes level (EG3D's threshold)

CENTRE = (0.06, 0.04, -0.03)
AXES = (0.22, 0.14, 0.18)  # unequal, so a swapped or flipped axis shows in every view


def ellipsoid_eg3d():
    """The tiny EG3D of tests/test_eg3d.py with its tri-planes and decoder set by hand.

    Channel 0 of each plane holds the sum of its two axes' ((u − c)/a)² terms, so the mean
    over the xy, xz and zy planes is ⅔ρ² with ρ the ellipsoid's radius function; the
    decoder maps it to σ = softplus(k(R² − ρ²) + d − 1), which is 10 exactly at ρ = 1 and
    falls steeply outside. Features are 0: a black object on the white background.
    Everything else (plane sampling, decoder, volume renderer, sample_mixed) is the real
    code, so the mesh and the render go through the same field by different paths.
    """
    from eg3d_link import build
    from link_core.train.config import load_config

    cfg = load_config(
        None,
        [*TINY, *TINY_EG3D, "model.extra.num_coarse=48", "model.extra.num_fine=48"],
    )
    torch.manual_seed(0)
    G, _ = build(cfg.model)
    G.eval()
    res, channels = G.opts.plane_resolution, G.opts.plane_channels
    u = ((torch.arange(res) + 0.5) / res * 2 - 1) * G.box_size / 2  # pixel centres, world
    q = [((u - c) / a) ** 2 for c, a in zip(CENTRE, AXES, strict=True)]  # per axis x, y, z
    planes = torch.zeros(1, 3, channels, res, res)
    # grid_sample's first coordinate runs along W, the second along H: xy, xz, zy planes.
    planes[0, 0, 0] = q[1][:, None] + q[0][None, :]
    planes[0, 1, 0] = q[2][:, None] + q[0][None, :]
    planes[0, 2, 0] = q[1][:, None] + q[2][None, :]
    G.planes = lambda ws, noise_mode="random": planes.expand(len(ws), -1, -1, -1, -1)

    k, R2 = 150.0, 4.0
    d = 1 + math.log(math.expm1(LEVEL)) - torch.nn.functional.softplus(torch.tensor(k * (R2 - 1)))
    with torch.no_grad():
        for layer, weight, bias in (
            (G.decoder.fc0, {(0, 0): -1.5 * k}, {0: k * R2}),
            (G.decoder.fc1, {(0, 0): 1.0}, {0: float(d), **{i: -20.0 for i in range(1, 99)}}),
        ):
            layer.weight.zero_()
            layer.bias.zero_()
            for (i, j), value in weight.items():
                layer.weight[i, j] = value / layer.weight_gain
            for i, value in bias.items():
                if i < layer.bias.shape[0]:
                    layer.bias[i] = value / layer.bias_gain
    return G
