"""``linkgan view``: a browser editor for linked models (issue #9).

A local Starlette app, served by uvicorn, with one page (``static/viewer/``) that renders
frames with the generator on request: drag to orbit, wheel to zoom, a seed, and per link a
"resample" button and a slider that moves continuously from the current w to the resampled
one (the paper's continuous control); RGB / depth / shaded geometry / change heat maps with
the link's region outlined; the coloured GLB of what is on screen; a turntable mp4.

API (every parameter is validated; bad input is a 4xx with ``{"error": "..."}``, never a
crash)::

    GET  /api/info                      the model: backbone, links, views, camera
    GET  /api/frame?STATE               PNG of the view. 429 while another frame renders:
                                        the page keeps one request in flight and sends only
                                        its newest state, so frames are dropped, not queued
    GET  /api/mesh?STATE&grid=N         coloured GLB of the edited object (3-D models)
    POST /api/turntable?STATE&frames=N  writes OUT/turntable-*.mp4, answers {"url": ...}
    GET  /outputs/NAME                  files this server wrote (nothing else is served)

    STATE: seed, yaw, pitch (degrees), zoom, view, size (display px), res (render px, 3-D),
           edits=LINK:SAMPLE:T,... (SAMPLE-th resample of LINK's axes, T in [0, 1]),
           focus=LINK (region outlined, heat maps), outline=0|1

Sees only the generator interface (``mapping``, ``synthesis``, ``sample_mixed``, ``camera``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from link_core.data.cameras import orbit_labels
from link_core.data.images import to_uint8
from link_core.errors import UserError
from link_core.interface import seeds_to_z, view_cameras
from link_core.link import Link, swap_axes
from link_core.metrics import edit_seeds
from render.heatmap import colorize, depth_to_rgb, difference_map, outline, upscale
from render.shading import shade

STATIC_DIR = Path(__file__).parent / "static" / "viewer"
VIEWS_2D = ("image", "heat")
VIEWS_3D = ("image", "depth", "geometry", "heat", "depth_heat")
NEEDS_ORIGINAL = ("heat", "depth", "depth_heat")
"""Views that compare the edit with the original (the others render the edit alone)."""
MAX_SEED = 2**31 - 1
MAX_SAMPLE = 9999
HEAT_MAX = 0.25
"""Heat-map scale: a mean absolute RGB change of a quarter of the range is the brightest
colour (fixed, so colours compare while the slider moves)."""


class BadRequest(ValueError):
    """A request parameter that cannot be used; the message names it."""


@dataclass(frozen=True)
class ViewState:
    """What the page shows: one latent, its edits, one camera, one kind of map."""

    seed: int = 0
    yaw: float = 0.0
    pitch: float = 0.0
    zoom: float = 1.0
    view: str = "image"
    size: int = 256
    res: int = 0
    edits: tuple[tuple[int, int, float], ...] = ()
    """(link index, resample index, t): ``w ← w + t·(resample − w)`` on the link's axes."""
    focus: int | None = None
    outline: bool = True


