// linkgan view: the page. Plain JavaScript, no libraries, nothing fetched but this server.
//
// State lives in `viewer.state`; every change calls requestFrame(). At most one frame request
// is in flight: changes made meanwhile only mark the state dirty, and when the answer comes
// the NEWEST state is sent (intermediate ones are dropped, never queued). The server answers
// 429 when it is still rendering someone else's frame; we then retry with the newest state.
"use strict";

const VIEW_LABELS = {
  image: "RGB", depth: "depth", geometry: "geometry", heat: "RGB change", depth_heat: "depth change",
};

const viewer = {
  info: null,
  state: { seed: 0, yaw: 0, pitch: 0, zoom: 1, view: "image", outline: true, focus: null, edits: {} },
  frames: 0,          // frames shown (tests wait on it)
  lastMs: 0,          // server render time of the last frame
  fps: 0,
  inflight: false,
  dirty: false,
  url: null,
};
window.viewer = viewer;

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function query(extra = {}) {
  const s = viewer.state;
  const edits = Object.entries(s.edits)
    .filter(([, e]) => e.sample !== null)
    .map(([name, e]) => `${name}:${e.sample}:${e.t.toFixed(3)}`);
  const q = new URLSearchParams({
    seed: String(s.seed), yaw: s.yaw.toFixed(2), pitch: s.pitch.toFixed(2),
    zoom: s.zoom.toFixed(3), view: s.view, size: "512", outline: s.outline ? "1" : "0",
    edits: edits.join(","),
  });
  if (s.focus) q.set("focus", s.focus);
  for (const [k, v] of Object.entries(extra)) q.set(k, String(v));
  return q.toString();
}

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; }
  catch (e) { return response.statusText; }
}

function requestFrame() {
  viewer.dirty = true;
  pump();
}

async function pump() {
  if (viewer.inflight || !viewer.dirty) return;
  viewer.dirty = false;
  viewer.inflight = true;
  const started = performance.now();
  try {
    const response = await fetch(`/api/frame?${query()}`, { cache: "no-store" });
    if (response.status === 429) {           // server busy: drop this one, send the newest
      viewer.dirty = true;
      await new Promise((r) => setTimeout(r, 15));
    } else if (!response.ok) {
      setStatus(`error: ${await errorText(response)}`, true);
    } else {
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      await new Promise((resolve) => {
        const img = $("frame");
        img.onload = resolve;
        img.onerror = resolve;
        img.src = url;
      });
      if (viewer.url) URL.revokeObjectURL(viewer.url);
      viewer.url = url;
      viewer.frames += 1;
      viewer.lastMs = parseFloat(response.headers.get("X-Render-Ms") || "0");
      const dt = (performance.now() - started) / 1000;
      viewer.fps = viewer.fps ? 0.8 * viewer.fps + 0.2 / dt : 1 / dt;
      $("frame").dataset.frames = String(viewer.frames);
      setStatus(`${viewer.fps.toFixed(1)} frames/s · render ${viewer.lastMs.toFixed(0)} ms`);
    }
  } catch (e) {
    setStatus(`error: ${e}`, true);
  } finally {
    viewer.inflight = false;
    pump();
  }
}

// -- controls ------------------------------------------------------------------------------

function buildViews() {
  const box = $("views");
  for (const v of viewer.info.views) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="view" value="${v}"> ${VIEW_LABELS[v] || v}`;
    const input = label.querySelector("input");
    input.id = `view-${v}`;
    input.checked = v === viewer.state.view;
    input.addEventListener("change", () => { viewer.state.view = v; requestFrame(); });
    box.insertBefore(label, box.lastElementChild);
  }
}

function setFocus(name) {
  viewer.state.focus = name;
  for (const row of document.querySelectorAll(".link")) {
    row.classList.toggle("focus", row.dataset.link === name);
  }
}

function buildLinks() {
  const box = $("links");
  if (!viewer.info.links.length) box.insertAdjacentHTML("beforeend", "<p>this model has no links</p>");
  for (const link of viewer.info.links) {
    viewer.state.edits[link.name] = { sample: null, t: 0 };
    const row = document.createElement("div");
    row.className = "link";
    row.dataset.link = link.name;
    const axes = link.axes.length > 6 ? `${link.axes.length} axes` : `axes ${link.axes.join(",")}`;
    row.innerHTML =
      `<span class="name" title="${axes}">${link.name}</span>` +
      `<button type="button" class="resample">resample</button>` +
      `<input type="range" class="slider" min="0" max="1" step="0.01" value="0" disabled>` +
      `<span class="t">–</span>`;
    const edit = viewer.state.edits[link.name];
    const slider = row.querySelector(".slider");
    const tText = row.querySelector(".t");
    row.querySelector(".resample").addEventListener("click", () => {
      edit.sample = edit.sample === null ? 0 : edit.sample + 1;
      edit.t = 1;
      slider.disabled = false;
      slider.value = "1";
      tText.textContent = `#${edit.sample + 1}`;
      setFocus(link.name);
      requestFrame();
    });
    slider.addEventListener("input", () => {
      edit.t = parseFloat(slider.value);
      tText.textContent = edit.t.toFixed(2);
      setFocus(link.name);
      requestFrame();
    });
    box.appendChild(row);
  }
  if (viewer.info.links.length) setFocus(viewer.info.links[0].name);
}

