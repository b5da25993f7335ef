"""The ``linkgan`` command: parses arguments (:mod:`linkgan.cli_options`), loads a
:class:`linkgan.Model` and calls one of its methods (or one job function); no work here.

Every user error prints one line ``error: …`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from link_core.errors import UserError
from link_core.interface import parse_seeds
from linkgan.cli_options import DEMO_KIMG, build_parser


def _seeds(text: str) -> list[int]:
    try:
        return parse_seeds(text)
    except ValueError as e:
        raise UserError(f"--seeds: {e}") from None


def _level(text: str | None) -> float | str | None:
    if text in (None, "auto"):
        return text
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--level: expected a number or 'auto', got {text!r}") from None


def _print(value) -> None:
    print(json.dumps(value, indent=2))


def run(args: argparse.Namespace) -> int:
    cmd, progress = args.command, not getattr(args, "quiet", False)
    if cmd == "train":
        _train(args, progress)
    elif cmd == "config":
        from linkgan.build import show_run_config

        print(show_run_config(args.preset, args.overrides), end="")
    elif cmd in ("generate", "edit", "metrics", "compare", "export", "render", "invert", "view"):
        _model_command(args, progress)
    elif cmd == "publish":
        from linkgan.publishing import publish

        kw = {"quality": not args.no_quality, "fid_num": args.fid_num, "progress": progress}
        _print(publish(args.ckpt, args.name, args.out, args.train_command, **kw))
    elif cmd == "train-segmenter":
        from linkgan.datasets import train_segmenter

        _print(train_segmenter(args.data, args.out, args.res, args.steps, args.force, progress))
    elif cmd == "import":
        from linkgan.nvidia_import import import_nvidia

        _print(import_nvidia(args.pkl, args.out, args.force))
    elif cmd == "synth":
        from linkgan.datasets import synthesize

        kw = {"seed": args.seed, "cameras": args.cameras, "progress": progress, "force": args.force}
        path = synthesize(args.kind, args.num, args.res, args.out, sheet=args.sheet, **kw)
        print(f"wrote {args.num} {args.kind} at {args.res}px to {path}")
        if args.sheet:
            print(f"wrote its contact sheet to {args.sheet}")
    elif cmd == "demo":
        from linkgan.demo import run_demo

        # no budget given: the default in images; --minutes alone: minutes only
        kimg = args.kimg if args.kimg is not None else 0.0 if args.minutes else DEMO_KIMG
        run_demo(
            Path(args.out),
            args.minutes or 0.0,
            args.config,
            args.overrides,
            frames=args.frames,
            mesh_grid=args.grid,
            progress=progress,
            render_res=args.render_res,
            kimg=kimg,
            baseline=args.baseline,
            fid_num=args.fid_num,
            compare_num=args.compare_num,
            fid_repeats=args.fid_repeats,
        )
    return 0


def _train(args: argparse.Namespace, progress: bool) -> None:
    if args.dry_run:
        from linkgan.memory import estimate_memory, format_estimate

        print(format_estimate(estimate_memory(args.config, args.overrides, args.nproc)))
        return
    from linkgan.build import train

    result = train(args.out, args.config, args.overrides, args.resume, progress=progress)
    if os.environ.get("RANK", "0") == "0":  # torchrun: one line from rank 0
        print(
            f"trained {result.images_seen / 1000:.1f} kimg in {result.steps} steps "
            f"({result.seconds / 60:.1f} min): {result.run_dir}"
        )


def _model_command(args: argparse.Namespace, progress: bool) -> None:
    """Load the model once, then call the method the sub-command names."""
    from linkgan.model import Model

    cmd = args.command
    seeds = _seeds(args.seeds) if cmd == "generate" else None  # bad input before loading
    level = _level(args.level) if cmd == "export" else None
    if cmd == "view":  # refuse a bind (non-loopback without --allow-remote...) before loading
        from linkgan.viewer import access_policy

        access_policy(args.host, args.port, args.allow_remote, args.token, args.require_token)
    samples = getattr(args, "samples", None)
    samples = samples if samples is not None else 6 if cmd == "edit" else 3
    model = Model.load(args.ckpt)
    if cmd == "generate":
        paths = model.generate(seeds, args.out, args.trunc)
        print(f"wrote {len(paths)} images to {args.out}")
    elif cmd == "edit":
        link = args.link if args.link is not None else "0"
        print(model.edit(args.seed, link, samples, args.out, args.w, args.render_res))
    elif cmd == "metrics":
        options = {"real_num": args.real_num, "repeats": args.repeats}
        _print(model.measure(args.metrics, args.num, args.out, progress, **options))
    elif cmd == "compare":
        from linkgan.comparing import compare_table

        options = {
            "num": args.num,
            "seed": args.seed,
            "jacobian_samples": args.jacobian_samples,
            "mesh_samples": args.mesh_samples,
            "mesh_grid": args.mesh_grid,
            "turntable_frames": args.turntable_frames,
        }
        result = model.compare(
            args.regions, args.out, args.posthoc_ckpt, progress=progress, **options
        )
        print(compare_table(result))
    elif cmd == "export":
        formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
        options = {"samples": samples, "grid": args.grid, "formats": formats, "level": level}
        options.update(progress=progress, w_file=args.w, turntable=args.turntable)
        _print(model.export(args.seed, args.out, args.link, **options))
    elif cmd == "render":
        options = {"samples": samples, "path": args.path, "frames": args.frames}
        options.update(interp=args.interp, maps=args.maps, fps=args.fps, tile=args.tile)
        options.update(pitch=args.pitch, render_resolution=args.render_res, w_file=args.w)
        _print(model.render(args.seed, args.out, args.link, progress=progress, **options))
    elif cmd == "invert":
        from link_core.edit.inversion import InversionSettings

        settings = InversionSettings(
            steps=args.steps,
            lr=args.lr,
            w_plus=args.w_plus,
            noise_maps=not args.no_noise,
            tune_steps=args.tune_steps,
        )
        lpips = {"lpips_vgg": args.lpips_vgg, "lpips_lin": args.lpips_lin}
        options = {"camera": args.camera, "settings": settings, "progress": progress}
        _print(model.invert(args.image, args.out, **options, **lpips))
    elif cmd == "view":
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        from linkgan.viewer import serve

        options = {"allow_remote": args.allow_remote, "token": args.token}
        options.update(require_token=args.require_token)
        serve(model.editor(args.out, args.w), args.host, args.port, **options)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path the OS refuses (a full disk, a file for a folder): one line
        if e.filename is None:
            raise
        print(f"error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
