"""`python -m bench --quick --peers DIR --peers-only` end to end (issue 24), where the peer
programs were built (shared/peers/build.sh; DIR given by REGISTRATOR_PEERS_DIR). No timing
asserted: the figures are what the full run reports; this keeps the section from rotting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = os.environ.get("REGISTRATOR_PEERS_DIR", "")
BUILT = bool(PEERS) and all((Path(PEERS) / n).is_file() for n in ("registrator", "confd"))


@pytest.mark.slow
@pytest.mark.skipif(not BUILT, reason="peers not built: set REGISTRATOR_PEERS_DIR "
                    "(shared/peers/build.sh)")
def test_quick_peers_section_runs_and_reports_every_goal(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--peers", PEERS,
                           "--peers-only", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    peers = json.loads(out.read_text())["peers"]
    assert set(peers["latency"]) == {"floor", "gliderlabs", "ours"}
    assert peers["cold"]["containers"] == 8
    assert set(peers["liveness"]) == {"few", "many", "churn"}
    assert peers["liveness"]["few"]["ours (etcd)"]["entries"] == 4
    assert peers["liveness"]["few"]["gliderlabs (etcd)"]["entries"] == 4
    assert [s["entries"] for s in peers["render"]["sizes"]] == [20]
    assert peers["memory"]["interpreter_rss_mb"] > 0
    verdicts = [line for line in done.stdout.splitlines()
                if line.strip().startswith(("PASS", "MISS"))]
    assert len(verdicts) == 6
