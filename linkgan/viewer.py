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
    POST /api/turntable?STATE&frames=N  writes OUT/turntable-*.mp4, answers {"url": ...};
                                        the parameters may instead come as a JSON object
                                        body (at most 16 KiB)
    GET  /outputs/NAME                  files this server wrote (nothing else is served)

    STATE: seed, yaw, pitch (degrees), zoom, view, size (display px), res (render px, 3-D),
           edits=LINK:SAMPLE:T,... (SAMPLE-th resample of LINK's axes, T in [0, 1]),
           focus=LINK (region outlined, heat maps), outline=0|1

    A mesh or a turntable is made one at a time: another asked meanwhile gets 429.

Access (issue #32, :class:`Guard` in front of the app): loopback by default; any other bind
address needs ``allow_remote`` and then a token (random unless given) that every request
carries, as ``?token=`` (the page's URL: answering it, the index sets an HttpOnly SameSite
cookie that the page's own requests then carry), an ``X-Linkgan-Token`` header or
``Authorization: Bearer``; without it: 401. On loopback a request whose Host header is not a
loopback name is refused (403, DNS rebinding), and so is any cross-origin request but a
navigation to the page (``Origin`` / ``Sec-Fetch-Site``). Paths with ``..``, backslashes or
control characters, long URLs (414) and bodies (413) are refused before routing, unread.

Sees only the generator interface (``mapping``, ``synthesis``, ``sample_mixed``, ``camera``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import math
import re
import secrets
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
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
MAX_EDITS = 32
MAX_GRID = 256
MAX_FRAMES = 360
MAX_PATH = 1024
"""Longest request path (bytes, as sent); longer: 414."""
MAX_QUERY = 2048
"""Longest query string (bytes); longer: 414. The page's state takes a few hundred."""
MAX_HEADERS = 16 * 1024
"""Most bytes of request headers; more: 431 (uvicorn's h11 bounds only those that arrive in
pieces)."""
MAX_BODY = 16 * 1024
"""Largest request body (only ``POST /api/turntable`` reads one); larger: 413, unread."""
HEAT_MAX = 0.25
"""Heat-map scale: a mean absolute RGB change of a quarter of the range is the brightest
colour (fixed, so colours compare while the slider moves)."""


class BadRequest(ValueError):
    """A request parameter that cannot be used; the message names it."""


class Busy(RuntimeError):
    """Another mesh or turntable is being made (answered 429: ask again later)."""


class TooLarge(ValueError):
    """A request body over :data:`MAX_BODY` (answered 413)."""


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


_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,18}\s*")
"""ASCII digits only (``str.isdigit`` takes '²', which ``int`` refuses) and few of them."""


def _short(raw: str) -> str:
    """``raw`` for an error message: quoted, escaped (one line), at most ~40 characters."""
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


def _number(query: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        if len(raw) > 40 or not raw.isascii() or "_" in raw:  # float() takes '1_0', '١'
            raise ValueError
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{key}: expected a number, got {_short(raw)}") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise BadRequest(f"{key}: expected a number in [{lo:g}, {hi:g}], got {_short(raw)}")
    return value


def _integer(query: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise BadRequest(f"{key}: expected an integer, got {_short(raw)}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest(f"{key}: expected an integer in [{lo}, {hi}], got {_short(raw)}")
    return value


def _link_index(links: list[Link], name: str, key: str) -> int:
    for i, link in enumerate(links):
        if link.name == name:
            return i
    known = ", ".join(lk.name for lk in links) or "none"
    raise BadRequest(f"{key}: no link {_short(name)} in this model (links: {known})")


def parse_state(query: Mapping[str, str], links: list[Link], is_3d: bool) -> ViewState:
    """A :class:`ViewState` from query parameters; :class:`BadRequest` names the bad one."""
    views = VIEWS_3D if is_3d else VIEWS_2D
    view = query.get("view") or "image"
    if view not in views:
        raise BadRequest(f"view: expected one of {', '.join(views)}, got {_short(view)}")
    edits = []
    parts = [part for part in (query.get("edits") or "").split(",") if part]
    if len(parts) > MAX_EDITS:
        raise BadRequest(f"edits: at most {MAX_EDITS} edits, got {len(parts)}")
    for part in parts:
        fields = part.split(":")
        if len(fields) != 3:
            raise BadRequest(f"edits: expected LINK:SAMPLE:T, got {_short(part)}")
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
    caller can drop rather than queue); meshes and videos have a lock of their own, which
    the server does not wait for (``wait=0``: :class:`Busy` when another job holds it).
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

    @contextlib.contextmanager
    def _job(self, what: str, wait: float | None) -> Iterator[None]:
        """Hold the job lock: ``wait`` seconds at most (None: as long as it takes), then
        :class:`Busy`."""
        if not self.job_lock.acquire(timeout=-1 if wait is None else max(0.0, wait)):
            raise Busy(f"busy: another mesh or turntable is being made; {what}: try again later")
        try:
            yield
        finally:
            self.job_lock.release()

    def file_stem(self, state: ViewState) -> str:
        edits = "_".join(f"{self.links[i].name}{k}-{t:.2f}" for i, k, t in state.edits if t > 0)
        base = self.w_name or f"seed{state.seed:04d}"
        return base + (f"_{edits}" if edits else "")

    def mesh_glb(self, state: ViewState, grid: int = 96, wait: float | None = None) -> bytes:
        """The coloured GLB (world units) of the edited latent, at a ``grid``³ density grid
        (``wait``: see :meth:`_job`)."""
        from export import auto_level, extract_mesh, write_glb

        self._require_3d("mesh")
        with self._job("mesh", wait):
            _, edited = self.latents(state)
            with torch.no_grad():
                mesh = extract_mesh(self.G, edited, grid, auto_level(self.G, edited))
            if mesh.num_vertices == 0:
                raise UserError("mesh: the density never reaches the surface level here")
            with tempfile.TemporaryDirectory() as tmp:
                path = write_glb(mesh, Path(tmp) / "mesh.glb")
                return path.read_bytes()

    def turntable(self, state: ViewState, frames: int = 48, wait: float | None = None) -> Path:
        """An mp4 of the original and the edited latent turning together (RGB, depth,
        geometry, change), written into the output folder; returns its path (``wait``: see
        :meth:`_job`)."""
        from render.paths import camera_path
        from render.videos import orbit_source, render_video

        self._require_3d("turntable")
        with self._job("turntable", wait):
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


# -- who may use it (issue #32) -------------------------------------------------------------

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,256}")
TOKEN_HEADER = "x-linkgan-token"
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a Host header's name) is this machine only:
    ``localhost`` or a loopback IP (``127.0.0.0/8``, ``::1``). ``0.0.0.0``, ``::`` and ``""``
    (every interface) and every other name are not."""
    host = host.strip().lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """Where the server listens and the token every request must carry (None: no token)."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = dataclasses.field(default=None, repr=False)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def cookie(self) -> str:
        """The cookie's name: one per token, so servers on one host never overwrite it."""
        digest = hashlib.sha256((self.token or "").encode()).hexdigest()[:12]
        return f"linkgan_view_{digest}"

    def url(self) -> str:
        """The page's address to print (with the token when there is one)."""
        host = self.host
        if host in ("", "0.0.0.0", "::"):  # every interface: name this machine
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}/{query}"


def access_policy(
    host: str = "127.0.0.1",
    port: int = 8765,
    allow_remote: bool = False,
    token: str | None = None,
    require_token: bool = False,
) -> Access:
    """Check a bind request and decide its token. A non-loopback ``host`` needs
    ``allow_remote`` and then always a token: ``token``, or a random one. On loopback there is
    a token only when one is given or ``require_token``. :class:`UserError` names the bad
    option (never the token)."""
    if not 0 < port < 65536:
        raise UserError(f"--port: expected 1..65535, got {port}")
    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise UserError(
            f"--token: expected 16 to 256 characters of A-Z a-z 0-9 _ -, got {len(token)} "
            "characters (leave it out for a random one)"
        )
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise UserError(
            f"--host {host!r} is not a loopback address: anyone who can reach it could use "
            "the editor; add --allow-remote (every request then needs a token) or leave "
            "--host out (127.0.0.1)"
        )
    if token is None and (require_token or not loopback):
        token = secrets.token_urlsafe(32)
    return Access(host, port, token)


def _host_name(value: str) -> str:
    """The name in a Host header: ``[::1]:8765`` → ``::1``, ``localhost:80`` → ``localhost``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, colon, port = value.rpartition(":")
    return name if colon and port.isdigit() else value


def _cookies(header: str) -> dict[str, str]:
    jar = {}
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq:
            jar.setdefault(name, value)
    return jar


class Guard:
    """ASGI middleware in front of the app: refuses, before any routing or reading, what is
    not for it (bad paths, long URLs, big bodies, foreign Host / Origin, no token), and adds
    security headers to every answer. A refusal is a one-line JSON error and closes the
    connection (an unread body is never read)."""

    def __init__(self, app: Any, access: Access):
        self.app = app
        self.access = access

    def _refuse(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, message) of why the request is refused, or None."""
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if len(raw_path) > MAX_PATH or len(scope.get("query_string", b"")) > MAX_QUERY:
            return 414, f"URI too long: at most {MAX_PATH} bytes of path, {MAX_QUERY} of query"
        if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEADERS:
            return 431, f"request headers too large: at most {MAX_HEADERS} bytes"
        path = scope["path"]
        segments = path.split("/")[1:]
        if (
            not path.startswith("/")
            or any(c in path for c in "\\\ufffd")
            or any(ord(c) < 32 or ord(c) == 127 for c in path)
            or any(seg in (".", "..") for seg in segments)
            or "" in segments[:-1]
        ):
            return 400, "bad path: no '.', '..', '//', backslashes or control characters"
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit() or len(length) > 18:
                return 400, "bad Content-Length"
            if int(length) > MAX_BODY:
                return 413, f"request body too large: at most {MAX_BODY} bytes"
        host = headers.get("host")
        if self.access.loopback:
            allowed = {"localhost", self.access.host.lower().strip("[]")}
            if host is None or not (_host_name(host) in allowed or is_loopback(_host_name(host))):
                return 403, "forbidden: the Host header is not a loopback name of this server"
        origin, own = headers.get("origin"), f"{scope.get('scheme', 'http')}://{host}"
        if origin is not None and origin.lower() != own.lower():
            return 403, "forbidden: a cross-origin request"
        site = headers.get("sec-fetch-site", "same-origin")
        navigation = scope["method"] in ("GET", "HEAD") and path == "/"
        if site not in ("same-origin", "none") and not (
            navigation and headers.get("sec-fetch-mode") == "navigate"
        ):
            return 403, "forbidden: a cross-site request"
        return None

    def _token(self, scope: dict, headers: dict[str, str]) -> tuple[bool, bool]:
        """(whether the request carries the token, whether it came as ``?token=``)."""
        expected = (self.access.token or "").encode()
        given = [headers.get(TOKEN_HEADER, "")]
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        given.append(bearer.strip() if scheme.lower() == "bearer" else "")
        given.append(_cookies(headers.get("cookie", "")).get(self.access.cookie, ""))
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given.append((query.get("token") or [""])[-1])
        ok = [hmac.compare_digest(g.encode("utf-8", "replace"), expected) for g in given]
        return any(ok), ok[-1] and not any(ok[:-1])

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websockets here
        headers: dict[str, str] = {}  # the first of repeated headers
        for key, value in scope["headers"]:
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        refusal = self._refuse(scope, headers)
        from_query = False
        if refusal is None and self.access.token is not None:
            ok, from_query = self._token(scope, headers)
            if not ok:
                refusal = 401, "unauthorized: open the URL the server printed (with ?token=)"
        if refusal is not None:
            status, message = refusal
            body = json.dumps({"error": message}).encode()
            answer = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ]
            if status == 401:
                answer.append((b"www-authenticate", b'Bearer realm="linkgan view"'))
            await send({"type": "http.response.start", "status": status, "headers": answer})
            await send({"type": "http.response.body", "body": body})
            return
        cookie = None
        if from_query and scope["path"] == "/":  # the page: its own requests carry a cookie
            cookie = f"{self.access.cookie}={self.access.token}; Path=/; HttpOnly; SameSite=Strict"

        async def send_secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [*message.get("headers", []), *SECURITY_HEADERS]
                if cookie is not None:
                    extra.append((b"set-cookie", cookie.encode()))
                message = {**message, "headers": extra}
            await send(message)

        await self.app(scope, receive, send_secured)


# -- the web app ---------------------------------------------------------------------------


async def _json_params(request: Any) -> dict[str, str]:
    """The request's JSON object body as query-like strings ({} without a body); a body over
    :data:`MAX_BODY` stops being read there (:class:`TooLarge`)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise TooLarge(f"request body too large: at most {MAX_BODY} bytes")
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("body: not valid JSON (expected an object of parameters)") from None
    if not isinstance(value, dict):
        raise BadRequest(f"body: expected a JSON object of parameters, got {type(value).__name__}")
    params = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "1" if item else "0"
        elif isinstance(item, int):
            item = str(item)  # json refuses ints too long for str()
        elif isinstance(item, float):
            item = repr(item) if math.isfinite(item) else "nan"
        elif not isinstance(item, str):
            raise BadRequest(f"body: {_short(key)}: expected a string or a number")
        params[key] = item
    return params


def create_app(editor: Editor, access: Access | None = None) -> Any:
    """The app: the page, its static files, the API and the server's outputs, behind a
    :class:`Guard` for ``access`` (default: loopback, no token)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    editor.out_dir.mkdir(parents=True, exist_ok=True)

    def state_of(params: Mapping[str, str]) -> ViewState:
        return parse_state(params, editor.links, editor.is_3d)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> Response:
        return JSONResponse(editor.info())

    def frame(request: Request) -> Response:
        state = state_of(request.query_params)
        started = time.perf_counter()
        png = editor.try_frame_png(state)
        if png is None:
            return JSONResponse({"error": "busy: frame dropped, send the newest state"}, 429)
        ms = f"{1000 * (time.perf_counter() - started):.1f}"
        headers = {"Cache-Control": "no-store", "X-Render-Ms": ms}
        return Response(png, media_type="image/png", headers=headers)

    def mesh(request: Request) -> Response:
        state = state_of(request.query_params)
        grid = _integer(request.query_params, "grid", 96, 16, MAX_GRID)
        data = editor.mesh_glb(state, grid, wait=0)
        name = f"{editor.file_stem(state)}.glb"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type="model/gltf-binary", headers=headers)

    async def turntable(request: Request) -> Response:
        params = {**request.query_params, **await _json_params(request)}
        state = state_of(params)
        frames = _integer(params, "frames", 48, 8, MAX_FRAMES)
        path = await run_in_threadpool(editor.turntable, state, frames, 0)
        return JSONResponse({"url": f"/outputs/{path.name}"})

    def error(status: int) -> Any:
        def handler(request: Request, exc: Exception) -> Response:
            return JSONResponse({"error": str(exc)}, status)

        return handler

    def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = "not found" if status == 404 else getattr(exc, "detail", "refused")
        return JSONResponse({"error": f"{message}: {_short(request.url.path)}"}, status)

    def internal(request: Request, exc: Exception) -> Response:
        # no message: it could name files; the traceback goes to the server's log
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, 500)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/frame", frame),
        Route("/api/mesh", mesh),
        Route("/api/turntable", turntable, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        Mount("/outputs", StaticFiles(directory=editor.out_dir), name="outputs"),
    ]
    handlers = {
        BadRequest: error(400),
        UserError: error(422),
        Busy: error(429),
        TooLarge: error(413),
        404: not_found,
        405: not_found,
        Exception: internal,
    }
    app = Starlette(routes=routes, exception_handlers=handlers)
    return Guard(app, access or Access())


