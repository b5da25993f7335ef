"""EG3D's density regularizer (§4.5 / supplement): smooth σ, no stray density.

L1 between the raw density at random points in the box and at points a small step away,
applied lazily like every G regularizer (the loop scales it by its interval).
"""

from __future__ import annotations

import torch

from eg3d_link.options import EG3DOptions


def density_smoothness(
    G: torch.nn.Module, ws: torch.Tensor, c: torch.Tensor, opts: EG3DOptions
) -> dict[str, torch.Tensor]:
    """``{"density": mean |σ_raw(p) − σ_raw(p + ε)|}`` over ``density_reg_points`` random
    points p per sample, ε ~ N(0, offset²). ws ``[B, num_ws, w_dim]``; c unused."""
    B = ws.shape[0]
    n = opts.density_reg_points
    pts = (torch.rand(B, n, 3, device=ws.device) - 0.5) * opts.box_size
    near = pts + torch.randn_like(pts) * opts.density_reg_offset
    planes = G.planes(ws)
    sigma = G.sample_mixed(torch.cat([pts, near], 1), ws, planes=planes)["sigma_raw"]
    return {"density": (sigma[:, :n] - sigma[:, n:]).abs().mean()}
