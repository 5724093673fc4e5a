"""SPEC §10: `ls`, `watch`, `render` and `config` on ZooKeeper, against a real ZooKeeper and
the real daemon; and the store flags that name two stores."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from consumer_support import cli, put_entry
from harness import new_prefix, wait_until
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from zk_harness import new_store_server

LOCAL = ("127.0.0.1", None)
TEMPLATE = ("# web backends\n{% for e in service('web') %}server {{ e.id }} {{ e | hostport }}\n"
            "{% endfor %}")


@pytest.fixture
def zk_prefix(zookeeper):
    name = new_prefix()
    yield name
    zookeeper.view.delete_prefix(name + "/")


def zk(zookeeper, command, prefix, *args):
    return cli(command, "--zookeeper", zookeeper.connect, "--prefix", prefix, *args)


@pytest.mark.parametrize("command", [["run"], ["ls"], ["watch"], ["config", "get", "a", "k"]])
def test_etcd_and_zookeeper_flags_together_exit_2_with_one_line(command):
    out = cli(*command, "--zookeeper", "127.0.0.1:1", "--etcd-endpoints",
              "http://127.0.0.1:2379")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--zookeeper and --etcd-endpoints name two stores" in lines[0]


def test_ls_shows_what_the_daemon_registered_on_zookeeper(zookeeper, start_daemon, containers):
    daemon = start_daemon(server=zookeeper)
    c = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "zkweb"})
    wait_until(lambda: daemon.mine(containers), message="the entry")
    out = zk(zookeeper, "ls", daemon.prefix, "zkweb", "--json")
    assert out.returncode == 0, out.stderr
    entries = json.loads(out.stdout)
    assert [(e["container_id"], e["host"]) for e in entries] == [(c.id, daemon.hostname)]
    hosts = json.loads(zk(zookeeper, "ls", daemon.prefix, "--hosts", "--json").stdout)
    assert [h["hostname"] for h in hosts] == [daemon.hostname]
    table = zk(zookeeper, "ls", daemon.prefix, "zkweb").stdout.splitlines()
    assert table[0].split()[0] == "NAME"
    assert len(table) == 2


def test_ls_unreachable_zookeeper_exits_1_with_one_line():
    out = cli("ls", "--zookeeper", "127.0.0.1:1")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1
    assert "zookeeper unreachable" in out.stderr


def test_watch_prints_changes_and_the_daemons_session_closing(zookeeper, zk_prefix, consumer,
                                                            start_daemon, containers):
    put_entry(zookeeper, zk_prefix, "web", "before", 1)  # already there: not printed
    watch = consumer("watch", "--zookeeper", zookeeper.connect, "--prefix", zk_prefix,
                     "--json", "--log-level", "info")
    wait_until(lambda: watch.logged("watching the registry"), message="watch to start")
    record = put_entry(zookeeper, zk_prefix, "web", "a", 8080)
    put_entry(zookeeper, zk_prefix, "api", "b", 9000)
    # ZooKeeper's watches report states, not each write: a key created and deleted before
    # its first read is never seen at all. Wait for the put before the delete.
    wait_until(lambda: len(watch.lines()) >= 2, message="the two puts")
    zookeeper.view.delete(f"{zk_prefix}/services/web/a")
    lines = wait_until(lambda: len(watch.lines()) >= 3 and watch.json_lines(),
                       message="three lines")
    # In order per key; across keys ZooKeeper's per-znode watches may deliver out of order.
    seen = [(x["op"], x["key"]) for x in lines]
    assert sorted(seen) == sorted([
        ("put", f"{zk_prefix}/services/web/a"), ("put", f"{zk_prefix}/services/api/b"),
        ("delete", f"{zk_prefix}/services/web/a")])
    web_a = [x for x in lines if x["key"] == f"{zk_prefix}/services/web/a"]
    assert [x["op"] for x in web_a] == ["put", "delete"]
    assert web_a[0]["value"] == record
    assert web_a[1]["value"] is None
    # The daemon's ephemeral entries come and go with its session (SIGTERM closes it).
    daemon = start_daemon(server=zookeeper, prefix=zk_prefix)
    containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "eph"})
    wait_until(lambda: any("/services/eph/" in x["key"] for x in watch.json_lines()),
               message="the daemon's entry in the watch")
    assert daemon.stop(signal.SIGTERM) == 0
    host_key = f"{zk_prefix}/hosts/{daemon.hostname}"
    # Separate znodes: their deletes may come in separate batches.
    wait_until(lambda: [x for x in watch.json_lines()
                        if x["op"] == "delete" and "/services/eph/" in x["key"]]
               and ("delete", host_key) in [(x["op"], x["key"]) for x in watch.json_lines()],
               message="the entry's and the host record's deletes once the session closed")
    assert watch.alive()


def test_render_once_on_zookeeper(zookeeper, zk_prefix, tmp_path):
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text(TEMPLATE)
    args = ("--template", str(src), "--dest", str(dest), "--once")
    out = zk(zookeeper, "render", zk_prefix, *args)
    assert out.returncode == 0, out.stderr
    assert dest.read_text() == "# web backends\n"
    put_entry(zookeeper, zk_prefix, "web", "a", 8080)
    put_entry(zookeeper, zk_prefix, "web", "b", 8081, address="::1")
    assert zk(zookeeper, "render", zk_prefix, *args).returncode == 0
    assert dest.read_text() == ("# web backends\nserver a 127.0.0.1:8080\n"
                                "server b [::1]:8081\n")


def test_config_set_get_rm_on_zookeeper(zookeeper, zk_prefix):
    def config(*args):
        return cli("config", *args, "--zookeeper", zookeeper.connect, "--prefix", zk_prefix)

    assert config("set", "shop", "db.url", "postgres://db").returncode == 0
    assert config("set", "shop", "db.url", "postgres://replica", "--host", "h7").returncode == 0
    assert config("set", "shop", "tls/ca-file", "/etc/ca.pem").returncode == 0
    view = zookeeper.view
    assert view.items(zk_prefix + "/") == {
        f"{zk_prefix}/config/shop/defaults/db.url": b"postgres://db",
        f"{zk_prefix}/config/shop/defaults/tls/ca-file": b"/etc/ca.pem",
        f"{zk_prefix}/config/shop/hosts/h7/db.url": b"postgres://replica",
    }
    # Configuration values outlive every session: persistent znodes.
    assert view.lease_of(f"{zk_prefix}/config/shop/defaults/db.url") == 0
    got = config("get", "shop", "db.url", "--host", "h7")
    assert (got.returncode, got.stdout) == (0, "postgres://replica\n")
    assert config("get", "shop", "db.url", "--host", "h8").stdout == "postgres://db\n"
    listed = json.loads(config("ls", "shop", "--json", "--host", "h7").stdout)
    assert [(e["key"], e["source"]) for e in listed] == [("db.url", "host"),
                                                         ("tls/ca-file", "default")]
    assert config("rm", "shop", "db.url", "--host", "h7").returncode == 0
    assert config("get", "shop", "db.url", "--host", "h7").stdout == "postgres://db\n"
    assert config("rm", "shop", "db.url", "--host", "h7").returncode == 1


def test_digest_auth_writes_znodes_only_that_user_may_change(zookeeper, zk_prefix, tmp_path):
    secret = tmp_path / "zk-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)  # a wider one is warned about (issue 21)
    auth = ("--zookeeper-user", "reg", "--zookeeper-password-file", str(secret))
    # The view (anonymous) may remove the test's prefix at the end only with the user's rights.
    zookeeper.view.client.add_auth("digest", "reg:s3cret")
    anonymous = KazooClient(hosts=zookeeper.connect)
    anonymous.start(timeout=10)
    try:
        _digest_auth_checks(zookeeper, zk_prefix, auth, anonymous)
    finally:
        anonymous.stop()
        anonymous.close()


def _digest_auth_checks(zookeeper, zk_prefix, auth, anonymous):
    def config(*args, env=None):
        return cli("config", *args, "--zookeeper", zookeeper.connect, "--prefix", zk_prefix,
                   env=env)

    assert config("set", "shop", "db.url", "postgres://db", *auth).returncode == 0
    # Anyone reads; only the user changes (the password may come from the environment too).
    assert config("get", "shop", "db.url", "--host", "h").stdout == "postgres://db\n"
    key = f"{zk_prefix}/config/shop/defaults/db.url"
    with pytest.raises(NoAuthError):
        anonymous.set(key, b"spoofed")
    refused = config("set", "shop", "db.url", "x")
    assert refused.returncode == 1
    assert "ACL" in refused.stderr
    env = {"REGISTRATOR_ZOOKEEPER_PASSWORD": "s3cret"}
    assert config("set", "shop", "db.url", "y", "--zookeeper-user", "reg",
                  env=env).returncode == 0
    assert zookeeper.view.items(key) == {key: b"y"}
    assert "s3cret" not in refused.stderr


@pytest.mark.slow
def test_watch_survives_a_zookeeper_restart_and_reports_what_changed_meanwhile(consumer):
    server = new_store_server("zookeeper").start()
    try:
        watch = consumer("watch", "--zookeeper", server.connect, "--prefix", "/w", "--json",
                         "--log-level", "info")
        wait_until(lambda: watch.logged("watching the registry"), message="watch to start")
        put_entry(server, "/w", "web", "a", 1)
        wait_until(lambda: len(watch.lines()) == 1, message="first line")
        server.kill()
        # Changed while the watch cannot see: reported once ZooKeeper is back.
        server.start()
        put_entry(server, "/w", "web", "b", 2)
        server.view.delete("/w/services/web/a")
        lines = wait_until(lambda: len(watch.lines()) >= 3 and watch.json_lines(),
                           timeout=30, message="the changes after the restart")
        assert sorted((x["op"], x["key"]) for x in lines[1:]) == [
            ("delete", "/w/services/web/a"), ("put", "/w/services/web/b")]
        assert watch.alive()
    finally:
        server.stop()


def test_a_chroot_is_created_and_everything_lives_under_it(zookeeper, zk_prefix, tmp_path):
    chroot = f"/chroot-{zk_prefix.strip('/')}"
    connect = f"{zookeeper.connect}{chroot}"
    try:
        out = cli("config", "set", "shop", "k", "v", "--zookeeper", connect,
                  "--prefix", zk_prefix)
        assert out.returncode == 0, out.stderr
        assert zookeeper.view.items(chroot + "/") == {
            f"{chroot}{zk_prefix}/config/shop/defaults/k": b"v"}
        got = cli("config", "get", "shop", "k", "--host", "h", "--zookeeper", connect,
                  "--prefix", zk_prefix)
        assert got.stdout == "v\n"
    finally:
        zookeeper.view.delete_prefix(chroot + "/")


@pytest.mark.parametrize("command", [["ls"], ["ls", "--hosts"], ["watch"], ["render"],
                                     ["render", "--once"], ["config", "get", "shop", "k"],
                                     ["config", "ls", "shop"]])
def test_read_only_commands_do_not_create_a_missing_chroot(zookeeper, tmp_path, command):
    chroot = f"/missing-{new_prefix().strip('/')}"
    if command[0] == "render":
        src = tmp_path / "t.j2"
        src.write_text(TEMPLATE)
        command = [*command, "--template", str(src), "--dest", str(tmp_path / "out")]
    try:
        out = cli(*command, "--zookeeper", f"{zookeeper.connect}{chroot}", "--host", "h",
                  timeout=20) if command[0] == "config" else cli(
            *command, "--zookeeper", f"{zookeeper.connect}{chroot}", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{command[0]} kept running on a chroot that does not exist")
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "no such chroot" in lines[0]
    assert chroot in lines[0]
    assert zookeeper.view.client.exists(chroot) is None


def test_watch_and_render_follow_a_server_that_comes_back_empty(consumer, tmp_path):
    """ZooKeeper restarted on an empty data directory refuses the consumers' sessions;
    kazoo alone retries them forever and both keep the view they had."""
    server = new_store_server("zookeeper").start()
    try:
        server.bump_zxid()  # what the consumers read is later than the empty server's zxid
        put_entry(server, "/w", "web", "a", 1)
        src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
        src.write_text(TEMPLATE)
        flags = ("--zookeeper", server.connect, "--prefix", "/w", "--log-level", "info")
        watch = consumer("watch", *flags, "--json")
        consumer("render", *flags, "--template", str(src), "--dest", str(dest))
        wait_until(lambda: watch.logged("watching the registry") and dest.exists()
                   and "server a " in dest.read_text(), message="both started")
        put_entry(server, "/w", "web", "b", 2)
        wait_until(lambda: len(watch.lines()) == 1, message="the watch to see b")
        server.restart_empty()
        put_entry(server, "/w", "web", "c", 3)
        gone = [("delete", "/w/services/web/a"), ("delete", "/w/services/web/b"),
                ("put", "/w/services/web/c")]
        wait_until(lambda: sorted((x["op"], x["key"]) for x in watch.json_lines()[1:])
                   == gone, timeout=20, message="the watch to report what the server has")
        wait_until(lambda: dest.read_text() == "# web backends\nserver c 127.0.0.1:3\n",
                   timeout=20, message="render to follow the server")
        assert watch.alive()
    finally:
        server.stop()
