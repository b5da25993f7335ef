"""Built-in synthetic data sets: 2-D toy faces, and procedural 3-D heads and scenes.

Two kinds of 3-D object, each item a pure function of ``(seed, index)``:

- ``"heads"``: an ellipsoid head (random size, aspect and skin colour), two eyes with pupils,
  a nose (cone or ellipsoid), a flattened-ellipsoid mouth and, on most heads, hair (a cap,
  a cap with a bun) or a hat, on a white background. Parts: :data:`HEAD_PARTS`.
- ``"scenes"``: a chequered ground disc under a sky gradient with one object on it (box,
  ellipsoid, cylinder or cone; random size, colour, place and turn). Parts:
  :data:`SCENE_PARTS`.

Part id 0 is always "nothing was hit" (``background`` for heads, ``sky`` for scenes).
``left_eye`` is the eye at world ``-x``: on the image's left in a frontal view.

World: y up, objects face +z and lie inside ``[-0.46, 0.46]³`` (within the renderer's
``[-0.5, 0.5]³`` box), centred on the origin, seen by cameras of :data:`SYNTH_CAMERA`.
Labels are EG3D's 25 floats (see :mod:`link_core.data.cameras`).

Every part is its own triangle mesh with one part id per face, so a mask is exact: the
rasterizer's ``pix_to_face`` is looked up in the face part ids. Images are rasterized at
2x and area-downsampled; a mask pixel is the most frequent of its 2x2 sub-pixels (ties go
to the higher id, i.e. the smaller part). Shading is Lambertian with two lights fixed in
the world, so every view of an item shows the same colours (view-independent, as the
tri-plane decoder assumes).

pytorch3d (its CPU rasterizer only) is imported inside
:func:`link_core.synth.raster.rasterize_tiled`, so importing this package, and the training
path, never loads it.
"""

from link_core.synth.builtin import open_dataset, synthetic_3d_zip
from link_core.synth.dataset import SynthDataset, box_part_stats, parts_named
from link_core.synth.meshes import HEAD_PARTS, KINDS, SCENE_PARTS, SYNTH_CAMERA
from link_core.synth.render import item_label, item_mesh, render_views
from link_core.synth.toyfaces import (
    SUPERSAMPLE,
    TOYFACE_BOXES,
    TOYFACE_PARTS,
    ToyFaces,
    draw_toyface,
)
from link_core.synth.write import synthesize

__all__ = [
    "HEAD_PARTS",
    "KINDS",
    "SCENE_PARTS",
    "SUPERSAMPLE",
    "SYNTH_CAMERA",
    "TOYFACE_BOXES",
    "TOYFACE_PARTS",
    "SynthDataset",
    "ToyFaces",
    "box_part_stats",
    "draw_toyface",
    "item_label",
    "item_mesh",
    "open_dataset",
    "parts_named",
    "render_views",
    "synthesize",
    "synthetic_3d_zip",
]
