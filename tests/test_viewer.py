"""`linkgan view` (issue #9): a real uvicorn server on localhost, driven by Debian's headless
Chromium through Selenium (drag, resample, slide, export a mesh, save a turntable), plus
request-level tests of bad input and path traversal (4xx, and the server stays up)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import trimesh

from linkgan import api
from linkgan.viewer import create_app, parse_state
from render.video import read_video

MODEL = "base:heads_3d_links"  # quickstart_3d fine-tuned 13.5 kimg: eyes, nose, mouth linked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, editor) of a live server on 127.0.0.1."""
    import uvicorn

    out = tmp_path_factory.mktemp("view_out")
    editor = api.open_editor(MODEL, out)
    port = _free_port()
    config = uvicorn.Config(create_app(editor), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", editor
    srv.should_exit = True
    thread.join(timeout=10)


def _get(url: str, method: str = "GET") -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def _raw_get(base: str, path: str) -> tuple[int, bytes]:
    """A request whose path the client does not normalize (``..`` and ``%2f`` as sent)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def test_api_answers_frames_and_refuses_bad_parameters(server):
    base, editor = server
    status, body, _ = _get(f"{base}/api/info")
    info = json.loads(body)
    assert (
        status == 200
        and info["is_3d"]
        and [lk["name"] for lk in info["links"]]
        == [
            "eyes",
            "nose",
            "mouth",
        ]
    )
    status, body, headers = _get(f"{base}/api/frame?seed=3&yaw=40&view=geometry&size=64")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (64, 64, 3)

    bad = {
        "seed=abc": "seed: expected an integer",
        "seed=-1": "seed: expected an integer in",
        "yaw=nan": "yaw: expected a number in",
        "pitch=100": "pitch: expected a number in",
        "zoom=1e9": "zoom: expected a number in",
        "view=normals": "view: expected one of",
        "size=99999": "size: expected an integer in",
        "edits=ears:0:1": "edits: no link 'ears'",
        "edits=eyes:0:2": "t: expected a number in",
        "edits=eyes:0": "edits: expected LINK:SAMPLE:T",
        "focus=hat": "focus: no link 'hat'",
    }
    for query, message in bad.items():
        status, body, _ = _get(f"{base}/api/frame?{query}")
        assert status == 400, query
        assert message in json.loads(body)["error"], (query, body)
    status, body, _ = _get(f"{base}/api/mesh?grid=4")
    assert status == 400 and "grid" in json.loads(body)["error"]
    status, _, _ = _get(f"{base}/api/turntable")  # GET on a POST route
    assert status == 405

    # A frame that arrives while another renders is dropped (429), not queued.
    with editor.frame_lock:
        status, body, _ = _get(f"{base}/api/frame?seed=1")
    assert status == 429 and "dropped" in json.loads(body)["error"]
    assert _get(f"{base}/api/frame?seed=1&size=32")[0] == 200


def test_server_serves_nothing_outside_its_folders(server, tmp_path):
    base, editor = server
    secret = Path(api.__file__).resolve().parents[1] / "setup.py"
    needle = secret.read_bytes()[:40]
    (editor.out_dir.parent / "secret.txt").write_text("do not serve")
    for path in (
        "/static/../../setup.py",
        "/static/..%2f..%2fsetup.py",
        "/static/%2e%2e/%2e%2e/setup.py",
        "/outputs/../secret.txt",
        "/outputs/..%2fsecret.txt",
        "/outputs/%2e%2e%2fsecret.txt",
        "/setup.py",
        "/etc/passwd",
        "//etc/passwd",
    ):
        status, body = _raw_get(base, path)
        assert 400 <= status < 500, (path, status)
        assert needle not in body and b"do not serve" not in body and b"root:" not in body
    assert _get(f"{base}/api/info")[0] == 200  # still up
    assert _get(f"{base}/static/viewer.js")[0] == 200


def _browser(download_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    assert chromium and driver, "needs chromium + chromium-driver (make test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,760",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(download_dir), "download.prompt_for_download": False},
    )
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def _settled(driver, after: int, timeout: float = 60.0) -> int:
    """Wait until the page shows a frame newer than ``after`` with nothing left to send."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "return viewer.frames > arguments[0] && !viewer.inflight && !viewer.dirty", after
        )
    )
    return driver.execute_script("return viewer.frames")


def _shown(driver) -> np.ndarray:
    """The pixels of the frame the page shows, read back from the browser."""
    url = driver.execute_script(
        "const img = document.getElementById('frame');"
        "const c = document.createElement('canvas');"
        "c.width = img.naturalWidth; c.height = img.naturalHeight;"
        "c.getContext('2d').drawImage(img, 0, 0);"
        "return c.toDataURL('image/png');"
    )
    data = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1].astype(float)


