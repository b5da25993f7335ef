"""Editing real images: GAN inversion, w files, and part segmenters (mask providers)."""
