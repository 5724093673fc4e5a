"""Label health checks (SPEC §6) against real containers: the daemon probes the registered
address (127.0.0.1 here) and the entry follows the check in both directions."""

from __future__ import annotations

from harness import wait_until

LOCAL = ("127.0.0.1", None)
WEB = "sh -c 'mkdir -p /www && echo ok > /www/health && httpd -f -p 80 -h /www'"
FAST = {"registrator.check.interval": "200ms", "registrator.check.timeout": "150ms"}


def registered(daemon, containers, container):
    return any(v["container_id"] == container.id for v in daemon.mine(containers).values())


def test_http_check_gates_registration_both_ways(start_daemon, containers):
    daemon = start_daemon()
    c = containers.run(WEB, ports={"80/tcp": LOCAL},
                       labels={"registrator.check.http": "/health", "registrator.check.rise": "2",
                               "registrator.check.fall": "2", **FAST})
    wait_until(lambda: registered(daemon, containers, c), message="registered once passing")
    assert c.exec_run("rm /www/health").exit_code == 0
    wait_until(lambda: not registered(daemon, containers, c), message="removed after failing")
    assert daemon.logged("health check failing; deregistering")
    assert c.exec_run("sh -c 'echo ok > /www/health'").exit_code == 0
    wait_until(lambda: registered(daemon, containers, c), message="back after passing again")


def test_a_failing_service_is_never_registered(start_daemon, containers):
    daemon = start_daemon()
    broken = containers.run(WEB, ports={"80/tcp": LOCAL},
                            labels={"registrator.check.http": "/missing", **FAST})
    healthy = containers.run(WEB, ports={"80/tcp": LOCAL},
                             labels={"registrator.check.http": "/health", **FAST})
    wait_until(lambda: registered(daemon, containers, healthy), message="the healthy one")
    # Several check rounds of the broken one have run by now (same interval, started first).
    wait_until(lambda: daemon.logged("health check passing; registering"),
               message="the passing log line")
    assert not registered(daemon, containers, broken)


def test_tcp_check_follows_the_listener(start_daemon, containers):
    daemon = start_daemon()
    # httpd daemonises beside a sleep: killing it closes the port, the container stays.
    c = containers.run("sh -c 'httpd -p 80; sleep 600'", ports={"80/tcp": LOCAL},
                       labels={"registrator.check.tcp": "true", "registrator.check.fall": "1",
                               **FAST})
    wait_until(lambda: registered(daemon, containers, c), message="registered")
    assert c.exec_run("sh -c 'kill $(pidof httpd)'").exit_code == 0
    wait_until(lambda: not registered(daemon, containers, c), message="removed")


def test_gliderlabs_check_labels(start_daemon, containers):
    daemon = start_daemon()
    c = containers.run(WEB, ports={"80/tcp": LOCAL},
                       environment={"SERVICE_CHECK_HTTP": "/health",
                                    "SERVICE_CHECK_INTERVAL": "200ms",
                                    "SERVICE_CHECK_TIMEOUT": "150ms"})
    wait_until(lambda: registered(daemon, containers, c), message="registered")
    assert c.exec_run("rm /www/health").exit_code == 0
    wait_until(lambda: not registered(daemon, containers, c), message="removed (fall=3)")


def test_invalid_check_label_warns_and_registers_without_check(start_daemon, containers):
    daemon = start_daemon()
    c = containers.run(WEB, ports={"80/tcp": LOCAL},
                       labels={"registrator.check.http": "/health",
                               "registrator.check.interval": "often"})
    wait_until(lambda: registered(daemon, containers, c), message="registered at once")
    warning = daemon.logged("bad label", label="registrator.check.interval")
    assert len(warning) == 1
    assert "no label check" in warning[0]["problem"]


def test_healthy_entry_survives_a_daemon_restart_without_flapping(start_daemon, containers):
    first = start_daemon("--keep-on-exit", "--ttl", "60")
    c = containers.run(WEB, ports={"80/tcp": LOCAL},
                       labels={"registrator.check.http": "/health", **FAST})
    key = wait_until(lambda: next(iter(first.mine(containers)), None), message="registered")
    view = first.etcd.view
    _, meta = view.client.get(key)
    created = meta.create_revision
    assert first.stop() == 0  # keeps the entry
    second = start_daemon("--ttl", "60")
    new_lease = int(second.host_record()["lease"], 16)
    wait_until(lambda: view.lease_of(key) == new_lease, message="the new run's lease on it")
    wait_until(lambda: second.logged("revoked the lease of a previous run"),
               message="the takeover")
    _, meta = view.client.get(key)
    # Deleted and written again (a check starting "down") would give a new create revision.
    assert meta is not None
    assert meta.create_revision == created
    assert registered(second, containers, c)
