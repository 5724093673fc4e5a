"""Issue 11: the ways a host silently stopped registering, each on real dockerd and etcd, each
followed by the fault suite's checker (the store equals what the containers should give)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fault_support import converged, web
from gated_proxy import GatedDockerProxy
from harness import EtcdServer, free_port, wait_until
from zk_harness import both_stores

BIG = "x" * 60_000  # passes the 64 KiB entry check; 28 of them pass etcd's 1.5 MiB


def short_path(tmp_path, what):
    """A unix socket path must stay under 108 bytes; pytest's tmp_path can be longer."""
    return Path("/tmp") / f"rg-{what}-{tmp_path.name[-16:]}"  # noqa: S108


def named_web(containers, service, container_name):
    return containers.run("sleep 3600", ports={"80/tcp": ("127.0.0.1", None)},
                          labels={"registrator.name": service}, name=container_name)


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def check(daemon, docker_client, containers, timeout=15):
    wait_until(lambda: converged(daemon, docker_client, containers.ids), timeout=timeout,
               message="the store to match the containers")


# -- 1. batches too large -----------------------------------------------------------------------
@pytest.mark.slow
def test_many_large_entries_in_one_full_reconcile_do_not_stall_the_host(
        start_daemon, containers, docker_client):
    for i in range(28):
        web(containers, f"big-{i}", {"registrator.meta.blob": BIG})
    # Started after them: the first full reconcile writes all 28 (1.7 MB) at once.
    daemon = start_daemon()
    check(daemon, docker_client, containers, timeout=30)
    late = web(containers, "after-big")
    wait_until(lambda: any(v["container_id"] == late.id for v in daemon.mine(containers).values()),
               message="a later container registered too")
    late.stop(timeout=0)
    check(daemon, docker_client, containers)


def test_entry_etcd_refuses_is_skipped_by_name_and_the_rest_registered(
        start_daemon, containers, docker_client):
    server = EtcdServer(extra="--max-request-bytes 40000 --max-txn-ops 16").start()
    try:
        many = containers.run("sleep 3600", labels={"registrator.name": "many"},
                              ports={f"{p}/tcp": ("127.0.0.1", None) for p in range(8000, 8030)})
        huge = web(containers, "huge", {"registrator.meta.blob": BIG})
        daemon = start_daemon(server=server)
        wait_until(lambda: len([v for v in daemon.mine(containers).values()
                                if v["container_id"] == many.id]) == 30,
                   message="all 30 ports of the many-port container (in txns of <= 16 ops)")
        assert daemon.host_record() is not None
        refused = wait_until(lambda: daemon.logged(
            "store refused the entry (larger than it accepts in one request); service skipped"),
            message="the warning")
        assert refused[0]["container"] == huge.name
        # Still working afterwards: a stop and a start are reflected.
        many.stop(timeout=0)
        small = web(containers, "small")
        wait_until(lambda: {v["container_id"] for v in daemon.mine(containers).values()}
                   == {small.id}, message="changes after the refusal")
        assert len(daemon.logged("store refused the entry (larger than it accepts in one "
                                 "request); service skipped")) == 1
    finally:
        server.stop()


# -- 2. same-name redeploy while the worker is busy ---------------------------------------------
def test_same_name_redeploy_while_the_worker_is_busy_stays_registered(
        start_daemon, containers, docker_client, tmp_path):
    proxy = GatedDockerProxy(short_path(tmp_path, "sock"))
    try:
        busy = web(containers, "busy")
        app = named_web(containers, "app", f"app-{tmp_path.name[-12:]}")
        daemon = start_daemon("--resync", "0", env={"DOCKER_HOST": proxy.url})
        check(daemon, docker_client, containers)
        proxy.hold(busy.id)  # the worker's next look at `busy` takes until released
        busy.kill(signal="USR1")  # an event for it: the worker goes to inspect it
        wait_until(lambda: busy.id in proxy.waiting, message="the worker busy")
        name = app.name
        app.remove(force=True)
        again = named_web(containers, "app", name)
        wait_until(lambda: daemon.logged("docker event", container=again.id[:12]),
                   message="the new container's events reached the daemon")
        proxy.release()
        wait_until(lambda: any(v["container_id"] == again.id
                               for v in daemon.mine(containers).values()),
                   message="the redeployed container registered (no resync)")
        assert not daemon.logged("service key held by another container; this one takes over "
                                 "when that one lets go", container=name)
        check(daemon, docker_client, containers)
    finally:
        proxy.close()


