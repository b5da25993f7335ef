"""linkgan: GANs whose latent axes are linked to image regions (StyleGAN2, tri-plane EG3D).

``linkgan.Model.load(path)`` reads a checkpoint once; its methods do the jobs
(``docs/python-api.md``). The ``linkgan`` command is :mod:`linkgan.cli`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Model", "__version__"]


def __getattr__(name: str) -> Any:
    """``linkgan.Model`` on first use: ``import linkgan`` (and ``linkgan --version``) stays
    light, without torch."""
    if name == "Model":
        from linkgan.model import Model

        return Model
    raise AttributeError(f"module 'linkgan' has no attribute {name!r}")
