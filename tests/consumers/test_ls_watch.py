"""`registrator ls` and `registrator watch` against real etcd (and the real daemon)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from consumer_support import CLEAN_ENV, cli, put_entry
from harness import EtcdServer, Proxy, free_port, wait_until

LOCAL = ("127.0.0.1", None)


def ls(etcd, prefix, *args):
    return cli("ls", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix, *args)


def test_ls_table_filters_and_json(etcd, prefix):
    put_entry(etcd, prefix, "web", "h2:b:80", 8081, host="h2", tags=["blue", "x"])
    put_entry(etcd, prefix, "web", "h1:a:80", 8080)
    put_entry(etcd, prefix, "api", "h1:c:80", 9000, address="::1")
    etcd.view.put(f"{prefix}/hosts/h1", json.dumps({"hostname": "h1", "address": "127.0.0.1"}))
    etcd.view.put(f"{prefix}/hosts/h0", json.dumps({"address": "127.0.0.2"}))

    out = ls(etcd, prefix)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows[0] == ["NAME", "ID", "ADDRESS", "PROTO", "HOST", "HEALTH", "TAGS", "AGE"]
    assert [(r[0], r[1], r[2], r[6]) for r in rows[1:]] == [
        ("api", "h1:c:80", "[::1]:9000", "-"), ("web", "h1:a:80", "127.0.0.1:8080", "-"),
        ("web", "h2:b:80", "127.0.0.1:8081", "blue,x")]

    web = json.loads(ls(etcd, prefix, "web", "--json").stdout)
    assert [e["id"] for e in web] == ["h1:a:80", "h2:b:80"]
    assert web[1]["tags"] == ["blue", "x"]
    assert web[1]["port"] == 8081
    assert [e["id"] for e in json.loads(ls(etcd, prefix, "--host", "h2", "--json").stdout)] == [
        "h2:b:80"]
    assert json.loads(ls(etcd, prefix, "nothing", "--json").stdout) == []

    hosts = json.loads(ls(etcd, prefix, "--hosts", "--json").stdout)
    assert [(h["hostname"], h["address"]) for h in hosts] == [("h0", "127.0.0.2"),
                                                              ("h1", "127.0.0.1")]
    assert ls(etcd, prefix, "--hosts").stdout.splitlines()[0].split()[0] == "HOSTNAME"


def test_ls_empty_prefix_prints_an_empty_array(etcd, prefix):
    out = ls(etcd, prefix, "--json")
    assert (out.returncode, out.stdout.strip()) == (0, "[]")


def test_ls_skips_hostile_entries_with_one_warning_each(etcd, prefix):
    put_entry(etcd, prefix, "web", "ok", 8080)
    etcd.view.put(f"{prefix}/services/web/huge", "x" * (1024 * 1024))
    etcd.view.put(f"{prefix}/services/web/junk", "{not json")
    etcd.view.put(f"{prefix}/services/we\u202eb/odd", "{}")
    out = ls(etcd, prefix, "--json")
    assert out.returncode == 0
    assert [e["id"] for e in json.loads(out.stdout)] == ["ok"]
    warnings = [json.loads(line) for line in out.stderr.splitlines()]
    assert len(warnings) == 3
    assert {w["event"] for w in warnings} == {"skipping a registry entry"}


def test_ls_unreachable_store_exits_1_with_one_line_and_bad_flags_2(etcd, prefix):
    out = cli("ls", "--etcd-endpoints", f"http://127.0.0.1:{free_port()}",
              "--etcd-timeout", "1s")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1
    assert "unreachable" in out.stderr
    assert ls(etcd, prefix, "--no-such-flag").returncode == 2
    assert cli("ls", "--prefix", "/").returncode == 2


def test_ls_shows_what_the_daemon_registered(start_daemon, containers, etcd):
    daemon = start_daemon()
    c = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "lsweb"})
    wait_until(lambda: daemon.mine(containers), message="the entry")
    out = json.loads(ls(etcd, daemon.prefix, "lsweb", "--json").stdout)
    assert len(out) == 1
    assert out[0]["container_id"] == c.id
    assert out[0]["host"] == daemon.hostname
    hosts = json.loads(ls(etcd, daemon.prefix, "--hosts", "--json").stdout)
    assert [h["hostname"] for h in hosts] == [daemon.hostname]


# --- watch ------------------------------------------------------------------------------

def start_watch(consumer, endpoint, prefix, *args):
    process = consumer("watch", "--etcd-endpoints", endpoint, "--prefix", prefix, "--json",
                       "--log-level", "info", *args)
    wait_until(lambda: process.logged("watching the registry"), message="watch to start")
    return process


def test_watch_prints_changes_from_now_on(etcd, prefix, consumer):
    put_entry(etcd, prefix, "web", "before", 1)  # already there: not a change "from now on"
    watch = start_watch(consumer, etcd.endpoint, prefix)
    named = start_watch(consumer, etcd.endpoint, prefix, "api")
    record = put_entry(etcd, prefix, "web", "a", 8080)
    put_entry(etcd, prefix, "api", "b", 9000)
    etcd.view.delete(f"{prefix}/services/web/a")
    lines = wait_until(lambda: len(watch.lines()) >= 3 and watch.json_lines(),
                       message="three lines")
    assert [(x["op"], x["key"]) for x in lines] == [
        ("put", f"{prefix}/services/web/a"), ("put", f"{prefix}/services/api/b"),
        ("delete", f"{prefix}/services/web/a")]
    assert lines[0]["value"] == record
    assert lines[2]["value"] is None
    assert lines[0]["revision"] < lines[1]["revision"] < lines[2]["revision"]
    assert [x["key"] for x in wait_until(named.json_lines, message="api line")] == [
        f"{prefix}/services/api/b"]


@pytest.mark.slow
def test_watch_survives_an_etcd_restart(docker_client, consumer, tmp_path):
    server = EtcdServer(host_port=free_port()).start()
    try:
        watch = start_watch(consumer, server.endpoint, "/w")
        put_entry(server, "/w", "web", "a", 1)
        wait_until(lambda: len(watch.lines()) == 1, message="first line")
        server.view.close()
        server.container.get_wrapped_container().stop(timeout=5)
        wait_until(lambda: watch.logged("store unreachable; retrying with backoff"),
                   timeout=30, message="the outage to be noticed")
        server.container.get_wrapped_container().start()
        server.view = type(server.view)(server.port)
        wait_until(server.view.healthy, timeout=30, message="etcd back")
        put_entry(server, "/w", "web", "b", 2)
        lines = wait_until(lambda: len(watch.lines()) >= 2 and watch.json_lines(), timeout=30,
                           message="the change after the restart")
        assert [x["key"] for x in lines] == ["/w/services/web/a", "/w/services/web/b"]
        assert watch.alive()
        # Backoff, not a busy loop: a handful of attempts over the outage, not thousands.
        # One warning per break: a watch that opens on the restarted etcd and breaks again
        # at once (its first connection through Docker's proxy) is a second one.
        assert 1 <= len(watch.logged("store unreachable; retrying with backoff")) <= 3
        assert len(watch.log_events()) < 20
    finally:
        server.stop()


def test_watch_after_compaction_reports_the_difference(etcd, prefix, consumer):
    put_entry(etcd, prefix, "web", "stays", 1)
    put_entry(etcd, prefix, "web", "goes", 2)
    proxy = Proxy(("127.0.0.1", etcd.port))
    try:
        watch = start_watch(consumer, f"http://127.0.0.1:{proxy.port}", prefix)
        proxy.cut()  # the watcher misses what happens next
        wait_until(lambda: watch.logged("store unreachable; retrying with backoff"),
                   timeout=30, message="the cut to be noticed")
        etcd.view.delete(f"{prefix}/services/web/goes")
        put_entry(etcd, prefix, "web", "new", 3)
        put_entry(etcd, prefix, "web", "new", 4)
        etcd.view.client.compact(int(etcd.view.client.get_response("/").header.revision))
        proxy.restore()
        lines = wait_until(lambda: len(watch.lines()) >= 2 and watch.json_lines(), timeout=30,
                           message="the difference")
        # Read again on the store's return (so a store back empty is seen as it is): the
        # compacted history is never asked for.
        assert watch.logged("store answers again; reading the registry again")
        assert sorted((x["op"], x["key"].rsplit("/", 1)[1]) for x in lines) == [
            ("delete", "goes"), ("put", "new")]
        assert next(x for x in lines if x["op"] == "put")["value"]["port"] == 4
    finally:
        proxy.cut()


def test_watch_text_lines(etcd, prefix, consumer):
    process = consumer("watch", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix,
                       "--log-level", "info")
    wait_until(lambda: process.logged("watching the registry"), message="watch to start")
    put_entry(etcd, prefix, "web", "a", 8080)
    etcd.view.delete(f"{prefix}/services/web/a")
    lines = wait_until(lambda: len(process.lines()) >= 2 and process.lines(), message="lines")
    assert lines[0].split()[:4] == ["put", f"{prefix}/services/web/a", "127.0.0.1:8080", "none"]
    assert lines[1].split()[:2] == ["delete", f"{prefix}/services/web/a"]
    assert lines[1].split()[-1].startswith("rev=")


def test_watch_into_a_closed_pipe_exits_quietly(etcd, prefix):
    head = subprocess.Popen(["head", "-n", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    watch = subprocess.Popen(
        [sys.executable, "-m", "registrator", "watch", "--json", "--etcd-endpoints",
         etcd.endpoint, "--prefix", prefix], stdout=head.stdin, stderr=subprocess.PIPE,
        env=CLEAN_ENV)
    head.stdin.close()
    try:
        wait_until(lambda: put_entry(etcd, prefix, "web", "a", 8080) and (
            watch.poll() is not None), timeout=20, message="watch to end with the pipe")
        assert watch.returncode == 0
        assert b"Traceback" not in watch.stderr.read()
        assert json.loads(head.stdout.read())["key"] == f"{prefix}/services/web/a"
    finally:
        for proc in (watch, head):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        watch.stderr.close()
        head.stdout.close()
