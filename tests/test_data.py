"""Tests of link_core.data: toy faces, folder/zip data sets, helpers."""

from __future__ import annotations

import copy
import json
import os
import zipfile

import cv2
import numpy as np
import pytest
import torch

from link_core.data import ImageFolderDataset, image_to_float, write_dataset_zip
from link_core.errors import DataError
from link_core.synth import TOYFACE_BOXES, TOYFACE_PARTS, ToyFaces, open_dataset


def _box_slice(box: tuple[float, float, float, float], r: int) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    return slice(round(y0 * r), round(y1 * r)), slice(round(x0 * r), round(x1 * r))


def _png(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def _write_images(folder, sizes: dict[str, int]) -> None:
    for name, size in sizes.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_png(np.full((size, size, 3), 100, np.uint8)))


# -- toy faces ----------------------------------------------------------------------------


def test_toyfaces_deterministic_and_varied():
    a, b = ToyFaces(32, num_images=8, seed=3), ToyFaces(32, num_images=8, seed=3)
    for i in range(4):
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert torch.equal(a[i]["mask"], b[i]["mask"])
    assert not torch.equal(a[0]["image"], a[1]["image"])
    assert not torch.equal(a[0]["image"], ToyFaces(32, num_images=8, seed=4)[0]["image"])
    # A cached read equals a fresh draw.
    assert torch.equal(a[2]["image"], ToyFaces(32, num_images=8, seed=3)[2]["image"])


def test_toyfaces_shapes_and_attributes():
    ds = ToyFaces(16, num_images=5)
    item = ds[4]
    assert len(ds) == 5
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.uint8
    assert item["mask"].shape == (1, 16, 16) and item["mask"].dtype == torch.uint8
    assert item["label"].shape == (0,) and item["label"].dtype == torch.float32
    assert (ds.resolution, ds.num_channels, ds.label_dim) == (16, 3, 0)
    assert ds.has_masks and ds.part_names == TOYFACE_PARTS
    assert TOYFACE_PARTS[:5] == ("background", "face", "left_eye", "right_eye", "mouth")
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(DataError, match="power of two"):
        ToyFaces(24)


@pytest.mark.parametrize("res", [32, 64])
def test_toyface_part_masks_cover_exactly_the_boxes(res):
    ds = ToyFaces(res, num_images=4, seed=1)
    for i in range(4):
        mask = ds[i]["mask"][0].numpy()
        for name, box in TOYFACE_BOXES.items():
            pid = TOYFACE_PARTS.index(name)
            expected = np.zeros_like(mask, dtype=bool)
            expected[_box_slice(box, res)] = True
            assert np.array_equal(mask == pid, expected), (name, i)
        # The face surrounds the patches: every pixel touching a patch's outside is face.
        ys, xs = _box_slice(TOYFACE_BOXES["left_eye"], res)
        assert (mask[ys.start - 1, xs] == 1).all() and (mask[ys, xs.start - 1] == 1).all()
        assert (mask == 0).any() and (mask == 1).any()


def test_toyface_parts_vary_independently_and_stay_in_their_patch():
    res, n = 32, 48
    ds = ToyFaces(res, num_images=n, seed=0)
    images = torch.stack([ds[i]["image"] for i in range(n)]).float() / 255  # [N,3,H,W]
    masks = torch.stack([ds[i]["mask"][0] for i in range(n)])
    ys, xs = _box_slice(TOYFACE_BOXES["left_eye"], res)
    # Patch fill colour: the patch's corner pixel (the eye never reaches the corner).
    eye_fill = images[:, :, ys.start, xs.start]
    face_ring = images[:, :, ys.start - 1, xs.start]  # just outside the box: the face
    my, mx = _box_slice(TOYFACE_BOXES["mouth"], res)
    mouth_fill = images[:, :, my.start, mx.start]
    assert eye_fill.std(0).mean() > 0.15  # diverse colours
    # The pixel outside the border is never the eye's (it is the face, of its own colour).
    assert (masks[:, ys.start - 1, xs] == 1).all()
    assert not torch.allclose(eye_fill, face_ring, atol=0.02)
    # Independence: correlation between part colours is small (weak check, n = 48).
    for other in (face_ring, mouth_fill):
        c = torch.corrcoef(torch.stack([eye_fill[:, 0], other[:, 0]]))[0, 1]
        assert abs(c) < 0.45
    # Every pixel of a row just outside the patch has the same colour as its neighbour
    # farther out along the border (flat face colour, no antialiased eye bleeding out).
    row_out = images[:, :, ys.start - 1, xs]
    face_id = masks[:, ys.start - 1, xs] == 1
    assert face_id.all()
    assert (row_out.amax(-1) - row_out.amin(-1)).max() < 0.02


