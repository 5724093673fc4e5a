"""The daemon on a real ZooKeeper in the cases its session makes special (issue 20): a host
record larger than a znode may hold, a server that comes back empty, a takeover."""

from __future__ import annotations

import subprocess
import sys

from harness import new_prefix

# Linux caps one argument at 128 KiB: ten labels of 110 kB make a host record over 1 MB,
# ZooKeeper's largest packet.
HUGE_LABELS = [f"--host-label=k{i}={'x' * 110_000}" for i in range(10)]


def test_a_host_record_over_what_a_znode_holds_is_refused_at_start(zookeeper, tmp_path):
    prefix = new_prefix()
    cmd = [sys.executable, "-m", "registrator", "run", "--zookeeper", zookeeper.connect,
           "--prefix", prefix, "--hostname", "huge", "--ip", "127.0.0.1", *HUGE_LABELS]
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    lines = log.read_text().strip().splitlines()
    assert code == 2, lines[-3:]
    assert len(lines) == 1
    assert lines[0].startswith("registrator: error: --host-label")
    assert "bytes" in lines[0]
    assert len(lines[0]) < 300  # the labels themselves are not echoed
    assert not zookeeper.view.keys(prefix + "/")
