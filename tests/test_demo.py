"""The main job end to end (a tiny, seconds-long version of `make demo`) and its report
opened in headless Chromium: the videos decode and the WebGL mesh viewers draw."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import HEADS_3D

from export import read_mesh
from linkgan import part_quality
from linkgan.cli import main
from render.video import read_video

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",  # software WebGL
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's Chromium; `make test` installs it when missing (see the Makefile)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is needed: apt-get install chromium (make test does)"
    return path


def dump_dom(url: str, profile, budget_ms: int = 8000) -> str:
    """The page's DOM after its scripts ran (no driver needed: the page writes its state
    into data- attributes and #errors)."""
    result = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    tiny = [*HEADS_3D, "train.ckpt_every_minutes=10", "train.init="]  # tiny G: from scratch
    seen = "{box3d_seen: [-0.5, 0.0, -0.5, 0.5, 0.5, 0.5]}"  # in view: the editors compare
    tiny.append(f"link.links=[{{name: top, axes: [0, 4], region: {seen}}}]")
    sets = [a for o in tiny for a in ("--set", o)]
    argv = ["demo", "--kimg", "0.016", "--frames", "8", "--grid", "32", "--render-res", "16"]
    argv += ["--baseline", "--fid-num", "6", "--fid-repeats", "2", "--compare-num", "3"]
    argv += ["--out", str(out)]
    with pytest.MonkeyPatch.context() as mp:  # a small attribute classifier: seconds, not minutes
        mp.setattr(part_quality, "ATTRIBUTE_TRAIN", 64)
        mp.setattr(part_quality, "ATTRIBUTE_HELD_OUT", 32)
        assert main([*argv, *sets, "--no-progress"]) == 0
    return out


def test_demo_writes_grids_videos_meshes_metrics_and_a_report(demo_out, capsys):
    written = json.loads((demo_out / "demo.json").read_text())
    assert set(written) == {"report", "metrics", "run"}
    metrics = json.loads((demo_out / "metrics.json").read_text())
    assert set(metrics["link_mse"]["top"]) == {"image", "depth"}
    # --baseline: the same 16 images without the link loss, measured on the same seeds.
    assert metrics["unlinked"]["kimg"] == 0.016
    assert metrics["unlinked"]["link_mse"]["top"]["image"] != metrics["link_mse"]["top"]["image"]
    ratio = metrics["vs_unlinked"]["out_over_in_ratio_off_vs_on"]["top"]
    off, on = metrics["unlinked"]["link_mse"]["top"], metrics["link_mse"]["top"]
    assert ratio["depth"] == pytest.approx(off["depth"]["out_over_in"] / on["depth"]["out_over_in"])
    # Where the change inside falls short: the share per view range, which splits the mean.
    views, seen = on["image"]["edit_share_by_view"], on["image"]["seen_by_view"]
    assert set(views) == {"front", "side", "back"} and sum(seen.values()) > 0
    assert 0 <= on["image"]["edit_share_pooled"] <= 1
    assert 0 <= on["image"]["edit_escapes"] <= 1
    assert on["image"]["edit_share"] == pytest.approx(
        sum(v * seen[k] for k, v in views.items() if v is not None) / sum(seen.values())
    )
    escaped = on["image"]["edit_escapes_by_view"]
    assert on["image"]["edit_escapes"] == pytest.approx(
        sum(v * seen[k] for k, v in escaped.items() if v is not None) / sum(seen.values())
    )
    assert len(list((demo_out / "edits").glob("edit_seed*_top.png"))) == 3
    for name in ("top_turntable.mp4", "top_control.mp4"):
        assert read_video(demo_out / "videos" / name).shape[0] == 8
    meshes = demo_out / "meshes" / "top"
    for stem in ("original", "top_0", "top_0_heat", "top_1"):
        for suffix in (".ply", ".glb"):
            mesh = read_mesh(meshes / f"{stem}{suffix}")
            assert mesh.num_faces > 0 and mesh.colors is not None
    assert read_video(meshes / "turntable.mp4").shape[0] == 8 // 3  # meshes: a third
    # Quality per part for both runs, FID / KID with their spread over the repeats.
    for run in (metrics, metrics["unlinked"]):
        assert set(run["diversity"]["model"]["top"]) == {"image", "depth"}
        assert set(run["attributes"]["ratio"]) == {"hair", "nose", "skin"}
        assert len(run["fid_runs"]) == 2 and run["fid_std"] >= 0 and "kid_mean" in run
    assert metrics["diversity"]["data"]["top"]["image"] > 0
    html = (demo_out / "index.html").read_text()
    assert "inside: front / side / back" in html and "inside, pooled" in html
    assert "edits mostly outside" in html
    assert "Linked vs the same fine-tuning without the link (0.016 kimg)" in html
    assert "Quality, overall and per part" in html and "hair: hat" in html
    # The post-hoc editors beside the link (the tiny run starts from scratch: on itself).
    compared = json.loads((demo_out / "compare" / "compare.json").read_text())
    assert {r["method"] for r in compared["rows"]} == {
        "linkgan",
        "resefa",
        "stylespace",
        "sefa",
        "ganspace",
    }
    assert {r["map"] for r in compared["rows"]} == {"image", "depth", "mesh"}
    assert "LinkGAN against post-hoc local editors" in html
    assert "compare/compare_top.png" in html and "compare/compare_top.mp4" in html
    assert read_video(demo_out / "compare" / "compare_top.mp4").shape[0] == 8 // 4
    for ref in re.findall(r"(?:src|href)='([^']+)'", html):
        assert (demo_out / ref).is_file(), ref  # everything the page needs lies beside it
    # A second demo into the same folder is refused before anything is touched.
    capsys.readouterr()
    assert main(["demo", "--minutes", "0.05", "--out", str(demo_out)]) == 2
    assert "already holds a demo run" in capsys.readouterr().err
    assert main(["demo", "--kimg", "0", "--out", str(demo_out.parent / "new")]) == 2
    assert "--minutes / --kimg: need a budget > 0" in capsys.readouterr().err
    assert main(["demo", "--fid-num", "1", "--out", str(demo_out.parent / "new")]) == 2
    assert "--fid-num / --fid-repeats" in capsys.readouterr().err
    assert main(["demo", "--compare-num", "1", "--out", str(demo_out.parent / "new")]) == 2
    assert "--compare-num: need 0 (none) or >= 2" in capsys.readouterr().err
    assert not (demo_out.parent / "new").exists()


def test_report_opens_in_headless_chromium_with_videos_and_mesh_viewers(demo_out, tmp_path):
    dom = dump_dom((demo_out / "index.html").as_uri(), tmp_path / "profile")
    assert 'data-ready="1"' in dom.split("<body", 1)[1][:200]  # the page's load handler ran
    errors = re.search(r'<ul id="errors">(.*?)</ul>', dom, re.S).group(1)
    assert errors.strip() == "", errors
    videos = re.findall(r"<video[^>]*>", dom)
    assert len(videos) == 4 and all('data-loaded="1"' in v for v in videos), videos  # + compare
    canvases = re.findall(r"<canvas[^>]*>", dom)
    assert len(canvases) == 3
    for canvas in canvases:
        assert 'data-ready="1"' in canvas, canvas
        centre = re.search(r'data-centre="(\d+),(\d+),(\d+)"', canvas).groups()
        assert tuple(map(int, centre)) != (255, 255, 255), canvas  # the mesh is in view
