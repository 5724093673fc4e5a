"""Names the deploy tests share (a module name of its own: `conftest` is taken)."""

from __future__ import annotations

from pathlib import Path

from registrator_image import IMAGE

ROOT = Path(__file__).resolve().parents[2]
# What the documentation and scripts/build-image call the image by default.
README_IMAGE = "registrator:latest"
__all__ = ["IMAGE", "README_IMAGE", "ROOT"]
