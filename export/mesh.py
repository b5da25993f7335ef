"""Coloured triangle meshes of a generator's field: marching cubes in world units.

Pipeline of :func:`extract_mesh`: density grid (:mod:`export.grid`) -> PyMCubes at
``level`` -> voxel indices to world units -> optional cleanup (largest component,
decimation) -> vertex colours queried from the colour field at the final vertices.

The level: σ is the activated density (optical density per world unit; a slab of
thickness t is ``1 − exp(−σ·t)`` opaque). :data:`DEFAULT_LEVEL` = 10 is EG3D's shape-export
threshold: a 0.1-unit slab at σ = 10 is 63 % opaque, so the surface sits where the
renderer's opacity builds up. On trained models 2–20 give nearly the same mesh
(EG3D's own export level); an untrained model may have no σ = 10 anywhere (empty mesh).

Vertices come out of marching cubes with outward-facing triangles (counter-clockwise seen
from outside, positive enclosed volume), which viewers that cull back faces need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mcubes
import numpy as np
import torch

from export.grid import (
    FieldFn,
    density_grid,
    field_grid,
    make_field,
    voxel_size,
    voxel_to_world,
)

DEFAULT_LEVEL = 10.0


@dataclass
class Mesh:
    """A triangle mesh in world units (the cameras' frame: y up, objects face +z).

    ``vertices`` float32 ``[V, 3]``, ``faces`` int64 ``[F, 3]`` (outward winding),
    ``colors`` uint8 ``[V, 3]`` RGB or None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)
        if self.colors is not None:
            colors = np.asarray(self.colors)
            if np.issubdtype(colors.dtype, np.floating):  # floats in [0, 1]
                colors = np.clip(np.round(colors * 255.0), 0, 255).astype(np.uint8)
            elif colors.dtype != np.uint8:  # integers already in 0..255
                colors = np.clip(colors, 0, 255).astype(np.uint8)
            self.colors = np.ascontiguousarray(colors).reshape(-1, 3)
            if len(self.colors) != len(self.vertices):
                raise ValueError(
                    f"mesh has {len(self.vertices)} vertices but {len(self.colors)} colours"
                )
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise ValueError("mesh faces index vertices that do not exist")

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    def to_trimesh(self) -> Any:
        """A ``trimesh.Trimesh`` with the same vertex order (no merging or reordering)."""
        import trimesh

        return trimesh.Trimesh(
            vertices=self.vertices,
            faces=self.faces,
            vertex_colors=None if self.colors is None else self.colors,
            process=False,
        )

    @classmethod
    def from_trimesh(cls, tm: Any) -> Mesh:
        """From a ``trimesh.Trimesh``; keeps per-vertex colours when it has them."""
        colors = None
        visual = getattr(tm, "visual", None)
        if visual is not None and getattr(visual, "kind", None) == "vertex":
            colors = np.asarray(visual.vertex_colors)[:, :3]
        return cls(np.asarray(tm.vertices), np.asarray(tm.faces), colors)


def grid_to_mesh(density: np.ndarray, level: float, bounds: float) -> Mesh:
    """Marching cubes of a density grid ``[N, N, N]`` (indexed ``[x, y, z]`` at voxel centres
    over ``[-bounds/2, bounds/2]³``, as :func:`~export.grid.density_grid` makes it) at
    ``level`` (σ > level is inside). Returns an uncoloured mesh in world units."""
    if density.ndim != 3 or len(set(density.shape)) != 1:
        raise ValueError(f"density grid must be a cube [N, N, N], got {density.shape}")
    verts, faces = mcubes.marching_cubes(density, float(level))
    if len(faces) == 0:
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
    # mcubes returns (axis 0, 1, 2) voxel coordinates; the grid's axes are x, y, z already.
    world = voxel_to_world(verts, density.shape[0], bounds)
    faces = faces.astype(np.int64)
    # Where the surface passes exactly through a sample, mcubes emits zero-area triangles.
    a, b, c = (world[faces[:, k]] for k in range(3))
    keep = np.linalg.norm(np.cross(b - a, c - a), axis=1) > 0
    return Mesh(world, faces[keep])


