"""The ground floor: what every backbone, tool and the face share.

Rooms (subpackages), lower first; each imports only rooms above it in this list and the two
ground modules (:mod:`link_core.errors`, :mod:`link_core.interface`):

- :mod:`link_core.data`: cameras, image I/O, data sets and the data-set writer;
- :mod:`link_core.weights`: safetensors checkpoints and a code-free reader of NVIDIA pickles;
- :mod:`link_core.link`: regions, links and the LinkGAN loss (eqs. 3-6);
- :mod:`link_core.synth`: the built-in synthetic data sets and ``open_dataset``;
- :mod:`link_core.metrics`: the paper's masked MSE, SWD, FID/KID, LPIPS;
- :mod:`link_core.edit`: GAN inversion, w files, part segmenters;
- :mod:`link_core.train`: config, the training loop and its phases.
"""