# -- 4. one slow inspect ----------------------------------------------------------------------
def test_a_slow_inspect_does_not_hold_up_other_containers(
        start_daemon, containers, docker_client, tmp_path):
    proxy = GatedDockerProxy(short_path(tmp_path, "sock"))
    try:
        slow = web(containers, "slow")
        daemon = start_daemon("--resync", "0", env={"DOCKER_HOST": proxy.url})
        check(daemon, docker_client, containers)
        proxy.hold(slow.id)  # like dockerd tearing down a container with 1,000 ports
        slow.stop(timeout=0)
        wait_until(lambda: slow.id in proxy.waiting, message="its inspect held")
        other = web(containers, "other")
        wait_until(lambda: any(v["container_id"] == other.id
                               for v in daemon.mine(containers).values()),
                   message="another container registered while the slow one is held")
        assert len(proxy.waiting) == 1  # not asked again and again meanwhile
        proxy.release()
        check(daemon, docker_client, containers)
    finally:
        proxy.close()


# -- 3. a dead log reader -------------------------------------------------------------------------
def _run_cmd(etcd, prefix, hostname, *extra):
    return [sys.executable, "-m", "registrator", "run", "--etcd-endpoints", etcd.endpoint,
            "--prefix", prefix, "--hostname", hostname, "--ip", "127.0.0.1", *extra]


def _mine(etcd, prefix, containers):
    ids = set(containers.ids)
    return {k: v for k, v in etcd.view.services(prefix).items() if v["container_id"] in ids}


