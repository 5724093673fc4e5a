"""The registrator image the tests run (deploy and documentation tests), built once per
session the way an operator builds it (scripts/build-image)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The tests build their own tag, one per checkout: dockerd is shared, and another checkout
# (CI, another developer) may be building registrator:latest from other sources meanwhile.
IMAGE = (os.environ.get("REGISTRATOR_TEST_IMAGE")
         or f"registrator-test/registrator:{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}")