def _number(query: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{key}: expected a number, got {raw!r}") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise BadRequest(f"{key}: expected a number in [{lo:g}, {hi:g}], got {raw!r}")
    return value


def _integer(query: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    if not raw.strip().lstrip("-").isdigit():
        raise BadRequest(f"{key}: expected an integer, got {raw!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"{key}: expected an integer in [{lo}, {hi}], got {raw!r}")
    return value


def _link_index(links: list[Link], name: str, key: str) -> int:
    for i, link in enumerate(links):
        if link.name == name:
            return i
    known = ", ".join(lk.name for lk in links) or "none"
    raise BadRequest(f"{key}: no link {name!r} in this model (links: {known})")


def parse_state(query: Mapping[str, str], links: list[Link], is_3d: bool) -> ViewState:
    """A :class:`ViewState` from query parameters; :class:`BadRequest` names the bad one."""
    views = VIEWS_3D if is_3d else VIEWS_2D
    view = query.get("view") or "image"
    if view not in views:
        raise BadRequest(f"view: expected one of {', '.join(views)}, got {view!r}")
    edits = []
    for part in (query.get("edits") or "").split(","):
        if not part:
            continue
        fields = part.split(":")
        if len(fields) != 3:
            raise BadRequest(f"edits: expected LINK:SAMPLE:T, got {part!r}")
        index = _link_index(links, fields[0], "edits")
        sample = _integer({"sample": fields[1]}, "sample", 0, 0, MAX_SAMPLE)
        t = _number({"t": fields[2]}, "t", 0.0, 0.0, 1.0)
        edits.append((index, sample, t))
    focus = query.get("focus") or None
    return ViewState(
        seed=_integer(query, "seed", 0, 0, MAX_SEED),
        yaw=_number(query, "yaw", 0.0, -720.0, 720.0),
        pitch=_number(query, "pitch", 0.0, -85.0, 85.0),
        zoom=_number(query, "zoom", 1.0, 0.5, 3.0),
        view=view,
        size=_integer(query, "size", 256, 16, 1024),
        res=_integer(query, "res", 0, 0, 512) if is_3d else 0,
        edits=tuple(edits),
        focus=None if focus is None else _link_index(links, focus, "focus"),
        outline=(query.get("outline") or "1") not in ("0", "false"),
    )


class Editor:
    """Renders :class:`ViewState` s of one generator: frames, meshes and turntables.

    One frame renders at a time (``try_frame`` answers None while another is running, so a
    caller can drop rather than queue); meshes and videos have a lock of their own.
    """

    def __init__(
        self,
        G: torch.nn.Module,
        links: list[Link],
        out_dir: Path,
        name: str = "",
        w: torch.Tensor | None = None,
        w_name: str = "",
    ):
        """``w`` ``[1, num_ws, w_dim]`` (a w file from inversion) replaces the seed's latent;
        the seed then only chooses the resamples."""
        self.G = G
        self.w = w
        self.w_name = w_name
        self.links = links
        self.out_dir = Path(out_dir)
        self.name = name
        self.is_3d = G.is_3d
        self.spec = G.camera if G.is_3d else None
        self.frame_lock = threading.Lock()
        self.job_lock = threading.Lock()
        self._cache: dict[int, torch.Tensor] = {}

    def info(self) -> dict[str, Any]:
        """What the page needs to build its controls."""
        return {
            "name": self.name,
            "backbone": "eg3d" if self.is_3d else "stylegan2",
            "is_3d": self.is_3d,
            "views": list(VIEWS_3D if self.is_3d else VIEWS_2D),
            "resolution": int(self.G.img_resolution),
            "w_file": self.w_name or None,
            "links": [{"name": lk.name, "axes": [int(a) for a in lk.axes]} for lk in self.links],
        }

    # -- latents and cameras ---------------------------------------------------------------

    def _mapped(self, seed: int, c: torch.Tensor) -> torch.Tensor:
        """``[1, num_ws, w_dim]`` of a seed (a small cache: the page asks again and again)."""
        ws = self._cache.get(seed)  # c is always the still view: the seed is the key
        if ws is None:
            if len(self._cache) > 256:
                self._cache.clear()
            ws = self.G.mapping(seeds_to_z([seed], self.G.z_dim), c)
            self._cache[seed] = ws
        return ws

    def camera(self, state: ViewState) -> torch.Tensor:
        """``[1, c_dim]``: the orbit camera of ``state`` (3-D) or the still view (2-D)."""
        if not self.is_3d:
            return view_cameras(self.G, 1)
        spec = dataclasses.replace(self.spec, radius=self.spec.radius / state.zoom)
        yaw, pitch = (
            torch.tensor([math.radians(state.yaw)]),
            torch.tensor([math.radians(state.pitch)]),
        )
        return orbit_labels(yaw, pitch, spec)

    def latents(self, state: ViewState) -> tuple[torch.Tensor, torch.Tensor]:
        """(original ws, edited ws), both ``[1, num_ws, w_dim]``: each edit moves its link's
        axes a fraction t of the way to the mapped w of its resample seed (the seeds of
        ``linkgan edit``, so resample k here is column k + 1 of an edit grid)."""
        c0 = view_cameras(self.G, 1)
        ws = self.w if self.w is not None else self._mapped(state.seed, c0)
        edited = ws
        for index, sample, t in state.edits:
            link = self.links[index]
            source = self._mapped(edit_seeds(state.seed, sample + 1)[-1], c0)
            target = swap_axes(ws, source, link.axis_mask(self.G.w_dim))
            edited = edited + t * (target - ws)
        return ws, edited

    # -- frames ----------------------------------------------------------------------------

    @torch.no_grad()
    def render(self, state: ViewState) -> dict[str, Any]:
        """Outputs from the state's camera — the edited latent in the last row, the
        original in row 0 before it only for the views that compare with it (change maps,
        depth in the original's range) — the camera, and the focus link's region
        ``[h, w]`` (or None)."""
        ws, edited = self.latents(state)
        rows = torch.cat([ws, edited]) if state.view in NEEDS_ORIGINAL else edited
        c = self.camera(state).expand(rows.shape[0], -1)
        kwargs = {"render_resolution": state.res} if state.res else {}
        out = self.G.synthesis(rows, c, noise_mode="const", **kwargs)
        region = None
        if state.focus is not None:
            edit_only = {k: v[-1:] for k, v in out.items()}
            region = self.links[state.focus].region(edit_only, c[-1:])[0, 0].float().numpy()
        return {"outputs": out, "c": c, "region": region}

    def frame(self, state: ViewState) -> np.ndarray:
        """``[size, size, 3]`` uint8 RGB of the state's view."""
        r = self.render(state)
        out, c = r["outputs"], r["c"]
        if state.view == "image":
            raw = out.get("image_raw")
            fine = raw is not None and raw.shape[-1] > out["image"].shape[-1]
            tile = to_uint8((raw if fine else out["image"])[-1:])[0]
        elif state.view == "heat":
            diff = difference_map(out["image"][1:], out["image"][:1])[0]
            tile = colorize(diff.numpy(), HEAT_MAX)
        else:
            alpha = out.get("image_alpha")
            if state.view == "depth":
                tile = self._depth_tile(out)
            elif state.view == "geometry":
                edited_alpha = None if alpha is None else alpha[-1:]
                tile = shade(out["image_depth"][-1:], c[-1:], edited_alpha)[0]
            else:  # depth_heat, in units of the box
                change = (out["image_depth"][1:] - out["image_depth"][:1]).abs()[0, 0]
                tile = colorize(change.numpy(), 0.1 * self.G.box_size)
        image = upscale(np.ascontiguousarray(tile), state.size)
        if image.shape[0] != state.size:
            image = cv2.resize(image, (state.size, state.size), interpolation=cv2.INTER_AREA)
        if r["region"] is not None and state.outline:
            image = outline(image, r["region"], thickness=max(1, state.size // 128))
        return image

    @staticmethod
    def _depth_tile(out: dict[str, torch.Tensor]) -> np.ndarray:
        """The edited depth (row 1) in the range of the ORIGINAL's surface (row 0) from this
        camera, so an edit's depth change shows as a change of colour."""
        depth, alpha = out["image_depth"], out.get("image_alpha")
        hit = depth[0][alpha[0] > 0.5] if alpha is not None else depth[0].flatten()
        hit = hit if hit.numel() else depth[0].flatten()
        lo, hi = float(hit.min()), float(hit.max())
        margin = 0.1 * max(hi - lo, 1e-3)
        tile = depth_to_rgb(depth[1:], lo - margin, hi + margin)[0]
        if alpha is not None:  # where rays hit nothing: white, as in the RGB
            a = alpha[1, 0, :, :, None].clamp(0, 1).numpy()
            tile = (tile * a + 255 * (1 - a)).round().astype(np.uint8)
        return tile

    def try_frame_png(self, state: ViewState) -> bytes | None:
        """PNG bytes of :meth:`frame`, or None when another frame is rendering (dropped)."""
        if not self.frame_lock.acquire(blocking=False):
            return None
        try:
            image = self.frame(state)
        finally:
            self.frame_lock.release()
        ok, buf = cv2.imencode(".png", image[..., ::-1])
        return buf.tobytes()

    # -- meshes and videos -----------------------------------------------------------------

    def _require_3d(self, what: str) -> None:
        if not self.is_3d:
            raise BadRequest(f"{what}: a 2-D model has no 3-D field")

    def file_stem(self, state: ViewState) -> str:
        edits = "_".join(f"{self.links[i].name}{k}-{t:.2f}" for i, k, t in state.edits if t > 0)
        base = self.w_name or f"seed{state.seed:04d}"
        return base + (f"_{edits}" if edits else "")

    def mesh_glb(self, state: ViewState, grid: int = 96) -> bytes:
        """The coloured GLB (world units) of the edited latent, at a ``grid``³ density grid."""
        from export import auto_level, extract_mesh, write_glb

        self._require_3d("mesh")
        with self.job_lock:
            _, edited = self.latents(state)
            with torch.no_grad():
                mesh = extract_mesh(self.G, edited, grid, auto_level(self.G, edited))
            if mesh.num_vertices == 0:
                raise UserError("mesh: the density never reaches the surface level here")
            with tempfile.TemporaryDirectory() as tmp:
                path = write_glb(mesh, Path(tmp) / "mesh.glb")
                return path.read_bytes()

    def turntable(self, state: ViewState, frames: int = 48) -> Path:
        """An mp4 of the original and the edited latent turning together (RGB, depth,
        geometry, change), written into the output folder; returns its path."""
        from render.paths import camera_path
        from render.videos import orbit_source, render_video

        self._require_3d("turntable")
        with self.job_lock:
            ws, edited = self.latents(state)
            cams = camera_path(self.G, "turntable", frames, pitch_deg=state.pitch)
            key = hashlib.sha1(repr((self.name, state, frames)).encode()).hexdigest()[:8]
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / f"turntable-{self.file_stem(state)}-{key}.mp4"
            focus = None if state.focus is None else self.links[state.focus]
            render_video(
                self.G,
                orbit_source(torch.cat([ws, edited]), cams),
                frames,
                path,
                columns=["original", "edited"],
                maps=("image", "depth", "geometry", "change"),
                link=focus,
                tile=160,
                fps=24,
                title=f"{self.name} | {self.file_stem(state)}",
                progress=False,
            )
            return path


# -- the web app ---------------------------------------------------------------------------


def create_app(editor: Editor) -> Any:
    """The Starlette app: the page, its static files, the API, and the server's outputs."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    editor.out_dir.mkdir(parents=True, exist_ok=True)

    def state_of(request: Request) -> ViewState:
        return parse_state(request.query_params, editor.links, editor.is_3d)

    def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    def info(request: Request) -> Response:
        return JSONResponse(editor.info())

    def frame(request: Request) -> Response:
        state = state_of(request)
        started = time.perf_counter()
        png = editor.try_frame_png(state)
        if png is None:
            return JSONResponse({"error": "busy: frame dropped, send the newest state"}, 429)
        ms = f"{1000 * (time.perf_counter() - started):.1f}"
        headers = {"Cache-Control": "no-store", "X-Render-Ms": ms}
        return Response(png, media_type="image/png", headers=headers)

    def mesh(request: Request) -> Response:
        state = state_of(request)
        grid = _integer(request.query_params, "grid", 96, 16, 256)
        data = editor.mesh_glb(state, grid)
        name = f"{editor.file_stem(state)}.glb"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type="model/gltf-binary", headers=headers)

    def turntable(request: Request) -> Response:
        state = state_of(request)
        frames = _integer(request.query_params, "frames", 48, 8, 360)
        path = editor.turntable(state, frames)
        return JSONResponse({"url": f"/outputs/{path.name}", "file": str(path)})

    def bad_request(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, 400)

    def unusable(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, 422)

    def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"not found: {request.url.path}"}, 404)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/frame", frame),
        Route("/api/mesh", mesh),
        Route("/api/turntable", turntable, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        Mount("/outputs", StaticFiles(directory=editor.out_dir), name="outputs"),
    ]
    handlers = {BadRequest: bad_request, UserError: unusable, 404: not_found}
    return Starlette(routes=routes, exception_handlers=handlers)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def serve(editor: Editor, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted (uvicorn, one process; frames render in its thread pool)."""
    import uvicorn

    if not 0 < port < 65536:
        raise UserError(f"--port: expected 1..65535, got {port}")
    if not is_loopback(host):
        print(f"warning: serving on {host}: anyone who can reach this machine can use the editor")
    print(f"linkgan view: http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(editor), host=host, port=port, log_level="warning")
