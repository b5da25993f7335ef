"""A loaded model: one checkpoint read once, then every job on it.

``Model.load(path)`` reads the EMA generator and the config from a run directory, a
checkpoint, a ``model.safetensors`` file or ``base:NAME`` (safetensors and JSON only: nothing
from the file is executed); its methods generate, edit, render, export, measure, invert and
open the editor without reading the file again. The CLI loads one per command; the demo one
per trained run. See ``docs/python-api.md``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from link_core.data.images import save_image_grid
from link_core.data.outputs import check_out_folder, staged_folder
from link_core.errors import UserError
from link_core.interface import seeds_to_z, view_cameras
from link_core.link import Link
from link_core.train.config import Config
from link_core.train.link_phase import links_from_config
from linkgan.build import load_generator, resolve_weights


def find_link(links: list[Link], key: str) -> Link:
    """A link by name or by index."""
    for link in links:
        if link.name == key:
            return link
    if key.isdigit() and int(key) < len(links):
        return links[int(key)]
    names = ", ".join(f"{i}:{lk.name}" for i, lk in enumerate(links)) or "none"
    raise UserError(f"--link: no link {key!r} in this model (links: {names})")


def latent(
    G: torch.nn.Module, seed: int, w_file: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(``ws [1, num_ws, w_dim]``, camera ``c [1, c_dim]``, a name for files) of a seed, or
    of a w file (from inversion) when given; the camera is the file's or the frontal view.
    A w file's noise maps are copied into ``G`` (:meth:`Model.latent` puts G's own back)."""
    c = view_cameras(G, 1)
    if w_file is None:
        return G.mapping(seeds_to_z([seed], G.z_dim), c), c, f"seed{seed:04d}"
    from link_core.edit.latents import apply_noise_maps, load_w

    ws, c_file = load_w(w_file, G.num_ws, G.w_dim, G.c_dim)
    apply_noise_maps(G, w_file)  # the inversion's noise maps belong to its w
    return ws, (c if c_file is None else c_file), Path(w_file).stem


