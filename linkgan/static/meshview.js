// linkgan's mesh viewer: plain WebGL 1, no dependencies, nothing fetched.
//
// Meshes arrive as script files that call linkganMesh(name, {positions, colors, indices})
// with base64 arrays (float32 xyz, uint8 rgb, uint32 triangles), so the report also works
// when opened straight from disk (file:// forbids fetch). Every <canvas data-mesh="NAME">
// becomes a viewer: drag to turn, wheel to zoom; it turns slowly until touched.
// For tests: a drawn canvas gets data-ready="1" and data-vertices; errors are listed in
// #errors instead of only on the console.
(function () {
  "use strict";
  const meshes = {};
  window.linkganMesh = function (name, data) {
    meshes[name] = data;
  };

  function report(message) {
    const list = document.getElementById("errors");
    if (list) {
      const item = document.createElement("li");
      item.textContent = String(message);
      list.appendChild(item);
    }
  }
  window.addEventListener("error", (e) => report(e.message || "error loading " + (e.target && (e.target.src || e.target.href))), true);

  function decode(text, Type) {
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  function vertexNormals(pos, idx) {
    const n = new Float32Array(pos.length);
    for (let t = 0; t < idx.length; t += 3) {
      const a = 3 * idx[t], b = 3 * idx[t + 1], c = 3 * idx[t + 2];
      const ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
      const vx = pos[c] - pos[a], vy = pos[c + 1] - pos[a + 1], vz = pos[c + 2] - pos[a + 2];
      const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      for (const k of [a, b, c]) { n[k] += nx; n[k + 1] += ny; n[k + 2] += nz; }
    }
    for (let i = 0; i < n.length; i += 3) {
      const l = Math.hypot(n[i], n[i + 1], n[i + 2]) || 1;
      n[i] /= l; n[i + 1] /= l; n[i + 2] /= l;
    }
    return n;
  }

  // Column-major 4x4 matrices, as WebGL expects.
  function perspective(fovy, aspect, near, far) {
    const f = 1 / Math.tan(fovy / 2), r = 1 / (near - far);
    return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (near + far) * r, -1, 0, 0, 2 * near * far * r, 0];
  }
  function multiply(a, b) {
    const o = new Array(16).fill(0);
    for (let c = 0; c < 4; c++)
      for (let r = 0; r < 4; r++)
        for (let k = 0; k < 4; k++) o[4 * c + r] += a[4 * k + r] * b[4 * c + k];
    return o;
  }
  function orbitView(yaw, pitch, dist, centre) {
    // Camera on a sphere around the centre, looking at it, y up.
    const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
    const eye = [centre[0] + dist * cp * sy, centre[1] + dist * sp, centre[2] + dist * cp * cy];
    const z = [eye[0] - centre[0], eye[1] - centre[1], eye[2] - centre[2]].map((v) => v / dist);
    let x = [z[2], 0, -z[0]];
    const lx = Math.hypot(x[0], x[2]) || 1;
    x = x.map((v) => v / lx);
    const y = [z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]];
    const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    return [x[0], y[0], z[0], 0, x[1], y[1], z[1], 0, x[2], y[2], z[2], 0,
      -dot(x, eye), -dot(y, eye), -dot(z, eye), 1];
  }

  const VS = `attribute vec3 p; attribute vec3 n; attribute vec3 c;
    uniform mat4 mvp; uniform mat4 view; varying vec3 vc; varying vec3 vn;
    void main() { vc = c; vn = (view * vec4(n, 0.0)).xyz; gl_Position = mvp * vec4(p, 1.0); }`;
  const FS = `precision mediump float; varying vec3 vc; varying vec3 vn;
    void main() { vec3 l = normalize(vec3(-0.4, 0.6, 1.0));
      float d = max(dot(normalize(vn), l), 0.0);
      gl_FragColor = vec4(vc * (0.35 + 0.65 * d), 1.0); }`;

  function compile(gl, type, source) {
    const s = gl.createShader(type);
    gl.shaderSource(s, source);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }

  function viewer(canvas, data) {
    const gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: true });
    if (!gl) throw new Error("WebGL is not available for " + canvas.dataset.mesh);
    if (!gl.getExtension("OES_element_index_uint")) throw new Error("no 32-bit indices");
    const pos = decode(data.positions, Float32Array);
    const col = decode(data.colors, Uint8Array);
    const idx = decode(data.indices, Uint32Array);
    const nrm = vertexNormals(pos, idx);
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < pos.length; i++) {
      lo[i % 3] = Math.min(lo[i % 3], pos[i]);
      hi[i % 3] = Math.max(hi[i % 3], pos[i]);
    }
    const centre = lo.map((v, i) => (v + hi[i]) / 2);
    const radius = Math.max(1e-6, Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2);
    const prog = gl.createProgram();
    gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    gl.useProgram(prog);
    function attribute(name, array, size, type, normalized) {
      const buf = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, buf);
      gl.bufferData(gl.ARRAY_BUFFER, array, gl.STATIC_DRAW);
      const loc = gl.getAttribLocation(prog, name);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, type, normalized, 0, 0);
    }
    attribute("p", pos, 3, gl.FLOAT, false);
    attribute("n", nrm, 3, gl.FLOAT, false);
    attribute("c", col, 3, gl.UNSIGNED_BYTE, true);
    const ibuf = gl.createBuffer();
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, ibuf);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, idx, gl.STATIC_DRAW);
    const uMvp = gl.getUniformLocation(prog, "mvp"), uView = gl.getUniformLocation(prog, "view");
    gl.enable(gl.DEPTH_TEST);
    const fov = 0.6;
    let yaw = 0, pitch = 0.2, dist = radius / Math.sin(fov / 2) * 1.15, touched = false;

    function draw() {
      const view = orbitView(yaw, pitch, dist, centre);
      const proj = perspective(fov, canvas.width / canvas.height, dist / 20, dist * 4);
      gl.viewport(0, 0, canvas.width, canvas.height);
      gl.clearColor(1, 1, 1, 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      gl.uniformMatrix4fv(uMvp, false, multiply(proj, view));
      gl.uniformMatrix4fv(uView, false, view);
      gl.drawElements(gl.TRIANGLES, idx.length, gl.UNSIGNED_INT, 0);
    }
    let drag = null;
    canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; touched = true; });
    window.addEventListener("pointerup", () => { drag = null; });
    window.addEventListener("pointermove", (e) => {
      if (!drag) return;
      yaw -= (e.clientX - drag[0]) * 0.01;
      pitch = Math.max(-1.4, Math.min(1.4, pitch + (e.clientY - drag[1]) * 0.01));
      drag = [e.clientX, e.clientY];
      draw();
    });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      dist *= Math.exp(e.deltaY * 0.001);
      touched = true;
      draw();
    }, { passive: false });
    (function spin() {
      if (!touched) { yaw += 0.01; draw(); }
      requestAnimationFrame(spin);
    })();
    draw();
    const px = new Uint8Array(4);
    gl.readPixels(canvas.width >> 1, canvas.height >> 1, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    canvas.dataset.centre = Array.from(px.slice(0, 3)).join(",");
    canvas.dataset.vertices = String(pos.length / 3);
    canvas.dataset.ready = "1";
  }

  window.addEventListener("load", () => {
    document.querySelectorAll("video").forEach((v) => {
      if (v.readyState >= 2) v.dataset.loaded = "1";
      v.addEventListener("loadeddata", () => { v.dataset.loaded = "1"; });
      v.addEventListener("error", () => report("video failed: " + v.currentSrc));
    });
    document.querySelectorAll("canvas[data-mesh]").forEach((canvas) => {
      const data = meshes[canvas.dataset.mesh];
      try {
        if (!data) throw new Error("mesh " + canvas.dataset.mesh + " did not load");
        viewer(canvas, data);
      } catch (e) {
        report(e.message);
      }
    });
    document.body.dataset.ready = "1";
  });
})();
