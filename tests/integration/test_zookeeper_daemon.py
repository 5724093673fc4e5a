"""The daemon on a real ZooKeeper in the cases its session makes special (issue 20): a host
record larger than a znode may hold, a server that comes back empty, a takeover."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

from harness import free_port, new_prefix, wait_until
from zk_harness import new_store_server

LOCAL = ("127.0.0.1", None)

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


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_server_that_comes_back_empty_gets_every_entry_again(start_daemon, containers):
    """ZooKeeper restarted on an empty data directory refuses the daemon's session ("client
    has seen zxid ..."): kazoo alone retries it forever and nothing is registered again."""
    server = new_store_server("zookeeper").start()
    try:
        server.bump_zxid()  # the daemon's session sees more than the empty server will have
        port = free_port()
        daemon = start_daemon("--ttl", "10", "--metrics-addr", f"127.0.0.1:{port}",
                              server=server)
        c = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "zkweb"})
        wait_until(lambda: daemon.mine(containers), message="registered")
        old = int(daemon.host_record()["lease"], 16)
        server.restart_empty()
        view = server.view

        def again():
            record = daemon.host_record()
            lease = int(record["lease"], 16) if record else old
            entries = daemon.mine(containers)
            return (lease != old and {v["container_id"] for v in entries.values()} == {c.id}
                    and all(view.lease_of(k) == lease for k in entries))

        wait_until(again, timeout=20, message="every entry written again on a new session")
        refused = daemon.logged("zookeeper refuses this session; starting a new one")
        assert len(refused) == 1
        assert "lost their data" in refused[0]["reason"]
        assert wait_until(lambda: healthz(port) == (200, "ok\n"), message="healthy")
    finally:
        server.stop()