def _sigma_gradient(field: FieldFn, points: torch.Tensor, step: float) -> torch.Tensor:
    """Central-difference ∇σ at ``points [P, 3]`` -> ``[P, 3]`` (one batched query)."""
    offsets = torch.eye(3, dtype=points.dtype, device=points.device) * step
    probes = torch.cat([points[:, None] + offsets, points[:, None] - offsets], 1)  # [P, 6, 3]
    sigma = field(probes.reshape(1, -1, 3))["sigma"].reshape(-1, 6)
    return (sigma[:, :3] - sigma[:, 3:]) / (2 * step)


def field_colors(
    field: FieldFn,
    vertices: np.ndarray,
    inset: float = 0.0,
    step: float = 1e-3,
    chunk: int = 2**16,
) -> np.ndarray:
    """RGB of the colour field at ``vertices [V, 3]`` (world) -> uint8 ``[V, 3]``.

    ``inset`` (world units) moves each query that far inside along ∇σ (density grows
    inwards), because the renderer shows the colour where opacity builds up, just behind
    the level set; ``step`` is the finite-difference step of that gradient. Where ∇σ
    vanishes (flat density, e.g. a zeroed border) the vertex itself is queried.
    """
    out = np.zeros((len(vertices), 3), dtype=np.uint8)
    for start in range(0, len(vertices), chunk):
        pts = torch.from_numpy(np.ascontiguousarray(vertices[start : start + chunk], np.float32))
        if inset > 0:
            grad = _sigma_gradient(field, pts, step).float().cpu()
            norm = grad.norm(dim=-1, keepdim=True)
            direction = torch.where(norm > 1e-6, grad / norm.clamp(min=1e-12), 0.0)
            pts = pts + inset * direction
        rgb = field(pts[None])["rgb"][0].float().clamp(0, 1).cpu()
        out[start : start + len(pts)] = (rgb * 255 + 0.5).to(torch.uint8).numpy()
    return out


def vertex_colors(
    G: Any,
    ws: torch.Tensor,
    vertices: np.ndarray,
    inset: float = 0.0,
    noise_mode: str = "const",
    chunk: int = 2**16,
) -> np.ndarray:
    """uint8 ``[V, 3]`` colours of ``G``'s field for ``ws [1, num_ws, w_dim]`` at world
    ``vertices [V, 3]`` (see :func:`field_colors` for ``inset``)."""
    field = make_field(G, ws, noise_mode)
    return field_colors(field, vertices, inset, step=max(inset, 1e-3), chunk=chunk)


def _drop_unused(vertices, faces, colors):
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    colors = None if colors is None else colors[used]
    return vertices[used], remap[faces], colors


def _largest_component(mesh: Mesh) -> Mesh:
    import trimesh

    # Components of the vertex graph (faces sharing a vertex are connected).
    edges = np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]]])
    labels = trimesh.graph.connected_component_labels(edges, node_count=mesh.num_vertices)
    face_labels = labels[mesh.faces[:, 0]]
    biggest = np.bincount(face_labels).argmax()
    faces = mesh.faces[face_labels == biggest]
    return Mesh(*_drop_unused(mesh.vertices, faces, mesh.colors))


def _cluster(mesh: Mesh, cell: float) -> Mesh:
    """Vertex clustering: merge all vertices in each ``cell``-sized cube into their mean."""
    keys = np.floor(mesh.vertices / cell).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n = len(counts)
    verts = np.stack([np.bincount(inverse, mesh.vertices[:, k], n) for k in range(3)], 1)
    verts /= counts[:, None]
    colors = None
    if mesh.colors is not None:
        sums = np.stack([np.bincount(inverse, mesh.colors[:, k], n) for k in range(3)], 1)
        colors = np.round(sums / counts[:, None]).astype(np.uint8)
    faces = inverse[mesh.faces]
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[ok]
    # The same triangle may now appear several times (either winding): keep one.
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(first)]
    return Mesh(*_drop_unused(verts, faces, colors))


