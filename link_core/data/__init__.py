"""Data: cameras (EG3D labels, orbits, rays), image I/O, data sets and the data-set writer."""

from link_core.data.dataset import IMAGE_EXTENSIONS, LinkDataset, image_to_float
from link_core.data.folder import ImageFolderDataset
from link_core.data.write import cache_dir, write_dataset_zip

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "LinkDataset",
    "cache_dir",
    "image_to_float",
    "write_dataset_zip",
]