function resetEdits() {
  for (const row of document.querySelectorAll(".link")) {
    const edit = viewer.state.edits[row.dataset.link];
    edit.sample = null;
    edit.t = 0;
    const slider = row.querySelector(".slider");
    slider.value = "0";
    slider.disabled = true;
    row.querySelector(".t").textContent = "–";
  }
}

function bindOrbit() {
  const img = $("frame");
  let drag = null;
  if (!viewer.info.is_3d) {
    $("hint").textContent = "a 2-D model: one view";
    return;
  }
  img.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, yaw: viewer.state.yaw, pitch: viewer.state.pitch };
    img.setPointerCapture(e.pointerId);
    img.classList.add("dragging");
  });
  img.addEventListener("pointermove", (e) => {
    if (!drag) return;
    let yaw = drag.yaw + 0.5 * (e.clientX - drag.x);
    yaw = ((yaw + 180) % 360 + 360) % 360 - 180;           // keep in [-180, 180)
    const pitch = Math.max(-80, Math.min(80, drag.pitch + 0.4 * (e.clientY - drag.y)));
    viewer.state.yaw = yaw;
    viewer.state.pitch = pitch;
    requestFrame();
  });
  const stop = () => { drag = null; img.classList.remove("dragging"); };
  img.addEventListener("pointerup", stop);
  img.addEventListener("pointercancel", stop);
  img.addEventListener("wheel", (e) => {
    e.preventDefault();
    const zoom = viewer.state.zoom * Math.exp(-0.001 * e.deltaY);
    viewer.state.zoom = Math.max(0.5, Math.min(3, zoom));
    requestFrame();
  }, { passive: false });
}

async function exportMesh() {
  setStatus("extracting the mesh…");
  const response = await fetch(`/api/mesh?${query()}`);
  if (!response.ok) { setStatus(`error: ${await errorText(response)}`, true); return; }
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = (disposition.match(/filename="([^"]+)"/) || [, "mesh.glb"])[1];
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.textContent = `${name} (${(blob.size / 1024).toFixed(0)} kB)`;
  a.id = "mesh-link";
  $("saved").replaceChildren(a);
  a.click();
  setStatus(`exported ${name}`);
}

async function saveTurntable() {
  setStatus("rendering the turntable…");
  const response = await fetch(`/api/turntable?${query({ frames: 48 })}`, { method: "POST" });
  if (!response.ok) { setStatus(`error: ${await errorText(response)}`, true); return; }
  const { url } = await response.json();
  const a = document.createElement("a");
  a.href = url;
  a.textContent = url.split("/").pop();
  a.id = "turntable-link";
  const video = document.createElement("video");
  video.src = url;
  video.controls = true;
  video.loop = true;
  $("saved").replaceChildren(a, video);
  setStatus(`saved ${a.textContent}`);
}

async function start() {
  // Opened with ?token=...: the answer set a cookie that our requests carry from now on, so
  // take the token out of the address bar (and history).
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", "/");
  const response = await fetch("/api/info");
  if (!response.ok) { setStatus(`error: ${await errorText(response)}`, true); return; }
  viewer.info = await response.json();
  $("model").textContent =
    `${viewer.info.name} · ${viewer.info.backbone} · ${viewer.info.resolution}² · ` +
    `${viewer.info.links.length} link(s)` + (viewer.info.w_file ? ` · ${viewer.info.w_file}` : "");
  if (viewer.info.w_file) {        // the latent is the file's: the seed picks the resamples
    $("seed").previousSibling.textContent = "resample seed ";
  }
  buildViews();
  buildLinks();
  bindOrbit();
  $("seed").addEventListener("change", () => {
    const seed = parseInt($("seed").value, 10);
    if (Number.isInteger(seed) && seed >= 0) { viewer.state.seed = seed; requestFrame(); }
  });
  $("random-seed").addEventListener("click", () => {
    viewer.state.seed = Math.floor(Math.random() * 100000);
    $("seed").value = String(viewer.state.seed);
    requestFrame();
  });
  $("reset").addEventListener("click", () => { resetEdits(); requestFrame(); });
  $("outline").addEventListener("change", () => {
    viewer.state.outline = $("outline").checked;
    requestFrame();
  });
  $("export-mesh").addEventListener("click", exportMesh);
  $("save-turntable").addEventListener("click", saveTurntable);
  if (!viewer.info.is_3d) {
    $("export-mesh").disabled = true;
    $("save-turntable").disabled = true;
  }
  requestFrame();
}

start();
