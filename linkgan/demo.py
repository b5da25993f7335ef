"""``make demo``: train the 2D quickstart on the built-in toy faces, then show and measure
what each link's axes change (edit grids + link_mse JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from link_core.errors import UserError
from linkgan import api

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def run_demo(out: Path, minutes: float, config: str | Path | None = None) -> dict[str, Path]:
    config = Path(config) if config else CONFIGS / "quickstart_2d.yaml"
    run_dir = out / "run"
    if minutes <= 0:
        raise UserError(f"--minutes: must be > 0, got {minutes}")
    print(f"[demo] training {config.name} for {minutes:g} min -> {run_dir}")
    api.train(run_dir, config, [f"train.minutes={minutes}", "train.kimg=0"])
    _, cfg = api.load_generator(run_dir)
    written: dict[str, Path] = {"run": run_dir}
    for link in api.model_links(cfg):
        for seed in range(3):
            path = api.edit(run_dir, seed, link.name, 6, out / "edits")
            written[f"edit {link.name} seed {seed}"] = path
    result = api.measure(run_dir, ["link_mse"], out=out / "metrics.json")
    written["metrics"] = out / "metrics.json"
    written["samples"] = sorted((run_dir / "samples").glob("*.png"))[-1]
    print("[demo] link_mse (images in [0, 1]):")
    for name, maps in result["link_mse"].items():
        m = maps["image"]
        print(
            f"  {name}: edit_in {m['edit_in']:.4f}  edit_out {m['edit_out']:.4f}  "
            f"out/in {m['out_over_in']:.3f}  rest_in {m['rest_in']:.4f}"
        )
    print("[demo] wrote:")
    for key, path in written.items():
        print(f"  {key:24s} {path}")
    (out / "demo.json").write_text(json.dumps({k: str(v) for k, v in written.items()}, indent=2))
    return written
