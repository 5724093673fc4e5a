"""--metrics-addr: Prometheus metrics and /healthz against a real daemon, Docker and etcd."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from harness import EtcdServer, free_port, wait_until


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(text, name, labels=""):
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_metrics_and_healthz_follow_the_store(start_daemon, containers):
    server = EtcdServer().start()
    try:
        port = free_port()
        daemon = start_daemon("--metrics-addr", f"127.0.0.1:{port}", "--ttl", "3",
                              "--etcd-timeout", "1s", server=server)
        assert wait_until(lambda: get(port, "/healthz") == (200, "ok\n"), message="healthy")
        c = containers.run(ports={"80/tcp": ("127.0.0.1", None)})
        wait_until(lambda: daemon.mine(containers), message="registered")
        _, text = wait_until(
            lambda: (r := get(port, "/metrics")) and (sample(
                r[1], "registrator_event_to_store_seconds_count") or 0) >= 1 and r,
            message="a latency sample")
        assert sample(text, "registrator_registrations_total") >= 1
        assert sample(text, "registrator_docker_events_total", '{action="start"}') >= 1
        assert sample(text, "registrator_services_registered") >= 1
        assert sample(text, "registrator_lease_renewals_total") >= 1
        assert 0 < sample(text, "registrator_lease_ttl_remaining_seconds") <= 3

        server.container.get_wrapped_container().pause()
        try:
            _, reason = wait_until(lambda: (r := get(port, "/healthz"))[0] == 503 and r,
                                   timeout=20, message="503 while etcd is away")
            assert reason.startswith("store unreachable")
            assert reason.count("\n") == 1  # one line
        finally:
            server.container.get_wrapped_container().unpause()
        wait_until(lambda: get(port, "/healthz") == (200, "ok\n"), timeout=20,
                   message="healthy again")
        c.stop(timeout=1)
        wait_until(lambda: (sample(get(port, "/metrics")[1],
                                   "registrator_deregistrations_total") or 0) >= 1,
                   message="a deregistration counted")
    finally:
        daemon.kill()
        server.stop()


def test_metrics_addr_in_use_exits_2_with_one_line(start_daemon, etcd):
    import socket  # noqa: PLC0415 - only this test holds a port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        daemon = start_daemon("--metrics-addr", f"127.0.0.1:{busy.getsockname()[1]}",
                              ready=False)
        assert daemon.proc.wait(20) == 2
    out = daemon.log_path.read_text().strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("registrator: error: --metrics-addr")
