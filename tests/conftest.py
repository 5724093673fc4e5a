"""Settings every test run needs, set before testcontainers is imported anywhere."""

import os

# No image registry is reachable: the reaper image cannot be pulled, and this machine has
# /.dockerenv, so without these testcontainers would hand out the bridge gateway address.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TC_HOST", "127.0.0.1")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
