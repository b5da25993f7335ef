"""Link-phase overhead: alternate blocks of link-on and link-off training steps in one run.

    python bench/train_step.py --config configs/quickstart_2d.yaml --out B.json

Writes ``{"s_per_kimg_link_on", "s_per_kimg_link_off", "overhead", ...}``. Blocks are a
multiple of ``link.interval`` long and alternate, so machine noise hits both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from link_core.train.config import config_to_dict, load_config
from link_core.train.link_phase import LinkPhase
from link_core.train.loop import Trainer
from link_core.train.stats import StatsLog
from linkgan import api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart_2d.yaml")
    parser.add_argument("--out", default="bench/results/train_step.json")
    parser.add_argument("--rounds", type=int, default=6, help="on/off block pairs")
    parser.add_argument("--block", type=int, default=0, help="steps per block (0: 4 intervals)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    cfg = load_config(args.config, args.overrides)
    if not cfg.link.links:
        raise SystemExit("error: the config has no links to measure")
    cfg.link.enabled = True
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    block = args.block or 4 * cfg.link.interval
    torch.manual_seed(cfg.train.seed)
    G, D = api.build_networks(cfg)
    linked = LinkPhase.from_config(cfg, api.model_links(cfg), G.is_3d)
    unlinked = LinkPhase(links=[], watched=linked.watched, cfg=cfg.link)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            cfg,
            G,
            D,
            api.open_data(cfg),
            tmp,
            link=linked,
            g_regularizers=api.backbone_regularizers(cfg),
            progress=False,
        )
        stats = StatsLog(Path(tmp), tensorboard=False)
        for _ in range(block):  # warm-up (allocator, caches)
            trainer.train_step(stats)
        seconds = {"on": 0.0, "off": 0.0}
        images = {"on": 0, "off": 0}
        for _ in range(args.rounds):
            for mode in ("on", "off"):
                trainer.link = linked if mode == "on" else unlinked
                # Start each block on a link step so every on-block holds the same count.
                trainer.step -= trainer.step % cfg.link.interval
                t0 = time.perf_counter()
                for _ in range(block):
                    trainer.train_step(stats)
                seconds[mode] += time.perf_counter() - t0
                images[mode] += block * cfg.train.batch
    on = seconds["on"] / (images["on"] / 1000)
    off = seconds["off"] / (images["off"] / 1000)
    result = {
        "s_per_kimg_link_on": round(on, 3),
        "s_per_kimg_link_off": round(off, 3),
        "overhead": round(on / off, 4),
        "links": len(linked.links),
        "interval": cfg.link.interval,
        "batch": cfg.train.batch,
        "steps_per_block": block,
        "rounds": args.rounds,
        "config": args.config,
        "overrides": args.overrides,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(trainer.device),
        },
        "model": config_to_dict(cfg)["model"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {k: result[k] for k in ("s_per_kimg_link_on", "s_per_kimg_link_off", "overhead")}
        )
    )


if __name__ == "__main__":
    main()
