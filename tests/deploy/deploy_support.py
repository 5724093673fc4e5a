"""Names the deploy tests share (a module name of its own: `conftest` is taken)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What README and scripts/build-image call the image by default.
README_IMAGE = "registrator:latest"
# The tests build their own tag, one per checkout: dockerd is shared, and another checkout
# (CI, another developer) may be building registrator:latest from other sources meanwhile.
IMAGE = (os.environ.get("REGISTRATOR_TEST_IMAGE")
         or f"registrator-test/registrator:{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}")