def test_toyfaces_xflip_swaps_eyes():
    ds = ToyFaces(32, num_images=3, xflip=True)
    assert len(ds) == 6
    a, b = ds[1], ds[4]
    assert torch.equal(b["image"], a["image"].flip(-1))
    left = TOYFACE_PARTS.index("left_eye")
    flipped = b["mask"][0].numpy()
    assert np.array_equal(flipped == left, ds[1]["mask"][0].numpy() == left)


def test_image_to_float():
    x = torch.tensor([0, 255, 128], dtype=torch.uint8)
    y = image_to_float(x)
    assert y.dtype == torch.float32
    assert y[0] == -1 and y[1] == 1 and abs(y[2]) < 0.01


# -- folders and zips ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_write_and_read_round_trip(tmp_path, kind):
    src = ToyFaces(16, num_images=6, seed=2)
    out = tmp_path / ("set.zip" if kind == "zip" else "set")
    write_dataset_zip(src, out, num=5)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # no temp left over
    ds = ImageFolderDataset(out, resolution=16)
    ds.validate()
    assert len(ds) == 5 and ds.has_masks and ds.part_names == TOYFACE_PARTS
    assert ds.label_dim == 0
    for i in range(5):
        a, b = src[i], ds[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert b["label"].shape == (0,)
    # Survives the copy a DataLoader worker makes (our own object, via __getstate__): the
    # zip is reopened lazily instead of sharing an open handle.
    ds2 = copy.deepcopy(ds)
    assert torch.equal(ds2[3]["image"], src[3]["image"])
    ds.close()


def test_round_trip_labels_and_xflip(tmp_path):
    class Labelled(ToyFaces):
        def __init__(self):
            super().__init__(16, num_images=3)
            self.label_dim = 3

        def _load(self, i):
            image, mask, _ = super()._load(i)
            return image, mask, np.array([i, 0.5, -1.0], np.float32)

    out = write_dataset_zip(Labelled(), tmp_path / "lab.zip")
    ds = ImageFolderDataset(out, xflip=True)
    assert ds.label_dim == 3 and len(ds) == 6
    assert torch.equal(ds[2]["label"], torch.tensor([2, 0.5, -1.0]))
    assert torch.equal(ds[5]["label"], ds[2]["label"])
    assert torch.equal(ds[5]["image"], ds[2]["image"].flip(-1))
    assert not ImageFolderDataset(out, use_labels=False, use_masks=False).has_masks
    # Labels alone (what training draws for its fakes) without decoding the images.
    ds._load = None  # a label read that decoded an image would fail here
    assert torch.equal(ds.label(2), torch.tensor([2, 0.5, -1.0]))
    assert torch.equal(ds.label(5), ds.label(2)) and torch.equal(ds.label(-1), ds.label(2))


def test_labels_alone_equal_the_items_labels_mirrored_cameras_included(tmp_path):
    from link_core.synth import SynthDataset

    synth = SynthDataset("heads", num=3, resolution=16)
    out = write_dataset_zip(synth, tmp_path / "heads.zip")
    for ds in (synth, ImageFolderDataset(out, xflip=True), ToyFaces(16, num_images=2)):
        for i in range(len(ds)):
            assert torch.equal(ds.label(i), ds[i]["label"]), (type(ds).__name__, i)


def test_class_index_labels_one_hot_and_grayscale(tmp_path):
    (tmp_path / "a.png").write_bytes(_png(np.full((8, 8), 7, np.uint8)))  # grayscale
    (tmp_path / "b.png").write_bytes(_png(np.zeros((8, 8, 4), np.uint8)))  # with alpha
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["a.png", 2], ["b.png", 0]]}))
    ds = ImageFolderDataset(tmp_path)
    assert ds.label_dim == 3 and not ds.has_masks and ds.part_names == ()
    assert ds[0]["label"].tolist() == [0, 0, 1] and "mask" not in ds[0]
    assert ds[0]["image"].shape == (3, 8, 8) and int(ds[0]["image"][2, 0, 0]) == 7


def test_corrupt_image_in_zip_names_it(tmp_path):
    out = tmp_path / "data.zip"
    write_dataset_zip(ToyFaces(16, num_images=3), out)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(bad, "w") as zout:
        for n in zin.namelist():
            data = zin.read(n)
            if n == "00000/img00000001.png":
                data = data[:30] + b"\0" * 40  # a header, then garbage
            zout.writestr(n, data)
    ds = ImageFolderDataset(bad)
    ds[0]
    with pytest.raises(DataError, match=r"corrupt image '00000/img00000001.png' in .*bad.zip"):
        ds[1]
    with pytest.raises(DataError, match=r"1 bad image.*img00000001"):
        ds.validate()


