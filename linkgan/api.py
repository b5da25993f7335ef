"""The function API, kept for scripts and benches: each job loads the model it names.

New code loads a :class:`linkgan.Model` once and calls its methods (``docs/python-api.md``);
the functions here are one-line wrappers over it and over the modules that do the work:
:mod:`linkgan.build` (networks, training, loading), :mod:`linkgan.model`,
:mod:`linkgan.rendering`, :mod:`linkgan.exporting`, :mod:`linkgan.measuring`,
:mod:`linkgan.inverting`, :mod:`linkgan.publishing`, :mod:`linkgan.datasets`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from link_core.train.config import load_config
from linkgan.build import (
    ASSETS,
    BACKBONES,
    backbone_regularizers,
    build_networks,
    build_trainer,
    load_generator,
    model_links,
    open_data,
    resolve_weights,
    train,
)
from linkgan.datasets import synthesize, train_segmenter
from linkgan.exporting import MESH_FORMATS
from linkgan.inverting import read_camera, read_target_image
from linkgan.measuring import METRICS, fid_cache_dir
from linkgan.model import Model, find_link, latent
from linkgan.publishing import publish
from linkgan.rendering import axes_text

__all__ = [
    "ASSETS",
    "BACKBONES",
    "MESH_FORMATS",
    "METRICS",
    "Model",
    "axes_text",
    "backbone_regularizers",
    "build_networks",
    "build_trainer",
    "edit",
    "export_meshes",
    "fid_cache_dir",
    "find_link",
    "generate",
    "invert",
    "latent",
    "load_config",
    "load_generator",
    "measure",
    "model_links",
    "open_data",
    "open_editor",
    "publish",
    "read_camera",
    "read_target_image",
    "render",
    "resolve_weights",
    "synthesize",
    "train",
    "train_segmenter",
]


def generate(ckpt_path: str | Path, seeds: list[int], out: str | Path, truncation: float = 1.0):
    """:meth:`Model.generate` of the model at ``ckpt_path``."""
    return Model.load(ckpt_path).generate(seeds, out, truncation)


def edit(ckpt_path: str | Path, seed: int, link: str, samples: int, out: str | Path, **kw) -> Path:
    """:meth:`Model.edit` (``w_file``, ``render_resolution``)."""
    return Model.load(ckpt_path).edit(seed, link, samples, out, **kw)


def render(ckpt_path: str | Path, seed: int, out: str | Path, **kw) -> dict[str, Any]:
    """:meth:`Model.render` (options of :func:`linkgan.rendering.render`)."""
    return Model.load(ckpt_path).render(seed, out, **kw)


def export_meshes(ckpt_path: str | Path, seed: int, out: str | Path, **kw) -> dict[str, Any]:
    """:meth:`Model.export` (options of :func:`linkgan.exporting.export_meshes`)."""
    return Model.load(ckpt_path).export(seed, out, **kw)


def measure(ckpt_path: str | Path, metrics: list[str], **kw) -> dict[str, Any]:
    """:meth:`Model.measure` (``num``, ``out``, ``progress``)."""
    return Model.load(ckpt_path).measure(metrics, **kw)


def invert(ckpt_path: str | Path, image: str | Path, out: str | Path, **kw) -> dict[str, Any]:
    """:meth:`Model.invert` (options of :func:`linkgan.inverting.invert`)."""
    return Model.load(ckpt_path).invert(image, out, **kw)


def open_editor(ckpt_path: str | Path, out: str | Path = "view_out", w_file=None):
    """:meth:`Model.editor`: a :class:`linkgan.viewer.Editor` on the model."""
    return Model.load(ckpt_path).editor(out, w_file)
