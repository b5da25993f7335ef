"""Frames per second of `linkgan view`: a live server on 127.0.0.1, frames requested one after
another over HTTP (as the page does: one in flight) while the camera turns and a link's
slider moves, at several neural-rendering resolutions. Writes JSON.

    python bench/viewer_fps.py --ckpt base:heads_3d_links --out bench/results/viewer_fps.json
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import torch

from linkgan import api
from linkgan.viewer import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="base:heads_3d_links")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--res", default="0,64", help="render resolutions (0: the model's)")
    parser.add_argument("--size", type=int, default=512, help="display size of the PNGs")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", default="bench/results/viewer_fps.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import uvicorn

    editor = api.open_editor(args.ckpt, Path("/tmp/linkgan_view_bench"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(editor), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    link = editor.links[0].name if editor.links else None
    result = {
        "ckpt": args.ckpt,
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "device": "cpu",
        "display": args.size,
        "model_resolution": editor.info()["resolution"],
        "runs": [],
    }
    try:
        for res in [int(r) for r in args.res.split(",")]:
            times, render_ms = [], []
            for i in range(args.frames + 3):
                t = (i % 20) / 19
                query = f"seed=1&yaw={i * 9 - 180}&pitch=10&size={args.size}&res={res}"
                if link:
                    query += f"&edits={link}:0:{t:.2f}&focus={link}"
                start = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/frame?{query}") as r:
                    r.read()
                    ms = float(r.headers["X-Render-Ms"])
                if i >= 3:  # warm-up frames excluded
                    times.append(time.perf_counter() - start)
                    render_ms.append(ms)
            entry = {
                "render_resolution": res or editor.info()["resolution"],
                "frames": args.frames,
                "frames_per_s": round(len(times) / sum(times), 2),
                "median_request_ms": round(1000 * statistics.median(times), 1),
                "median_render_ms": round(statistics.median(render_ms), 1),
            }
            result["runs"].append(entry)
            print(json.dumps(entry))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
