"""Export: density grids, coloured world-space meshes, mesh files, and edit geometry.

Sees only ``link_core`` and the generator interface: any ``G`` with
``sample_mixed(points, ws, planes=None)`` and ``box_size`` (``planes(ws, noise_mode)`` is
used when present).

>>> mesh = extract_mesh(G, ws, resolution=256)        # doctest: +SKIP
>>> write_mesh(mesh, "out/original.glb")              # doctest: +SKIP
"""

from export.compare import heatmap_mesh, mesh_distance, mesh_silhouette, region_change
from export.grid import BORDERS, density_grid, field_grid, make_field, voxel_size, voxel_to_world
from export.mesh import (
    DEFAULT_LEVEL,
    Mesh,
    auto_level,
    clean_mesh,
    extract_mesh,
    field_colors,
    grid_to_mesh,
    vertex_colors,
)
from export.writers import FORMATS, read_mesh, write_glb, write_mesh, write_obj, write_ply

__all__ = [
    "BORDERS",
    "DEFAULT_LEVEL",
    "FORMATS",
    "Mesh",
    "auto_level",
    "clean_mesh",
    "density_grid",
    "extract_mesh",
    "field_colors",
    "field_grid",
    "grid_to_mesh",
    "heatmap_mesh",
    "make_field",
    "mesh_distance",
    "mesh_silhouette",
    "read_mesh",
    "region_change",
    "vertex_colors",
    "voxel_size",
    "voxel_to_world",
    "write_glb",
    "write_mesh",
    "write_obj",
    "write_ply",
]
