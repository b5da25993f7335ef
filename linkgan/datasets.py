"""Data-set jobs that need no model: render a synthetic 3-D data set, and train a part
segmenter for semantic links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from link_core.data.outputs import check_out_file
from link_core.errors import UserError


def synthesize(
    kind: str,
    num: int,
    resolution: int,
    out: str | Path,
    seed: int = 0,
    cameras: str = "orbit",
    progress: bool = True,
    force: bool = False,
    sheet: str | Path | None = None,
) -> str:
    """Render a synthetic 3-D data set to ``out`` (see :mod:`link_core.synth`); refuses an
    existing ``out`` unless ``force``. ``sheet``: also a contact sheet PNG of its first 8
    items (:func:`link_core.synth.render.contact_sheet`)."""
    from link_core.data.images import write_png
    from link_core.data.outputs import check_out_file
    from link_core.synth import synthesize as render_set
    from link_core.synth.render import contact_sheet

    for flag, path in (("--out", out), ("--sheet", sheet)):
        if path is not None and Path(path).exists() and not force:
            raise UserError(f"{flag}: {path} already exists (use --force to replace it)")
    if sheet is not None:
        check_out_file(sheet, "--sheet")
        if Path(sheet).suffix.lower() != ".png":
            raise UserError(f"--sheet: {sheet} must be a .png file")
    written = render_set(
        kind, num, resolution, str(out), seed=seed, cameras=cameras, progress=progress
    )
    if sheet is not None:
        write_png(contact_sheet(kind, range(min(num, 8)), resolution, seed), sheet)
    return written


def train_segmenter(
    data: str,
    out: str | Path,
    resolution: int = 0,
    steps: int = 500,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a part segmenter on a data set with part masks and save it as TorchScript:
    ``data`` is a folder / zip, or ``synthetic:heads|scenes|toyfaces``."""
    from tqdm.auto import tqdm

    from link_core.data import ImageFolderDataset
    from link_core.edit.segmenter import save_segmenter
    from link_core.edit.segmenter import train_segmenter as fit
    from link_core.synth import open_dataset

    out = check_out_file(out)
    if out.exists() and not force:
        raise UserError(f"--out: {out} already exists (use --force to replace it)")
    if steps < 1:
        raise UserError(f"--steps: must be >= 1, got {steps}")
    if data.startswith("synthetic:"):
        kind = data.split(":", 1)[1]
        from link_core.synth import KINDS

        known = ("toyfaces", *KINDS)
        if kind not in known:
            raise UserError(f"--data: unknown synthetic set {kind!r} ({', '.join(known)})")
        dataset = open_dataset("", resolution or 32, synthetic=kind, num_images=1024)
    else:
        if not Path(data).exists():
            raise UserError(f"--data: {data} does not exist")
        if not resolution:
            resolution = ImageFolderDataset(data).resolution
        dataset = ImageFolderDataset(data, resolution=resolution)
        dataset.check_files()
    bar = tqdm(total=steps, desc="segmenter", unit="step", disable=not progress)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix_str(f"loss {loss:.3f}")

    net, quality = fit(dataset, steps=steps, progress=on_step)
    bar.close()
    save_segmenter(net, out, dataset.part_names, dataset.resolution)
    return {"out": str(out), "classes": list(dataset.part_names), **quality}
