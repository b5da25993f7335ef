"""The LinkGAN regularizer: regions, links, and the loss of eqs. 3-6 (plus a volumetric term)."""

from link_core.link.links import Link, build_links, overlapping_regions, parse_axes
from link_core.link.loss import (
    LOSS_FORMS,
    LinkLossResult,
    change_share,
    change_sums,
    in_out_terms,
    leak_fraction,
    link_loss,
    masked_mse,
    perturb_ws,
    perturbed_ws,
    share_of_sums,
    swap_axes,
)
from link_core.link.regions import (
    Box3DRegion,
    BoxRegion,
    MaskProvider,
    MaskRegion,
    Region,
    build_region,
    resize_mask,
)
from link_core.link.volume import volume_link_loss, volume_points

__all__ = [
    "LOSS_FORMS",
    "Box3DRegion",
    "BoxRegion",
    "Link",
    "LinkLossResult",
    "MaskProvider",
    "MaskRegion",
    "Region",
    "build_links",
    "build_region",
    "change_share",
    "change_sums",
    "in_out_terms",
    "leak_fraction",
    "link_loss",
    "masked_mse",
    "overlapping_regions",
    "parse_axes",
    "perturb_ws",
    "perturbed_ws",
    "resize_mask",
    "share_of_sums",
    "swap_axes",
    "volume_link_loss",
    "volume_points",
]
