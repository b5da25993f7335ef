"""Measures: the paper's masked MSE (``link_mse``), sliced Wasserstein, FID/KID, LPIPS."""

from link_core.metrics.link_mse import (
    compare_to_unlinked,
    cross_leak,
    default_maps,
    edit_seeds,
    link_mse,
    resample_link_axes,
)
from link_core.metrics.swd import sliced_wasserstein

__all__ = [
    "compare_to_unlinked",
    "cross_leak",
    "default_maps",
    "edit_seeds",
    "link_mse",
    "resample_link_axes",
    "sliced_wasserstein",
]
