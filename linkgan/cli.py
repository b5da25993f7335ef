"""The ``linkgan`` command: parses arguments and calls :mod:`linkgan.api` (no work here).

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


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _sub(subs, name: str, help_: str, example: str) -> argparse.ArgumentParser:
    return subs.add_parser(
        name,
        help=help_,
        description=f"{help_}\n\nexample:\n  {example}",
        formatter_class=_Formatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linkgan",
        description="GANs whose latent axes are explicitly linked to image regions (LinkGAN).",
        epilog="example:\n  linkgan train --config configs/quickstart_2d.yaml --out runs/q2d",
        formatter_class=_Formatter,
    )
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _sub(
        subs,
        "train",
        "Train or resume a (linked) GAN.",
        "linkgan train --config configs/quickstart_2d.yaml --out runs/q2d --set train.minutes=6",
    )
    p.add_argument("--config", help="YAML preset (default: built-in defaults)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (YAML syntax), repeatable",
    )
    p.add_argument("--resume", action="store_true", help="continue the run's latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print parameter counts and an estimate of memory per process; train nothing",
    )
    p.add_argument(
        "--nproc", type=int, default=1, help="with --dry-run: processes (GPUs) to estimate for"
    )

    p = _sub(
        subs,
        "generate",
        "Write images for seeds.",
        "linkgan generate --ckpt runs/q2d --seeds 0-7 --out gen/",
    )
    p.add_argument("--ckpt", required=True, help="run directory or weights file")
    p.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 1,5,9")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi")
    p.add_argument("--out", required=True)

    p = _sub(
        subs,
        "edit",
        "Resample one link's axes: an edit grid with heat maps.",
        "linkgan edit --ckpt runs/q2d --seed 3 --link left_eye --samples 6 --out edits/",
    )
    p.add_argument("--ckpt", required=True, help="run directory or weights file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--w", default=None, help="a w file (e.g. from inversion) instead of --seed")
    p.add_argument("--link", default="0", help="link name or index")
    p.add_argument("--samples", type=int, default=6, help="number of resamples K")
    p.add_argument(
        "--render-res", type=int, default=None, help="neural rendering resolution (3-D models)"
    )
    p.add_argument("--out", required=True)

    p = _sub(
        subs,
        "metrics",
        "Measure a model: link_mse (masked MSE inside/outside each region), fid, kid "
        "(bundled Inception-v3, offline; data statistics cached).",
        "linkgan metrics --ckpt runs/q2d --metrics link_mse,fid,kid --num 256 --out m.json",
    )
    p.add_argument("--ckpt", required=True, help="run directory or weights file")
    p.add_argument("--metrics", default="link_mse", help="comma-separated metric names")
    p.add_argument(
        "--num",
        type=int,
        default=None,
        help="samples (default: metrics.num for link_mse, 1000 for fid/kid)",
    )
    p.add_argument("--out", default=None, help="JSON file to write")

    p = _sub(
        subs,
        "export",
        "Coloured marching-cubes meshes (world units) of a seed and of link edits.",
        "linkgan export --ckpt runs/q3d --seed 3 --link top --samples 3 --grid 256 --out meshes/",
    )
    p.add_argument("--ckpt", required=True, help="run directory or weights file (3-D model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--w", default=None, help="a w file (e.g. from inversion) instead of --seed")
    p.add_argument("--link", default=None, help="also export K resamples of this link's axes")
    p.add_argument("--samples", type=int, default=3, help="number of resamples K")
    p.add_argument("--grid", type=int, default=256, help="density grid size per axis")
    p.add_argument("--format", default="ply,glb", help="comma-separated: ply, obj, glb")
    p.add_argument(
        "--level",
        default=None,
        help="marching-cubes density level (default 10, EG3D's; 'auto': 10, or half the "
        "peak density for young models that do not reach it)",
    )
    p.add_argument(
        "--turntable",
        type=int,
        default=0,
        metavar="FRAMES",
        help="also render the meshes turning side by side (pytorch3d) to turntable.mp4",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = _sub(
        subs,
        "render",
        "Videos: a seed on a camera path, with K resamples of a link turning beside it.",
        "linkgan render --ckpt runs/q3d --seed 3 --link top --samples 3 --frames 60 --out top.mp4",
    )
    p.add_argument("--ckpt", required=True, help="run directory or weights file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--w", default=None, help="a w file (e.g. from inversion) instead of --seed")
    p.add_argument("--link", default=None, help="show K resamples of this link's axes")
    p.add_argument("--samples", type=int, default=3, help="number of resamples K")
    p.add_argument(
        "--interp",
        action="store_true",
        help="continuous control: move the link's axes to each resample and back",
    )
    p.add_argument(
        "--path",
        default=None,
        help="turntable | wobble | still | a JSON file of poses (default: turntable for 3-D "
        "models, still for 2-D)",
    )
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--pitch", type=float, default=10.0, help="turntable elevation (degrees)")
    p.add_argument(
        "--maps",
        default=None,
        help="rows: image, raw, depth, geometry, change, depth_change (default: image, depth, "
        "geometry for 3-D; + change with --link)",
    )
    p.add_argument("--tile", type=int, default=128, help="tile size in pixels")
    p.add_argument(
        "--render-res", type=int, default=None, help="neural rendering resolution (3-D models)"
    )
    p.add_argument("--out", required=True, help=".mp4, .gif or a folder for PNG frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = _sub(
        subs,
        "publish",
        "Publish a trained run as a base model (fp16 EMA G + D, and a card with quality "
        "figures), loadable as base:NAME.",
        "linkgan publish --ckpt runs/base_heads_3d --name heads_3d",
    )
    p.add_argument("--ckpt", required=True, help="run directory or training checkpoint")
    p.add_argument("--name", required=True, help="base name (lowercase, digits, _)")
    p.add_argument("--out", default=None, help="folder (default: the repository's assets/)")
    p.add_argument(
        "--command",
        dest="train_command",
        default="",
        help="the command that trained it, for the card",
    )
    p.add_argument("--no-quality", action="store_true", help="skip the quality figures")
    p.add_argument(
        "--fid-num", type=int, default=500, help="images for FID/KID on the card (0: none)"
    )

    p = _sub(
        subs,
        "invert",
        "Project a real image into a model (GAN inversion): writes w.safetensors for --w, "
        "the reconstruction, a progress video and the loss curve.",
        "linkgan invert --ckpt base:heads_3d --image photo.png --out inv/",
    )
    p.add_argument("--ckpt", required=True, help="run directory, checkpoint, or base:NAME")
    p.add_argument("--image", required=True, help="PNG/JPG (centre-cropped, resized)")
    p.add_argument("--out", required=True, help="new or empty folder")
    p.add_argument("--camera", default=None, help="JSON list of c_dim floats (default: frontal)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--w-plus", action="store_true", help="one w per layer (w+)")
    p.add_argument("--no-noise", action="store_true", help="keep the model's noise maps")
    p.add_argument(
        "--tune-steps", type=int, default=0, help="pivotal tuning of G afterwards (0: off)"
    )
    p.add_argument(
        "--lpips-vgg", help="local VGG16 weights (torchvision state dict) to add LPIPS to the loss"
    )
    p.add_argument("--lpips-lin", help="LPIPS's learned channel weights (lpips' vgg.pth)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = _sub(
        subs,
        "train-segmenter",
        "Train a small part segmenter on a data set with part masks (TorchScript, class names "
        "inside) for semantic links: link.masks.NAME = {segmenter: seg.pt, classes: [...]}.",
        "linkgan train-segmenter --data scenes.zip --out seg.pt",
    )
    p.add_argument("--data", required=True, help="folder / zip with masks/, or synthetic:KIND")
    p.add_argument("--out", required=True, help="output TorchScript file")
    p.add_argument("--res", type=int, default=0, help="resolution (0: the data set's)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = _sub(
        subs,
        "view",
        "Edit in the browser: orbit, resample or slide each link's axes, see RGB, depth, "
        "geometry and change maps live; export the GLB on screen, save turntables.",
        "linkgan view --ckpt demo_out/run   # then open http://127.0.0.1:8765/",
    )
    p.add_argument("--ckpt", required=True, help="run directory, checkpoint or base:NAME")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--out", default="view_out", help="folder for saved turntables")
    p.add_argument("--w", help="a w file (from `linkgan invert`) to edit instead of seeds")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")

    p = _sub(
        subs,
        "import",
        "Convert an NVIDIA StyleGAN2-ADA or EG3D network-snapshot.pkl to a safetensors base "
        "model without running anything from the pickle.",
        "linkgan import --pkl network-snapshot.pkl --out ffhq256.safetensors",
    )
    p.add_argument("--pkl", required=True, help="NVIDIA snapshot (G, D, G_ema)")
    p.add_argument("--out", required=True, help="output .safetensors (use as --ckpt / train.init)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")

    p = _sub(
        subs,
        "synth",
        "Render a synthetic 3-D data set (EG3D format, with part masks).",
        "linkgan synth --kind heads --num 2000 --res 64 --out heads64.zip",
    )
    p.add_argument("--kind", choices=("heads", "scenes"), default="heads")
    p.add_argument("--num", type=int, default=2000, help="number of images")
    p.add_argument("--res", type=int, default=64, help="resolution (power of two)")
    p.add_argument("--out", required=True, help="output .zip (or an empty/new folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cameras",
        choices=("orbit", "frontal"),
        default="orbit",
        help="orbit: 360° yaw, ±30° pitch; frontal: an FFHQ-like cone",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = _sub(
        subs,
        "demo",
        "The main job on the built-in data: train, then edit grids, turntable and control "
        "videos, meshes, metrics and index.html.",
        "linkgan demo --kimg 4 --out demo_out",
    )
    p.add_argument(
        "--kimg", type=float, default=None, help="training budget in thousand images (default 9)"
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="training budget in minutes (with --kimg: whichever ends first)",
    )
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also fine-tune the same budget without the link loss and report how many times "
        "more local each link's edits are",
    )
    p.add_argument("--out", default="demo_out")
    p.add_argument("--config", default=None, help="preset (default: configs/quickstart_3d.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (YAML syntax), repeatable",
    )
    p.add_argument("--frames", type=int, default=48, help="frames per video")
    p.add_argument("--grid", type=int, default=128, help="mesh density grid size")
    p.add_argument(
        "--render-res", type=int, default=64, help="neural rendering resolution of turntables"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    from linkgan import api

    if args.command == "train" and args.dry_run:
        from linkgan.memory import estimate_memory, format_estimate

        print(format_estimate(estimate_memory(args.config, args.overrides, args.nproc)))
    elif args.command == "train":
        result = api.train(
            args.out, args.config, args.overrides, args.resume, progress=not args.no_progress
        )
        if os.environ.get("RANK", "0") == "0":  # torchrun: one line from rank 0
            print(
                f"trained {result.images_seen / 1000:.1f} kimg in {result.steps} steps "
                f"({result.seconds / 60:.1f} min): {result.run_dir}"
            )
    elif args.command == "generate":
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as e:
            raise UserError(f"--seeds: {e}") from None
        paths = api.generate(args.ckpt, seeds, args.out, args.trunc)
        print(f"wrote {len(paths)} images to {args.out}")
    elif args.command == "edit":
        if args.samples < 1:
            raise UserError("--samples: must be >= 1")
        print(
            api.edit(
                args.ckpt, args.seed, args.link, args.samples, args.out, args.w, args.render_res
            )
        )
    elif args.command == "metrics":
        if args.num is not None and args.num < 1:
            raise UserError("--num: must be >= 1")
        names = [m.strip() for m in args.metrics.split(",") if m.strip()]
        result = api.measure(args.ckpt, names, args.num, args.out)
        print(json.dumps(result, indent=2))
    elif args.command == "export":
        if args.samples < 1:
            raise UserError("--samples: must be >= 1")
        if not 0 <= args.turntable <= 10_000:
            raise UserError(f"--turntable: expected 0..10000 frames, got {args.turntable}")
        formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
        level = args.level
        if level not in (None, "auto"):
            try:
                level = float(level)
            except ValueError:
                raise UserError(f"--level: expected a number or 'auto', got {level!r}") from None
        summary = api.export_meshes(
            args.ckpt,
            args.seed,
            args.out,
            args.link,
            args.samples,
            args.grid,
            formats,
            level,
            not args.no_progress,
            args.w,
            args.turntable,
        )
        print(json.dumps(summary, indent=2))
    elif args.command == "render":
        if args.frames < 1 or args.frames > 10_000:
            raise UserError(f"--frames: expected 1..10000, got {args.frames}")
        if not 16 <= args.tile <= 1024:
            raise UserError(f"--tile: expected 16..1024, got {args.tile}")
        summary = api.render(
            args.ckpt,
            args.seed,
            args.out,
            link=args.link,
            samples=args.samples,
            path=args.path,
            frames=args.frames,
            interp=args.interp,
            maps=args.maps,
            fps=args.fps,
            tile=args.tile,
            pitch=args.pitch,
            render_resolution=args.render_res,
            w_file=args.w,
            progress=not args.no_progress,
        )
        print(json.dumps(summary, indent=2))
    elif args.command == "publish":
        if args.fid_num < 0:
            raise UserError(f"--fid-num: must be >= 0, got {args.fid_num}")
        card = api.publish(
            args.ckpt,
            args.name,
            args.out,
            args.train_command,
            not args.no_quality,
            fid_num=args.fid_num,
        )
        print(json.dumps(card, indent=2))
    elif args.command == "invert":
        from link_core.edit.inversion import InversionSettings

        settings = InversionSettings(
            steps=args.steps,
            lr=args.lr,
            w_plus=args.w_plus,
            noise_maps=not args.no_noise,
            tune_steps=args.tune_steps,
        )
        summary = api.invert(
            args.ckpt,
            args.image,
            args.out,
            args.camera,
            settings,
            not args.no_progress,
            lpips_vgg=args.lpips_vgg,
            lpips_lin=args.lpips_lin,
        )
        print(json.dumps(summary, indent=2))
    elif args.command == "train-segmenter":
        summary = api.train_segmenter(
            args.data, args.out, args.res, args.steps, args.force, not args.no_progress
        )
        print(json.dumps(summary, indent=2))
    elif args.command == "view":
        if not 0 < args.port < 65536:
            raise UserError(f"--port: expected 1..65535, got {args.port}")
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        from linkgan.viewer import serve

        serve(api.open_editor(args.ckpt, args.out, args.w), args.host, args.port)
    elif args.command == "import":
        from linkgan.nvidia_import import import_nvidia

        print(json.dumps(import_nvidia(args.pkl, args.out, args.force), indent=2))
    elif args.command == "synth":
        if Path(args.out).exists() and not args.force:
            raise UserError(f"--out: {args.out} already exists (use --force to replace it)")
        path = api.synthesize(
            args.kind, args.num, args.res, args.out, args.seed, args.cameras, not args.no_progress
        )
        print(f"wrote {args.num} {args.kind} at {args.res}px to {path}")
    elif args.command == "demo":
        from linkgan.demo import DEFAULT_KIMG, run_demo

        out = Path(args.out)
        for run_dir in (out / "run", out / "run_unlinked"):
            if run_dir.exists() and any(run_dir.iterdir()):
                raise UserError(f"--out: {out} already holds a demo run (choose another --out)")
        run_demo(
            out,
            args.minutes or 0.0,
            args.config,
            args.overrides,
            frames=args.frames,
            mesh_grid=args.grid,
            progress=not args.no_progress,
            render_res=args.render_res,
            # no budget given: the default in images; --minutes alone: minutes only
            kimg=args.kimg if args.kimg is not None else 0.0 if args.minutes else DEFAULT_KIMG,
            baseline=args.baseline,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