class Model:
    """A generator loaded once, with its config and links, and the jobs that use it.

    Attributes: ``G`` (the EMA generator: eval mode, no gradients), ``config``
    (:class:`~link_core.train.config.Config`), ``links`` (built on first use, once),
    ``source`` (the weights file read), ``name`` (for titles: the last part of what was
    loaded), ``spec`` (what was loaded, as given: error messages name it).
    """

    def __init__(
        self, G: torch.nn.Module, config: Config, source: str | Path, spec: str | Path = ""
    ):
        self.G = G
        self.config = config
        self.source = Path(source)
        self.spec = str(spec or source)
        self.name = Path(self.spec).name
        self._own_buffers: dict[str, torch.Tensor] | None = None  # before a w file's noise
        self._noise_from: str | None = None

    @classmethod
    def load(cls, path_or_base_name: str | Path, device: str | torch.device = "cpu") -> Model:
        """Read a run directory (its latest checkpoint), a checkpoint or weights file, or
        ``base:NAME`` (a published base model) once."""
        source = resolve_weights(path_or_base_name)
        G, cfg = load_generator(source, device)
        return cls(G, cfg, source, path_or_base_name)

    def __repr__(self) -> str:
        kind = "3-D" if self.is_3d else "2-D"
        return f"Model({self.spec!r}, {self.config.model.backbone}, {kind})"

    @property
    def is_3d(self) -> bool:
        """Whether G renders a 3-D field (depth, meshes, camera paths)."""
        return bool(self.G.is_3d)

    @cached_property
    def links(self) -> list[Link]:
        """The links the model was trained with (even with the loss switched off, the regions
        and axes still say what to edit and measure)."""
        return links_from_config(self.config, self.G.is_3d)

    def link(self, key: str | int) -> Link:
        """A link by name or by index (a one-line UserError naming the model's links)."""
        return find_link(self.links, str(key))

    # -- latents ---------------------------------------------------------------------------

    def restore_noise(self) -> None:
        """Put G's own noise maps back after a w file's (what a fresh load would give)."""
        if self._noise_from is not None and self._own_buffers is not None:
            for name, buf in self.G.named_buffers():
                buf.copy_(self._own_buffers[name])
        self._noise_from = None

    @torch.no_grad()
    def latent(
        self, seed: int, w_file: str | Path | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, str]:
        """(``ws [1, num_ws, w_dim]``, camera ``c [1, c_dim]``, a name for files) of a seed,
        or of a w file from inversion (its camera and noise maps too)."""
        if w_file is None:
            self.restore_noise()
        else:
            if self._own_buffers is None:
                self._own_buffers = {n: b.clone() for n, b in self.G.named_buffers()}
            self._noise_from = str(w_file)
        return latent(self.G, seed, w_file)

    # -- jobs ------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, seeds: list[int], out: str | Path, truncation: float = 1.0) -> list[Path]:
        """One PNG per seed (``seedNNNN.png``) plus ``grid.png`` of all of them."""
        self.restore_noise()
        G = self.G
        out = check_out_folder(out)
        c = view_cameras(G, len(seeds))
        ws = G.mapping(seeds_to_z(seeds, G.z_dim), c, truncation_psi=truncation)
        images = G.synthesis(ws, c, noise_mode="const")["image"]
        names = [f"seed{s:04d}.png" for s in seeds]
        with staged_folder(out) as tmp:  # all files or none (a full disk changes nothing)
            for name, img in zip(names, images, strict=True):
                save_image_grid(img[None], tmp / name, cols=1)
            save_image_grid(images, tmp / "grid.png", cols=min(8, len(seeds)))
        return [out / name for name in [*names, "grid.png"]]

    @torch.no_grad()
    def edit(
        self,
        seed: int,
        link: str | int,
        samples: int,
        out: str | Path,
        w_file: str | Path | None = None,
        render_resolution: int | None = None,
    ) -> Path:
        """An edit grid for one link, ``out/edit_<seed or w>_<link>.png``: the original and K
        resamples of its axes, heat maps below (3-D models: neural rendering at
        ``render_resolution``, None: as trained)."""
        from render.grids import save_edit_grid

        if samples < 1:
            raise UserError("--samples: must be >= 1")
        check_out_folder(out)
        target = self.link(link)
        ws, c, name = self.latent(seed, w_file)
        path = Path(out) / f"edit_{name}_{target.name}.png"
        return save_edit_grid(self.G, ws, target, samples, seed, path, c, render_resolution)

    def render(self, seed: int, out: str | Path, link: str | None = None, **options: Any):
        """A video (mp4 / GIF / PNG folder, by ``out``'s suffix) of a seed on a camera path;
        with ``link``, K resamples turn beside it. Options: see
        :func:`linkgan.rendering.render`. Returns the summary."""
        from linkgan.rendering import render

        return render(self, seed, out, link, **options)

    def export(self, seed: int, out: str | Path, link: str | None = None, **options: Any):
        """Coloured world-unit meshes of a seed (and of K link edits, with heat maps) into
        ``out/`` with ``summary.json`` (3-D models). Options: see
        :func:`linkgan.exporting.export_meshes`. Returns the summary."""
        from linkgan.exporting import export_meshes

        return export_meshes(self, seed, out, link, **options)

    def compare(
        self,
        regions: list[str] | str,
        out: str | Path,
        posthoc: Model | str | Path | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """LinkGAN's edits against post-hoc local editors (ReSeFa, StyleSpace, SeFa) at
        matched MSE inside each region (a list or ``"a,b"``; empty: every link), on
        ``posthoc`` (a model or checkpoint; default this one). Writes ``out/compare.json``,
        ``compare.md`` and a grid per region. Options (``num``, ``seed``,
        ``jacobian_samples``, ``progress``): see :func:`linkgan.comparing.compare`."""
        from linkgan.comparing import compare

        if isinstance(regions, str):
            regions = [r.strip() for r in regions.split(",") if r.strip()]
        if posthoc is not None and not isinstance(posthoc, Model):
            posthoc = Model.load(posthoc)
        return compare(self, regions, out, posthoc=posthoc, **options)

    def measure(
        self,
        metrics: list[str] | str,
        num: int | None = None,
        out: str | Path | None = None,
        progress: bool = True,
        **options: Any,
    ) -> dict[str, Any]:
        """``link_mse`` / ``fid`` / ``kid`` / ``diversity`` / ``attributes`` (a list or
        ``"a,b"``) as a dict, written to the JSON file ``out`` when given. Options
        (``real_num``, ``fake_seed``, ``repeats``): see :func:`linkgan.measuring.measure`."""
        from linkgan.measuring import measure

        if isinstance(metrics, str):
            metrics = [m.strip() for m in metrics.split(",") if m.strip()]
        self.restore_noise()
        return measure(self, metrics, num, out, progress, **options)

    def invert(self, image: str | Path, out: str | Path, **options: Any) -> dict[str, Any]:
        """Project a real photo into the model; writes ``out/w.safetensors`` (for
        ``w_file=``) and more. Options: see :func:`linkgan.inverting.invert`."""
        from linkgan.inverting import invert

        return invert(self, image, out, **options)

    def editor(self, out: str | Path = "view_out", w_file: str | Path | None = None):
        """A :class:`linkgan.viewer.Editor` on this model (``linkgan view`` serves it),
        optionally on a w file from inversion instead of seeds."""
        from linkgan.viewer import Editor

        w, w_name = None, ""
        if w_file is not None:
            w, _, w_name = self.latent(0, w_file)
        else:
            self.restore_noise()
        return Editor(self.G, self.links, Path(out), self.name, w, w_name)