@pytest.mark.parametrize("how", ["reader killed", "stderr closed"])
def test_a_dead_log_reader_does_not_stop_registration(etcd, containers, how, tmp_path):
    prefix, hostname = f"/t-dead-{tmp_path.name[-8:]}", "dead-reader"
    if how == "reader killed":
        # `registrator run 2>&1 | reader`, and the reader dies.
        proc = subprocess.Popen(_run_cmd(etcd, prefix, hostname), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        assert b"starting" in proc.stdout.readline()
        proc.stdout.close()
    else:
        proc = subprocess.Popen(["/bin/sh", "-c", 'exec "$@" 2>&- >&-', "sh",
                                 *_run_cmd(etcd, prefix, hostname)])
    try:
        first = web(containers, "first", {"registrator.port": "abc"})  # a warning to write
        wait_until(lambda: _mine(etcd, prefix, containers), message="registered")
        second = web(containers, "second", {"registrator.enable": "maybe"})
        third = web(containers, "third")
        wait_until(lambda: {v["container_id"] for v in _mine(etcd, prefix, containers).values()}
                   == {first.id, third.id}, message="still registering after warnings")
        assert proc.poll() is None
        second.stop(timeout=0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        # SIGTERM still revokes: this host's entries are gone at once.
        assert not _mine(etcd, prefix, containers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        etcd.view.client.delete_prefix(prefix + "/")


# -- 5. two daemons, one host name ---------------------------------------------------------------
@both_stores
def test_a_second_daemon_for_the_same_host_refuses_then_takes_over_when_told(
        start_daemon, containers, docker_client):
    first = start_daemon()
    web(containers, "shared-host")
    check(first, docker_client, containers)
    lease = first.host_record()["lease"]
    second = start_daemon(ready=False)
    assert second.proc.wait(30) == 2
    out = second.log_path.read_text().strip().splitlines()
    assert out[-1].startswith("registrator: error: another registrator runs for --hostname")
    assert "--takeover" in out[-1]
    assert first.host_record()["lease"] == lease  # untouched
    check(first, docker_client, containers)

    third = start_daemon("--takeover")
    assert first.proc.wait(30) == 1  # it says so and stops fighting
    assert first.logged("this host name was taken over by another daemon; stopping")
    assert third.host_record()["lease"] != lease
    check(third, docker_client, containers)


# -- 6 + 7. etcd out of space; /healthz sees failing writes ---------------------------------------
@pytest.mark.slow
def test_nospace_alarm_deletes_go_through_and_writes_resume_on_disarm(
        start_daemon, containers, docker_client):
    server = EtcdServer(extra="--quota-backend-bytes 16000000").start()
    port = free_port()
    try:
        daemon = start_daemon("--metrics-addr", f"127.0.0.1:{port}", server=server)
        leaving = web(containers, "leaving")
        check(daemon, docker_client, containers)
        client = server.view.client
        filled = 0
        with pytest.raises(Exception, match="space exceeded"):  # noqa: PT012 - the loop is what raises
            while filled < 200:
                client.put(f"/fill/{filled}", "z" * 500_000)
                filled += 1
        leaving.stop(timeout=0)
        wait_until(lambda: not daemon.mine(containers), message="deregistered during the alarm")
        arriving = web(containers, "arriving")
        _, reason = wait_until(lambda: (r := healthz(port))[0] == 503 and r, timeout=30,
                                    message="/healthz failing while writes fail")
        assert "store writes failing" in reason
        assert "out of space" in reason
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b"registrator_store_write_failures_consecutive" in metrics

        client.delete_prefix("/fill/")
        ctl = server.container.get_wrapped_container()

        def etcdctl(cmd):
            result = ctl.exec_run(f"/usr/local/bin/etcdctl --endpoints http://127.0.0.1:2379 {cmd}")
            assert result.exit_code == 0, result.output
            return result.output.decode()

        revision = json.loads(etcdctl("endpoint status -w json"))[0]["Status"]["header"]["revision"]
        for cmd in (f"compact {revision}", "defrag", "alarm disarm"):
            etcdctl(cmd)
        wait_until(lambda: any(v["container_id"] == arriving.id
                               for v in daemon.mine(containers).values()),
                   timeout=10, message="registered after disarm")
        wait_until(lambda: healthz(port) == (200, "ok\n"), message="healthy again")
        check(daemon, docker_client, containers)
    finally:
        server.stop()


# -- 8. blue/green on one explicit id --------------------------------------------------------------
def test_blue_green_waiter_is_promoted_when_the_holder_stops(
        start_daemon, containers, docker_client):
    daemon = start_daemon("--resync", "1h")
    shared = {"registrator.id": "live"}
    blue = web(containers, "shop", shared)
    wait_until(lambda: daemon.mine(containers), message="blue registered")
    green = web(containers, "shop", shared)
    wait_until(lambda: daemon.logged("service key held by another container; this one takes "
                                     "over when that one lets go"), message="green waits")
    blue.stop(timeout=0)
    wait_until(lambda: [v["container_id"] for v in daemon.mine(containers).values()]
               == [green.id], timeout=5, message="green promoted without a resync")
    warned = daemon.logged("service key held by another container; this one takes over when "
                           "that one lets go")
    assert len(warned) == 1


# -- 9. SIGHUP ------------------------------------------------------------------------------------
def test_sighup_is_a_full_reconcile_not_a_death(start_daemon, containers, docker_client):
    daemon = start_daemon("--resync", "0")
    c = web(containers, "hup")
    check(daemon, docker_client, containers)
    key = next(iter(daemon.mine(containers)))
    daemon.etcd.view.delete(key)  # drift only a full reconcile repairs (no resync)
    daemon.send(signal.SIGHUP)
    wait_until(lambda: daemon.logged("SIGHUP: full reconcile"), message="logged")
    check(daemon, docker_client, containers)
    assert daemon.proc.poll() is None
    c.stop(timeout=0)
    check(daemon, docker_client, containers)
    assert daemon.stop() == 0


# -- also: clear lines for misconfiguration ------------------------------------------------------
def test_a_docker_socket_this_user_may_not_open_is_named(start_daemon, tmp_path):
    sock_dir = short_path(tmp_path, "perm")
    sock_dir.mkdir(mode=0o755, exist_ok=True)
    proxy = GatedDockerProxy(sock_dir / "docker.sock")
    (sock_dir / "docker.sock").chmod(0o600)
    log = sock_dir / "log"
    try:
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-m", "registrator", "run", "--ip", "127.0.0.1",
                 "--hostname", "perm", "--prefix", "/t-perm"],
                stdout=out, stderr=subprocess.STDOUT,
                env={"DOCKER_HOST": proxy.url, "PATH": "/usr/bin:/bin",
                     "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        try:
            line = wait_until(lambda: next((json.loads(x) for x in log.read_text().splitlines()
                                            if "permission denied" in x), None),
                              message="a line about the socket")
        finally:
            proc.kill()
            proc.wait(10)
        assert str(sock_dir / "docker.sock") in line["error"]
        assert "--group-add" in line["error"]
        assert line["level"] == "error"
    finally:
        proxy.close()


def test_an_endpoint_that_is_not_etcd_is_called_so(start_daemon, tmp_path):
    web_server = subprocess.Popen([sys.executable, "-m", "http.server", str(port := free_port()),
                                   "--bind", "127.0.0.1"], cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        fake = EtcdServer.__new__(EtcdServer)
        fake.port = port
        daemon = start_daemon(server=fake, ready=False)
        line = wait_until(lambda: next((e for e in daemon.log_events()
                                        if e.get("event") == "store failed; retrying"), None),
                          message="a retry line")
        assert "not etcd's gRPC API" in line["error"]
        daemon.kill()
    finally:
        web_server.kill()
        web_server.wait(10)