def _decimate(mesh: Mesh, target_faces: int) -> Mesh:
    if mesh.num_faces <= target_faces:
        return mesh
    try:  # trimesh's quadric decimation needs the optional fast_simplification package
        import fast_simplification  # noqa: F401

        simplified = mesh.to_trimesh().simplify_quadric_decimation(face_count=target_faces)
        # Quadric decimation moves vertices and drops colours; callers re-query them.
        return Mesh(np.asarray(simplified.vertices), np.asarray(simplified.faces))
    except ImportError:
        pass
    # Fallback without extra packages: vertex clustering. A surface has about 2 faces per
    # vertex and vertices ∝ 1/cell², so start from that estimate and grow until it fits.
    a, b = mesh.vertices[mesh.faces[:, 0]], mesh.vertices[mesh.faces[:, 1]]
    cell = float(np.linalg.norm(a - b, axis=1).mean()) * np.sqrt(mesh.num_faces / target_faces)
    out = _cluster(mesh, cell)
    for _ in range(30):
        if out.num_faces <= target_faces:
            break
        cell *= 1.15
        out = _cluster(mesh, cell)
    return out


def clean_mesh(
    mesh: Mesh, largest_component: bool = False, target_faces: int | None = None
) -> Mesh:
    """Optional cleanup: keep only the largest connected piece (drops floaters), then
    decimate to at most ``target_faces`` faces (quadric decimation when trimesh's
    ``fast_simplification`` backend is installed, else vertex clustering, which averages
    colours per cluster). An empty mesh comes back unchanged."""
    if mesh.num_faces == 0:
        return mesh
    if largest_component:
        mesh = _largest_component(mesh)
    if target_faces is not None:
        if target_faces < 4:
            raise ValueError(f"target_faces must be at least 4, got {target_faces}")
        mesh = _decimate(mesh, int(target_faces))
    return mesh


def auto_level(G: Any, ws: torch.Tensor, probe: int = 64) -> float:
    """The surface level for ``level: auto``: :data:`DEFAULT_LEVEL` when the density of
    ``ws`` passes twice that on a ``probe``³ grid, else half its peak (young models may not
    reach EG3D's level yet)."""
    peak = float(density_grid(G, ws, probe).max())
    return DEFAULT_LEVEL if peak > 2 * DEFAULT_LEVEL else round(0.5 * peak, 4)


def extract_mesh(
    G: Any,
    ws: torch.Tensor,
    resolution: int = 256,
    level: float = DEFAULT_LEVEL,
    *,
    bounds: float | None = None,
    border: str = "zero",
    chunk: int = 2**18,
    colors: bool = True,
    color_inset: float = 0.5,
    largest_component: bool = False,
    target_faces: int | None = None,
    noise_mode: str = "const",
    progress: bool = False,
) -> Mesh:
    """Coloured mesh of ``G``'s field for one latent ``ws [1, num_ws, w_dim]``.

    ``resolution``³ density samples over the cube of edge ``bounds`` (default ``G.box_size``),
    marching cubes at ``level`` (module docstring), vertices in world units.
    ``color_inset``: colours are read ``color_inset`` voxels inside the surface along ∇σ
    (0: at the vertex). ``largest_component`` / ``target_faces``: see :func:`clean_mesh`.
    """
    bounds = float(G.box_size if bounds is None else bounds)
    field = make_field(G, ws, noise_mode)  # planes built once for the grid and the colours
    grid = field_grid(field, resolution, bounds, chunk, progress, border, ws.device)
    mesh = grid_to_mesh(grid, level, bounds)
    del grid  # the N³ array is the biggest thing alive; free it before colouring
    mesh = clean_mesh(mesh, largest_component, target_faces)
    if colors and mesh.num_vertices:
        h = voxel_size(resolution, bounds)
        mesh.colors = field_colors(field, mesh.vertices, color_inset * h, step=h / 2)
    return mesh
