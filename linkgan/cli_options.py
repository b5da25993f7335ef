"""The ``linkgan`` command's arguments: shared option groups (``--ckpt``, ``--seed``/``--w``,
``--link``/``--samples``, ``--render-res``, ``--out``, ``--set``, ``--quiet``, ``--force``)
defined once as parent parsers, and each sub-command's own options with an example in its
``--help``. :mod:`linkgan.cli` runs what this parses.
"""

from __future__ import annotations

import argparse

from linkgan import __version__


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _parent(*options: tuple[tuple[str, ...], dict]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    for flags, kw in options:
        p.add_argument(*flags, **kw)
    return p


def _parents() -> dict[str, argparse.ArgumentParser]:
    """The shared option groups, each defined once."""
    sets = {"dest": "overrides", "action": "append", "default": [], "metavar": "KEY=VALUE"}
    return {
        "ckpt": _parent(
            (
                ("--ckpt",),
                {"required": True, "help": "run directory, checkpoint, weights file or base:NAME"},
            )
        ),
        "latent": _parent(
            (("--seed",), {"type": int, "default": 0, "help": "seed of the latent"}),
            (("--w",), {"default": None, "help": "a w file (from `linkgan invert`), not --seed"}),
        ),
        "link": _parent(
            (("--link",), {"default": None, "help": "link name or index (edit: default 0)"}),
            (
                ("--samples",),
                {"type": int, "default": None, "help": "resamples K (edit: 6, else 3)"},
            ),
        ),
        "render_res": _parent(
            (
                ("--render-res",),
                {"type": int, "default": None, "help": "neural rendering resolution (3-D)"},
            )
        ),
        "out": _parent((("--out",), {"required": True, "help": "where to write (see above)"})),
        "sets": _parent((("--set",), {**sets, "help": "override a config value, repeatable"})),
        "quiet": _parent(
            (
                ("--quiet", "--no-progress"),
                {"dest": "quiet", "action": "store_true", "help": "no progress bars"},
            ),
        ),
        "force": _parent(
            (("--force",), {"action": "store_true", "help": "replace an existing output"})
        ),
    }


DEMO_KIMG = 13.5
"""``linkgan demo``'s default budget, in images rather than minutes so the demo learns the
same on every machine (about 22 minutes on 2 idle CPU cores with rendering, README)."""

COMMANDS = {
    # name: (help, example, shared option groups)
    "train": (
        "Train or resume a (linked) GAN; --out is the run directory.",
        "linkgan train --config configs/quickstart_2d.yaml --out runs/q2d --set train.minutes=6",
        ("out", "sets", "quiet"),
    ),
    "generate": (
        "Write images for seeds (seedNNNN.png and grid.png in --out).",
        "linkgan generate --ckpt runs/q2d --seeds 0-7 --out gen/",
        ("ckpt", "out"),
    ),
    "edit": (
        "Resample one link's axes: an edit grid with heat maps (a PNG in --out).",
        "linkgan edit --ckpt runs/q2d --seed 3 --link left_eye --samples 6 --out edits/",
        ("ckpt", "latent", "link", "render_res", "out"),
    ),
    "metrics": (
        "Measure a model: link_mse (masked MSE inside/outside each region), fid, kid "
        "(bundled Inception-v3, offline; data statistics cached).",
        "linkgan metrics --ckpt runs/q2d --metrics link_mse,fid,kid --num 256 --out m.json",
        ("ckpt", "quiet"),
    ),
    "compare": (
        "LinkGAN's edits against post-hoc local editors (ReSeFa, StyleSpace, SeFa) on the "
        "same model, at matched MSE inside each region (paper Table 2, Fig. 8): a folder "
        "--out with compare.json, compare.md and a grid per region.",
        "linkgan compare --ckpt base:heads_3d_links --posthoc-ckpt base:heads_3d "
        "--regions eyes,nose,mouth --out cmp/",
        ("ckpt", "out", "quiet"),
    ),
    "export": (
        "Coloured marching-cubes meshes (world units) of a seed and of link edits (3-D "
        "models; a folder --out with summary.json).",
        "linkgan export --ckpt runs/q3d --seed 3 --link top --samples 3 --grid 256 --out meshes/",
        ("ckpt", "latent", "link", "out", "quiet"),
    ),
    "render": (
        "Videos: a seed on a camera path, with K resamples of a link turning beside it "
        "(--out: .mp4, .gif or a folder for PNG frames).",
        "linkgan render --ckpt runs/q3d --seed 3 --link top --samples 3 --frames 60 --out top.mp4",
        ("ckpt", "latent", "link", "render_res", "out", "quiet"),
    ),
    "publish": (
        "Publish a trained run as a base model (fp16 EMA G + D, and a card with quality "
        "figures), loadable as base:NAME.",
        "linkgan publish --ckpt runs/base_heads_3d --name heads_3d",
        ("ckpt", "quiet"),
    ),
    "invert": (
        "Project a real image into a model (GAN inversion): writes w.safetensors for --w, "
        "the reconstruction, a progress video and the loss curve (--out: a new or empty folder).",
        "linkgan invert --ckpt base:heads_3d --image photo.png --out inv/",
        ("ckpt", "out", "quiet"),
    ),
    "train-segmenter": (
        "Train a small part segmenter on a data set with part masks (TorchScript, class names "
        "inside) for semantic links: link.masks.NAME = {segmenter: seg.pt, classes: [...]}.",
        "linkgan train-segmenter --data scenes.zip --out seg.pt",
        ("out", "force", "quiet"),
    ),
    "view": (
        "Edit in the browser: orbit, resample or slide each link's axes, see RGB, depth, "
        "geometry and change maps live; export the GLB on screen, save turntables.",
        "linkgan view --ckpt demo_out/run   # then open http://127.0.0.1:8765/",
        ("ckpt",),
    ),
    "import": (
        "Convert an NVIDIA StyleGAN2-ADA or EG3D network-snapshot.pkl to a safetensors base "
        "model without running anything from the pickle (--out: the .safetensors).",
        "linkgan import --pkl network-snapshot.pkl --out ffhq256.safetensors",
        ("out", "force"),
    ),
    "synth": (
        "Render a synthetic 3-D data set (EG3D format, with part masks) to a .zip (or an "
        "empty/new folder).",
        "linkgan synth --kind heads_hd --num 2000 --res 128 --out h128.zip --sheet h128.png",
        ("out", "force", "quiet"),
    ),
    "demo": (
        "The main job on the built-in data: train, then edit grids, turntable and control "
        "videos, meshes, metrics and index.html.",
        "linkgan demo --kimg 4 --out demo_out",
        ("sets", "quiet"),
    ),
    "config": (
        "Show a preset as the resolved config (defaults filled in, --set applied): the YAML a "
        "run writes to its config.yaml.",
        "linkgan config show configs/quickstart_3d.yaml --set train.kimg=4",
        (),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linkgan",
        description="GANs whose latent axes are explicitly linked to image regions (LinkGAN).",
        epilog="example:\n  linkgan train --config configs/quickstart_2d.yaml --out runs/q2d",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"linkgan {__version__}")
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = _parents()
    p = {}
    for name, (help_, example, groups) in COMMANDS.items():
        p[name] = subs.add_parser(
            name,
            help=help_,
            description=f"{help_}\n\nexample:\n  {example}",
            formatter_class=_Formatter,
            parents=[shared[g] for g in groups],
        )

    a = p["train"].add_argument
    a("--config", help="YAML preset (default: built-in defaults)")
    a("--resume", action="store_true", help="continue the run's latest checkpoint")
    a(
        "--dry-run",
        action="store_true",
        help="print the resolved model (with train.init: what came from the weights), where the "
        "schedules start, parameter counts and memory per process; train nothing",
    )
    a("--nproc", type=int, default=1, help="with --dry-run: processes (GPUs) to estimate for")

    a = p["generate"].add_argument
    a("--seeds", default="0-7", help="e.g. 0-7 or 1,5,9")
    a("--trunc", type=float, default=1.0, help="truncation psi")

    a = p["metrics"].add_argument
    a(
        "--metrics",
        default="link_mse",
        help="comma-separated: link_mse, fid, kid, diversity (each part's variance across "
        "samples, model and data), attributes (hat, hair, nose, skin frequencies; synthetic "
        "heads), shapes (3-D: meshes of --num seeds, default 8: extent, volume, watertight, "
        "pieces)",
    )
    a(
        "--num",
        type=int,
        default=None,
        help="samples (default: metrics.num for link_mse; generated images for fid/kid: 1000, "
        "the paper's 50000)",
    )
    a(
        "--real-num",
        type=int,
        default=None,
        help="fid/kid: a random N of the data set's images as the reals (default: all of "
        "them, the paper's protocol; statistics cached)",
    )
    a(
        "--repeats",
        type=int,
        default=1,
        help="fid/kid: measure on this many disjoint sets of --num fakes and report "
        "mean ± std (the noise of the figure)",
    )
    a("--out", default=None, help="JSON file to write")

    a = p["compare"].add_argument
    a("--regions", default="", help="links to compare, e.g. eyes,nose,mouth (default: all)")
    a(
        "--posthoc-ckpt",
        default=None,
        help="the model the post-hoc editors run on, e.g. the base before linking (default: "
        "--ckpt itself)",
    )
    a("--num", type=int, default=16, help="samples edited per region and method")
    a("--seed", type=int, default=0, help="first seed of the samples")
    a(
        "--jacobian-samples",
        type=int,
        default=4,
        help="samples whose Jacobians give ReSeFa's direction and StyleSpace's channels",
    )
    a(
        "--mesh-samples",
        type=int,
        default=2,
        help="3-D: samples whose meshes are compared (0: none)",
    )
    a("--mesh-grid", type=int, default=64, help="3-D: marching-cubes grid of those meshes")
    a(
        "--turntable-frames",
        type=int,
        default=24,
        help="3-D: frames of each region's turntable video (0: none)",
    )

    a = p["export"].add_argument
    a("--grid", type=int, default=256, help="density grid size per axis")
    a("--format", default="ply,glb", help="comma-separated: ply, obj, glb")
    a(
        "--level",
        default=None,
        help="marching-cubes density level (default 10, EG3D's; 'auto': 10, or half the "
        "peak density for young models that do not reach it)",
    )
    a(
        "--turntable",
        type=int,
        default=0,
        metavar="FRAMES",
        help="also render the meshes turning side by side (pytorch3d) to turntable.mp4",
    )

    a = p["render"].add_argument
    a(
        "--interp",
        action="store_true",
        help="continuous control: move the link's axes to each resample and back",
    )
    a(
        "--path",
        default=None,
        help="turntable | wobble | still | a JSON file of poses (default: turntable for 3-D "
        "models, still for 2-D)",
    )
    a("--frames", type=int, default=60)
    a("--fps", type=float, default=24.0)
    a("--pitch", type=float, default=10.0, help="turntable elevation (degrees)")
    a(
        "--maps",
        default=None,
        help="rows: image, raw, depth, geometry, change, depth_change (default: image, depth, "
        "geometry for 3-D; + change with --link)",
    )
    a("--tile", type=int, default=128, help="tile size in pixels")

    a = p["publish"].add_argument
    a("--name", required=True, help="base name (lowercase, digits, _)")
    a("--out", default=None, help="folder (default: the repository's assets/)")
    a("--command", dest="train_command", default="", help="the command that trained it (card)")
    a("--no-quality", action="store_true", help="skip the quality figures")
    a("--fid-num", type=int, default=500, help="images for FID/KID on the card (0: none)")

    a = p["invert"].add_argument
    a("--image", required=True, help="PNG/JPG (centre-cropped, resized)")
    a("--camera", default=None, help="JSON list of c_dim floats (default: frontal)")
    a("--steps", type=int, default=300)
    a("--lr", type=float, default=0.1)
    a("--w-plus", action="store_true", help="one w per layer (w+)")
    a("--no-noise", action="store_true", help="keep the model's noise maps")
    a("--tune-steps", type=int, default=0, help="pivotal tuning of G afterwards (0: off)")
    a("--lpips-vgg", help="local VGG16 weights (torchvision state dict): adds LPIPS to the loss")
    a("--lpips-lin", help="LPIPS's learned channel weights (lpips' vgg.pth)")

    a = p["train-segmenter"].add_argument
    a("--data", required=True, help="folder / zip with masks/, or synthetic:KIND")
    a("--res", type=int, default=0, help="resolution (0: the data set's)")
    a("--steps", type=int, default=500)

    a = p["view"].add_argument
    a("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    a("--port", type=int, default=8765)
    a(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback; every request then needs the token in the "
        "URL printed at start (plain HTTP: use it on networks you trust)",
    )
    a(
        "--token",
        help="the access token (16-256 of A-Z a-z 0-9 _ -; default: a random one); given, it "
        "is required on loopback too (other local users can read it in `ps`)",
    )
    a("--require-token", action="store_true", help="require a random token on loopback too")
    a("--out", default="view_out", help="folder for saved turntables")
    a("--w", help="a w file (from `linkgan invert`) to edit instead of seeds")
    a("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")

    p["import"].add_argument("--pkl", required=True, help="NVIDIA snapshot (G, D, G_ema)")

    a = p["synth"].add_argument
    a(
        "--kind",
        choices=("heads", "heads_hd", "scenes"),
        default="heads",
        help="heads_hd: the heads with eye whites, ears and glasses (for 128² and up)",
    )
    a("--num", type=int, default=2000, help="number of images")
    a("--res", type=int, default=64, help="resolution (power of two)")
    a("--seed", type=int, default=0)
    a(
        "--cameras",
        choices=("orbit", "frontal"),
        default="orbit",
        help="orbit: 360° yaw, ±30° pitch; frontal: an FFHQ-like cone",
    )
    a(
        "--sheet",
        default=None,
        help="also write a contact sheet PNG: the first 8 items from the front, 50°, the side "
        "and behind, and their part masks (check the parts are recognisable)",
    )

    a = p["demo"].add_argument
    a(
        "--kimg",
        type=float,
        default=None,
        help=f"training budget in thousand images (default {DEMO_KIMG:g})",
    )
    a(
        "--minutes",
        type=float,
        default=None,
        help="training budget in minutes (with --kimg: whichever ends first)",
    )
    a(
        "--baseline",
        action="store_true",
        help="also fine-tune the same budget without the link loss and report how many times "
        "more local each link's edits are, and both models' FID / KID",
    )
    a("--fid-num", type=int, default=500, help="with --baseline: fakes per FID / KID (0: none)")
    a("--fid-repeats", type=int, default=3, help="with --baseline: FID / KID repeats (± std)")
    a(
        "--compare-num",
        type=int,
        default=6,
        help="samples the post-hoc local editors (ReSeFa, StyleSpace, SeFa) edit beside the "
        "links, on the model the run started from (0: no comparison)",
    )
    a("--out", default="demo_out")
    a("--config", default=None, help="preset (default: configs/quickstart_3d.yaml)")
    a("--frames", type=int, default=48, help="frames per video")
    a("--grid", type=int, default=128, help="mesh density grid size")
    a("--render-res", type=int, default=64, help="neural rendering resolution of turntables")

    actions = p["config"].add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print the resolved config as YAML",
        description="Print the resolved config as YAML.\n\nexample:\n  " + COMMANDS["config"][1],
        formatter_class=_Formatter,
        parents=[shared["sets"]],
    )
    show.add_argument("preset", nargs="?", default=None, help="YAML preset (default: defaults)")
    return parser
