"""export/: density grids, world-space coloured meshes, writers, edit geometry, and the
silhouette test (the exported mesh and the neural render of a real tri-plane G agree)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_EG3D
from fields import AXES, CENTRE, ellipsoid_eg3d

from export import (
    Mesh,
    clean_mesh,
    density_grid,
    extract_mesh,
    grid_to_mesh,
    heatmap_mesh,
    mesh_distance,
    mesh_silhouette,
    read_mesh,
    region_change,
    vertex_colors,
    write_mesh,
    write_ply,
)
from link_core.data.cameras import orbit_labels
from link_core.link import Box3DRegion

LEVEL = 10.0


class SphereField(torch.nn.Module):
    """An analytic 3-D generator: a ball of ``radius`` around ``centre`` in the unit box.

    σ = max(0, 10 + slope·(radius − |p − centre|)) is linear across the surface, so the
    level-10 set is exactly the sphere and marching cubes' linear interpolation is exact up
    to the grid; rgb = (x + 0.5, 0.5, 0.5 − x): red follows x. ``radius`` larger than the
    box fills it. Counts ``planes`` calls to check they are built once per export.
    """

    box_size = 1.0
    is_3d = True

    def __init__(self, radius=0.3, centre=(0.0, 0.0, 0.0), slope=1000.0):
        super().__init__()
        self.radius, self.slope = radius, slope
        self.register_buffer("centre", torch.tensor(centre))
        self.planes_calls = 0

    def planes(self, ws, noise_mode="const"):
        self.planes_calls += 1
        return ws.new_ones(1)

    def sample_mixed(self, points, ws, planes=None):
        r = (points - self.centre).norm(dim=-1, keepdim=True)
        sigma = (LEVEL + self.slope * (self.radius - r)).clamp(min=0)
        sigma = sigma * (points.abs() <= self.box_size / 2).all(-1, keepdim=True)
        x = points[..., :1]
        rgb = torch.cat([(x + 0.5), torch.full_like(x, 0.5), 0.5 - x], -1).clamp(0, 1)
        return {"sigma": sigma, "sigma_raw": sigma, "rgb": rgb, "features": rgb}


WS = torch.zeros(1, 2, 4)


def sphere_mesh(radius=0.3, subdivisions=3, colors=True) -> Mesh:
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions, radius)
    rgb = None
    if colors:
        rgb = np.clip((ico.vertices + 0.5) * 255, 0, 255).astype(np.uint8)
    return Mesh(ico.vertices, ico.faces, rgb)


# ----------------------------------------------------------------------------------------
# Grids and meshes of an analytic field.


def test_sphere_mesh_is_in_world_units_with_axes_and_colours_right():
    centre = np.array([0.1, -0.05, 0.02], np.float32)  # off-centre: catches swapped axes
    G = SphereField(centre=tuple(centre))
    n = 48
    mesh = extract_mesh(G, WS, resolution=n)
    assert G.planes_calls == 1  # planes built once for the grid and the colours
    voxel = 1.0 / n
    r = np.linalg.norm(mesh.vertices - centre, axis=1)
    assert mesh.num_vertices > 1000 and mesh.vertices.dtype == np.float32
    assert np.abs(r - 0.3).max() < voxel
    assert np.abs(mesh.vertices.mean(0) - centre).max() < voxel / 4
    # Colours follow x (read half a voxel inside, so within about 3 levels of 255).
    expected_red = (mesh.vertices[:, 0] + 0.5) * 255
    assert np.abs(mesh.colors[:, 0] - expected_red).max() < 4
    assert np.all(mesh.colors[:, 1] == 128)
    # Outward winding: positive volume, the right one, and a closed surface.
    tm = mesh.to_trimesh()
    assert tm.is_watertight
    assert tm.volume == pytest.approx(4 / 3 * math.pi * 0.3**3, rel=0.02)


class TwoToneSphere(SphereField):
    """Red inside the sphere, blue outside: the colour flips exactly at the surface."""

    def sample_mixed(self, points, ws, planes=None):
        out = super().sample_mixed(points, ws, planes)
        inside = (points - self.centre).norm(dim=-1, keepdim=True) < self.radius
        red, blue = points.new_tensor([1.0, 0.0, 0.0]), points.new_tensor([0.0, 0.0, 1.0])
        out["rgb"] = torch.where(inside, red, blue)
        return out


def test_colours_are_read_inside_the_surface_along_the_density_gradient():
    G = TwoToneSphere(centre=(0.05, 0.1, 0.0))
    mesh = extract_mesh(G, WS, resolution=32, color_inset=0.5)
    assert np.all(mesh.colors == [255, 0, 0])  # every query landed inside
    # The public helper does the same; far outside, the field is blue.
    inward = vertex_colors(G, WS, mesh.vertices, inset=1 / 32)
    assert np.all(inward == [255, 0, 0])
    far_out = vertex_colors(G, WS, mesh.vertices * 0 + np.float32([0.45, 0.45, 0.45]))
    assert np.all(far_out == [0, 0, 255])


def test_density_grid_is_independent_of_chunking_and_samples_voxel_centres():
    G = SphereField(centre=(0.05, 0.0, -0.1))
    grids = [density_grid(G, WS, 20, chunk=c) for c in (1000, 4097, 2**18)]
    for g in grids[1:]:
        assert np.array_equal(grids[0], g)
    assert grids[0].shape == (20, 20, 20) and grids[0].dtype == np.float32
    assert G.planes_calls == 3  # once per grid, not once per chunk
    # Sample [i, j, k] sits at the centre of voxel (i, j, k), indexed [x, y, z].
    i, j, k = 13, 9, 4
    p = (torch.tensor([[i, j, k]], dtype=torch.float32) + 0.5) / 20 - 0.5
    expected = G.sample_mixed(p[None], WS)["sigma"].item()
    assert grids[0][i, j, k] == pytest.approx(expected, rel=1e-6)


def test_border_zero_closes_a_field_that_fills_the_box():
    G = SphereField(radius=5.0)  # σ > level everywhere in the box
    n = 16
    assert grid_to_mesh(density_grid(G, WS, n, border="keep"), LEVEL, 1.0).num_faces == 0
    grid = density_grid(G, WS, n, border="zero")
    assert grid[0].max() == 0 and grid[:, -1].max() == 0 and grid[..., 0].max() == 0
    mesh = grid_to_mesh(grid, LEVEL, 1.0)
    tm = mesh.to_trimesh()
    assert tm.is_watertight and tm.volume > 0
    # The surface crosses between the zeroed centres (0.5 − h/2) and the next ones.
    h = 1.0 / n
    half = np.abs(mesh.vertices).max(0)
    assert np.all((half > 0.5 - 1.5 * h) & (half < 0.5 - 0.5 * h))


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="border"):
        density_grid(SphereField(), WS, 8, border="open")
    with pytest.raises(ValueError, match=r"\[1, num_ws, w_dim\]"):
        density_grid(SphereField(), torch.zeros(2, 2, 4), 8)
    with pytest.raises(TypeError, match="sample_mixed"):
        density_grid(torch.nn.Linear(1, 1), WS, 8, bounds=1.0)


def test_empty_field_gives_an_empty_mesh():
    mesh = extract_mesh(SphereField(radius=-1.0), WS, resolution=12)
    assert mesh.num_vertices == 0 and mesh.num_faces == 0


def test_cleanup_keeps_the_largest_piece_and_decimates():
    big, small = sphere_mesh(0.3), sphere_mesh(0.05)
    small.vertices += np.float32([0.4, 0.0, 0.0])
    both = Mesh(
        np.concatenate([big.vertices, small.vertices]),
        np.concatenate([big.faces, small.faces + big.num_vertices]),
        np.concatenate([big.colors, small.colors]),
    )
    kept = clean_mesh(both, largest_component=True)
    assert kept.num_vertices == big.num_vertices and kept.num_faces == big.num_faces
    assert np.allclose(kept.vertices, big.vertices) and np.array_equal(kept.colors, big.colors)
    small_mesh = clean_mesh(both, largest_component=True, target_faces=300)
    assert 50 < small_mesh.num_faces <= 300
    r = np.linalg.norm(small_mesh.vertices, axis=1)
    assert np.abs(r - 0.3).max() < 0.05  # still the same sphere, coarser


# ----------------------------------------------------------------------------------------
# Writers.


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_writers_round_trip_vertices_faces_and_colours(tmp_path, suffix):
    mesh = sphere_mesh()
    path = write_mesh(mesh, tmp_path / f"sphere{suffix}")
    back = read_mesh(path)
    assert back.num_vertices == mesh.num_vertices and back.num_faces == mesh.num_faces
    assert np.abs(back.vertices - mesh.vertices).max() < 1e-5
    assert np.array_equal(back.colors, mesh.colors)
    assert sorted(os.listdir(tmp_path)) == [f"sphere{suffix}"]  # no temporary files left


def test_ply_is_binary_with_uchar_colours_and_matches_plyfiles_own_writer(tmp_path):
    from plyfile import PlyData, PlyElement

    mesh = sphere_mesh()
    ours = write_ply(mesh, tmp_path / "m.ply").read_bytes()
    ply = PlyData.read(str(tmp_path / "m.ply"))
    assert not ply.text
    v = ply["vertex"].data
    assert v.dtype["red"] == np.uint8 and v.dtype["x"] == np.float32
    assert np.array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), mesh.colors)
    assert np.array_equal(np.stack(ply["face"].data["vertex_indices"]), mesh.faces)
    # Byte for byte what plyfile's (row-by-row) writer makes of the same arrays.
    vertex = np.empty(mesh.num_vertices, dtype=v.dtype)
    for i, name in enumerate("xyz"):
        vertex[name] = mesh.vertices[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        vertex[name] = mesh.colors[:, i]
    face = np.empty(mesh.num_faces, dtype=[("vertex_indices", "<i4", (3,))])
    face["vertex_indices"] = mesh.faces
    path = tmp_path / "reference.ply"
    PlyData(
        [
            PlyElement.describe(vertex, "vertex"),
            PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"}),
        ],
        text=False,
        byte_order="<",
    ).write(str(path))
    assert ours == path.read_bytes()


def test_unknown_format_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown format 'stl'.*\.ply, \.obj, \.glb"):
        write_mesh(sphere_mesh(), tmp_path / "m.stl")
    assert not list(tmp_path.iterdir())


def test_writers_are_atomic(tmp_path, monkeypatch):
    import export.writers

    mesh = sphere_mesh()
    for name in ("m.ply", "m.obj", "m.glb"):
        write_mesh(mesh, tmp_path / name)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_fdopen = os.fdopen

    class DiskFull:
        """A file that takes a few bytes, then fails: a full disk in the middle of a write."""

        def __init__(self, *args, **kwargs):
            self.f = real_fdopen(*args, **kwargs)

        def write(self, data):
            self.f.write(bytes(data)[:10])
            raise OSError("disk full")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(export.writers.os, "fdopen", DiskFull)
    small = sphere_mesh(0.1, subdivisions=1)
    for name in ("m.ply", "m.obj", "m.glb", "new.ply", "new.obj", "new.glb"):
        with pytest.raises(OSError, match="disk full"):
            write_mesh(small, tmp_path / name)
    # Old files untouched; no half-written new file and no temporary left behind.
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ----------------------------------------------------------------------------------------
# Comparing meshes.


def test_mesh_distance_to_itself_and_to_a_scaled_copy():
    a = sphere_mesh(0.3)
    assert np.all(mesh_distance(a, a) == 0)
    b = Mesh(a.vertices * 1.1, a.faces)
    d = mesh_distance(a, b, chunk=100)  # chunked queries give the same answer
    assert d.shape == (a.num_vertices,)
    assert np.allclose(d, 0.03, atol=1e-5)  # every vertex of the sphere moved 0.1·r out
    assert np.allclose(mesh_distance(b, a), 0.03, atol=1e-5)


def test_region_change_and_heatmap_of_an_edit_that_moves_the_top_half():
    original = sphere_mesh(0.3, subdivisions=4)
    v = original.vertices.copy()
    top = v[:, 1] > 0
    v[top, 1] += 0.05  # only the top half moves (it opens at the equator: fine)
    edited = Mesh(v, original.faces, original.colors)
    region = Box3DRegion(((-1.0, 0.0, -1.0, 1.0, 1.0, 1.0),))
    change = region_change(original, edited, region)
    assert change["mean_out"] < 1e-6 and change["max_out"] < 1e-6
    assert 0.01 < change["mean_in"] <= 0.05 + 1e-6
    assert change["num_in"] + change["num_out"] == 2 * original.num_vertices

    d = mesh_distance(original, edited)
    heat = heatmap_mesh(edited, d, vmax=0.05)
    assert heat.num_vertices == edited.num_vertices and heat.colors.dtype == np.uint8
    still, moved = heat.colors[~top].astype(int), heat.colors[top & (d > 0.04)].astype(int)
    assert still.sum(1).max() < 30  # unchanged: (near) black
    assert moved.sum(1).min() > 400  # moved the full vmax: bright yellow


# ----------------------------------------------------------------------------------------
# The silhouette test: a real tiny EG3D whose field is a known ellipsoid.


def test_random_tiny_eg3d_exports_through_its_own_planes():
    from eg3d_link import build
    from link_core.data.cameras import frontal_labels
    from link_core.train.config import load_config

    torch.manual_seed(0)
    G, _ = build(load_config(None, [*TINY, *TINY_EG3D]).model)
    G.eval()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim), frontal_labels(1, G.camera))
    grid = density_grid(G, ws, 16, chunk=999)
    direct = G.sample_mixed(torch.zeros(1, 1, 3) + 1 / 32, ws)["sigma"].item()  # voxel (8,8,8)
    assert grid[8, 8, 8] == pytest.approx(direct, rel=1e-5)
    level = float(np.median(grid[1:-1, 1:-1, 1:-1]))  # random σ rarely reaches 10
    mesh = extract_mesh(G, ws, resolution=16, level=level)
    assert mesh.num_faces > 0 and mesh.colors.dtype == np.uint8
    assert np.abs(mesh.vertices).max() <= G.box_size / 2


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum().clamp(min=1))


def test_silhouette_of_the_exported_mesh_matches_the_neural_render():
    G = ellipsoid_eg3d()
    ws = torch.zeros(1, G.num_ws, G.w_dim)
    mesh = extract_mesh(G, ws, resolution=64, largest_component=True)
    # The field itself: the level set is the ellipsoid (within a voxel and the planes' error).
    rho = np.linalg.norm((mesh.vertices - np.float32(CENTRE)) / np.float32(AXES), axis=1)
    assert mesh.num_faces > 1000 and np.abs(rho - 1).max() < 0.1

    size = 48
    c = orbit_labels(torch.tensor([0.0, 0.9, -2.2]), torch.tensor([0.0, 0.35, -0.25]), G.camera)
    with torch.no_grad():
        out = G.synthesis(ws.expand(3, -1, -1), c, noise_mode="const", render_resolution=size)
    far = G.render_opts.ray_end
    neural = out["image_depth"][:, 0] < far - 0.05
    alpha = 1 - (out["image_raw"].mean(1) + 1) / 2  # black object on white: 1 − brightness
    assert iou(neural, alpha > 0.5) > 0.9  # depth and opacity tell the same foreground
    sil = mesh_silhouette(mesh, c, size)
    assert sil.shape == (3, size, size)
    scores = [iou(sil[i], neural[i]) for i in range(3)]
    assert min(scores) > 0.9, scores
    # A mirrored or transposed mesh would not match: the test can fail.
    assert iou(sil[0].flip(-1), neural[0]) < 0.85
    assert iou(sil[0].transpose(0, 1), neural[0]) < 0.85