def test_validate_lists_all_bad_files(tmp_path):
    _write_images(tmp_path, {"a.png": 8})
    for n in "bcd":
        (tmp_path / f"{n}.jpg").write_bytes(b"not an image")
    ds = ImageFolderDataset(tmp_path)
    with pytest.raises(DataError, match=r"3 bad image.*'b.jpg'.*'c.jpg'.*'d.jpg'"):
        ds.validate()


def test_mixed_sizes(tmp_path):
    _write_images(tmp_path, {"a.png": 16, "b.png": 16, "c/d.png": 8})
    with pytest.raises(DataError, match=r"'c/d.png'.*8x8.*'a.png' is 16x16"):
        ImageFolderDataset(tmp_path)


def test_wrong_resolution_and_non_square(tmp_path):
    _write_images(tmp_path / "ok", {"a.png": 16})
    with pytest.raises(DataError, match="resolution 16.*resolution 32"):
        open_dataset(str(tmp_path / "ok"), 32)
    assert open_dataset(str(tmp_path / "ok"), 16).resolution == 16
    (tmp_path / "rect").mkdir()
    (tmp_path / "rect" / "a.png").write_bytes(_png(np.zeros((8, 16, 3), np.uint8)))
    with pytest.raises(DataError, match="square"):
        ImageFolderDataset(tmp_path / "rect")


def test_missing_empty_and_bad_paths(tmp_path):
    with pytest.raises(DataError, match="not found.*nope"):
        ImageFolderDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images.*empty"):
        ImageFolderDataset(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="directory or a .zip.*x.txt"):
        ImageFolderDataset(tmp_path / "x.txt")


def test_label_problems(tmp_path):
    _write_images(tmp_path, {"a.png": 8, "b.png": 8})
    meta = tmp_path / "dataset.json"
    meta.write_text(json.dumps({"labels": [["a.png", [1.0, 2.0]]]}))
    with pytest.raises(DataError, match=r"missing label for image 'b.png' in dataset.json"):
        ImageFolderDataset(tmp_path)
    meta.write_text(json.dumps({"labels": [["a.png", [1.0, 2.0]], ["b.png", [1.0]]]}))
    with pytest.raises(DataError, match=r"'b.png'.*1 values, expected 2"):
        ImageFolderDataset(tmp_path)
    meta.write_text("{not json")
    with pytest.raises(DataError, match="malformed dataset.json"):
        ImageFolderDataset(tmp_path)
    assert ImageFolderDataset(tmp_path, use_labels=False).label_dim == 0
    cams = [[n, [0.0] * 25] for n in ("a.png", "b.png")]
    meta.write_text(json.dumps({"labels": cams}))
    assert ImageFolderDataset(tmp_path).label_dim == 25


def test_mirrored_camera_sees_the_mirrored_world_as_the_flipped_image():
    from link_core.data.cameras import CameraSpec, orbit_labels, project
    from link_core.data.dataset import mirror_camera_label

    c = orbit_labels(torch.tensor([0.7, -2.0]), torch.tensor([0.3, -0.2]), CameraSpec())
    m = torch.from_numpy(np.stack([mirror_camera_label(x.numpy()) for x in c]))
    p = torch.rand(2, 5, 3) - 0.5
    uv, z = project(p, c)
    uv_m, z_m = project(p * torch.tensor([-1.0, 1.0, 1.0]), m)
    assert torch.allclose(uv_m[..., 0], 1 - uv[..., 0], atol=1e-5)  # u flips
    assert torch.allclose(uv_m[..., 1], uv[..., 1], atol=1e-5)
    assert torch.allclose(z_m, z, atol=1e-5)
    R = m[:, :16].reshape(2, 4, 4)[:, :3, :3]
    assert torch.allclose(torch.linalg.det(R), torch.ones(2), atol=1e-5)  # still a rotation


def test_missing_mask(tmp_path):
    _write_images(tmp_path, {"a.png": 8, "b.png": 8})
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(_png(np.zeros((8, 8), np.uint8)))
    with pytest.raises(DataError, match=r"missing part mask 'masks/b.png'"):
        ImageFolderDataset(tmp_path)
    assert not ImageFolderDataset(tmp_path, use_masks=False).has_masks


def test_open_dataset_builtin():
    ds = open_dataset("", 32, seed=5, num_images=10)
    assert isinstance(ds, ToyFaces) and len(ds) == 10 and ds.resolution == 32
