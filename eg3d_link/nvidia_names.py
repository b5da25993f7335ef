"""Our EG3D tensor names <-> NVlabs EG3D's (``TriPlaneGenerator`` / ``DualDiscriminator``).

The generator is StyleGAN2's mapping and synthesis under ``backbone.`` (tri-planes as its
3·C-channel image), the decoder MLP as ``decoder.net.{0,2}`` (a Sequential with a Softplus
between), and the super-resolution blocks as ``superresolution.block{j}``. The
discriminator is StyleGAN2-ADA's, on 6 channels. Layers inside a block have the same names
on both sides, so only the prefixes move; :mod:`stylegan_link.nvidia_names` does the
StyleGAN2 parts.
"""

from __future__ import annotations

import re

from stylegan_link import nvidia_names as sg2

OURS_ONLY = ("render_resolution", "blur_sigma")
"""Our buffers that hold schedule state, not weights: they keep our (config) value."""
LABEL_STD = "dataset_label_std"
"""A buffer NVlabs' training loop adds to G (the data set's camera-label std, for logs)."""
SR_NOISE = re.compile(r"^superresolution\.block\d+\.conv[01]\.(noise_const|noise_strength)$")
"""NVlabs' SR layers carry noise inputs that its generator never uses (``noise_mode`` none)."""


def generator_name(ours: str) -> str | None:
    """NVlabs' name of one of our tri-plane generator's tensors (None: no counterpart)."""
    if ours in OURS_ONLY:
        return None
    m = re.fullmatch(r"decoder\.fc([01])\.(weight|bias)", ours)
    if m:
        return f"decoder.net.{2 * int(m[1])}.{m[2]}"
    m = re.fullmatch(r"superres\.blocks\.(\d+)\.(.+)", ours)
    if m:
        return f"superresolution.block{m[1]}.{m[2]}"
    return sg2.mapping_name(ours, "backbone.mapping.") or sg2.synthesis_name(
        ours, "backbone.", "backbone.synthesis."
    )


def discriminator_name(ours: str, img_resolution: int) -> str | None:
    """NVlabs' name of one of our dual discriminator's tensors (None: no counterpart)."""
    if ours in OURS_ONLY:
        return None
    return sg2.discriminator_name(ours, img_resolution, our_prefix="net.")


def is_ignored(nv_name: str, sr_noise: bool) -> bool:
    """NVlabs tensors with no counterpart here: resampling filters (we compute them), the
    training loop's label statistics and, when our SR has no noise inputs, the unused SR
    noise tensors."""
    if sg2.is_ignored(nv_name) or nv_name == LABEL_STD:
        return True
    return not sr_noise and bool(SR_NOISE.match(nv_name))