def test_editor_in_headless_chromium(server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, editor = server
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _browser(downloads)
    try:
        driver.get(base + "/")
        n = _settled(driver, 0)
        assert driver.find_element(By.ID, "model").text == f"{MODEL} · eg3d · 32² · 3 link(s)"
        driver.find_element(By.ID, "outline").click()  # compare pixels without the outline
        n = _settled(driver, n)
        front = _shown(driver)

        frame = driver.find_element(By.ID, "frame")
        ActionChains(driver).click_and_hold(frame).move_by_offset(90, 20).release().perform()
        n = _settled(driver, n)
        state = driver.execute_script("return viewer.state")
        assert state["yaw"] > 20 and state["pitch"] > 0
        turned = _shown(driver)
        assert np.abs(turned - front).mean() > 1.0  # the head turned

        row = driver.find_element(By.CSS_SELECTOR, '.link[data-link="eyes"]')
        row.find_element(By.CSS_SELECTOR, "button.resample").click()
        n = _settled(driver, n)
        edited = _shown(driver)
        query = driver.execute_script("return query()")
        state = parse_state(dict(urllib.parse.parse_qsl(query)), editor.links, True)
        assert state.edits and state.focus == 0
        region = editor.render(state)["region"]
        mask = cv2.resize(region, edited.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0.5
        change = np.abs(edited - turned).mean(axis=2)
        inside, outside = change[mask].mean(), change[~mask].mean()
        assert inside > 2 * outside, (inside, outside)  # the eyes changed, the rest little

        slider = row.find_element(By.CSS_SELECTOR, "input.slider")
        slider.send_keys(*[Keys.ARROW_LEFT] * 50)  # t: 1 -> 0.5, one input event per key
        n = _settled(driver, n)
        assert driver.execute_script("return viewer.state.edits.eyes.t") == pytest.approx(0.5)
        half = _shown(driver)
        assert 0 < np.abs(half - turned)[mask].mean() and np.abs(half - edited)[mask].mean() > 0

        driver.find_element(By.ID, "view-depth").click()
        n = _settled(driver, n)
        assert np.abs(_shown(driver) - half).mean() > 1.0  # a depth map, not the RGB

        driver.find_element(By.ID, "export-mesh").click()
        deadline = time.time() + 120
        while not list(downloads.glob("*.glb")) or list(downloads.glob("*.crdownload")):
            assert time.time() < deadline, "no GLB was downloaded"
            time.sleep(0.2)
        (glb,) = downloads.glob("*.glb")
        mesh = trimesh.load(glb, force="mesh")
        assert len(mesh.vertices) > 100 and mesh.visual.vertex_colors is not None

        driver.find_element(By.ID, "save-turntable").click()
        deadline = time.time() + 300
        while not driver.find_elements(By.ID, "turntable-link"):
            assert time.time() < deadline, "no turntable was saved"
            time.sleep(0.2)
        (mp4,) = editor.out_dir.glob("turntable-*.mp4")
        assert len(read_video(mp4)) == 48

        driver.find_element(By.ID, "view-image").click()
        driver.find_element(By.ID, "outline").click()  # outline the region again
        _settled(driver, n)
        shot = tmp_path / "viewer.png"
        driver.save_screenshot(str(shot))
        if os.environ.get("LINKGAN_SCREENSHOT"):
            shutil.copy(shot, os.environ["LINKGAN_SCREENSHOT"])
        assert driver.execute_script("return document.getElementById('status').className") == ""
    finally:
        driver.quit()


def test_editor_on_a_w_file_keeps_the_latent_and_resamples_by_seed(tmp_path):
    from link_core.edit.latents import save_w

    G, _ = api.load_generator(MODEL)
    ws, c, _ = api.latent(G, 9)
    wfile = save_w(tmp_path / "inverted.safetensors", ws, c)
    editor = api.open_editor(MODEL, tmp_path / "out", wfile)
    assert editor.info()["w_file"] == "inverted"
    links = editor.links
    plain = [editor.frame(parse_state({"seed": str(s), "size": "32"}, links, True)) for s in (1, 2)]
    assert np.array_equal(plain[0], plain[1])  # the seed no longer picks the latent
    seed9 = api.open_editor(MODEL, tmp_path / "out").frame(
        parse_state({"seed": "9", "size": "32"}, links, True)
    )
    assert np.array_equal(plain[0], seed9)  # the file holds seed 9's w
    edits = [
        editor.frame(parse_state({"seed": str(s), "size": "32", "edits": "nose:0:1"}, links, True))
        for s in (1, 2)
    ]
    assert not np.array_equal(edits[0], edits[1])  # ... but the resamples
    assert editor.file_stem(parse_state({"edits": "nose:0:1"}, links, True)) == (
        "inverted_nose0-1.00"
    )