def uvicorn_options(access: Access) -> dict[str, Any]:
    """uvicorn's settings for ``access`` (``linkgan view`` and the tests use these). No
    ``limit_concurrency``: uvicorn counts idle connections too (it has no timeout for a
    request's headers), so a few slow clients would shut everyone out; the work is bounded
    per endpoint instead (one frame, one mesh or turntable at a time: 429)."""
    return {
        "host": access.host,
        "port": access.port,
        "log_level": "warning",
        "http": "h11",
        "ws": "none",
        "server_header": False,
        "h11_max_incomplete_event_size": 16 * 1024,
        "timeout_keep_alive": 5,
    }


def serve(
    editor: Editor,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    allow_remote: bool = False,
    token: str | None = None,
    require_token: bool = False,
) -> None:
    """Serve until interrupted (uvicorn, one process; frames render in its thread pool).
    ``host``, ``allow_remote``, ``token``, ``require_token``: see :func:`access_policy`."""
    import uvicorn

    access = access_policy(host, port, allow_remote, token, require_token)
    if not access.loopback:
        print(
            f"warning: serving on {host} over plain HTTP: anyone who can reach it and has "
            "the token can use the editor, and the token travels unencrypted"
        )
    print(f"linkgan view: {access.url()}  (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(editor, access), **uvicorn_options(access))
