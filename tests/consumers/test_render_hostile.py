"""`registrator render` reviewed as an adversary (issue 20, second pass): the reload-debt
marker beside DEST, the environment and the life of check and reload commands, and files
that hold secrets. Real etcd, `registrator render` as a process, real /bin/sh commands."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from consumer_support import CLEAN_ENV, cli, put_entry
from harness import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
from tls_support import USER, USER_PASSWORD, TlsEtcdServer, make_pki

TEMPLATE = "{% for e in service('web') %}server {{ e.id }} {{ e | hostport }}\n{% endfor %}"


def render_args(etcd, prefix, src, dest, *extra):
    return ("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix, "--template",
            str(src), "--dest", str(dest), "--wait", "20ms:200ms", *extra)


def test_reload_marker_never_follows_a_symlink(etcd, prefix, tmp_path, consumer):
    """Whoever can write in DEST's directory must not get render (often root) to truncate or
    create a file of their choosing by planting a symlink where the reload-debt marker goes:
    one to an existing file while render runs, a dangling one before a --once."""
    src, dest, victim = tmp_path / "t.j2", tmp_path / "out.cfg", tmp_path / "victim"
    src.write_text(TEMPLATE)
    victim.write_text("precious\n")
    victim.chmod(0o644)
    marker = tmp_path / ".out.cfg.reload-pending"
    render = consumer(*render_args(etcd, prefix, src, dest, "--reload-cmd", "true"))
    wait_until(lambda: render.logged("reloaded"), message="first render and reload")
    marker.symlink_to(victim)
    put_entry(etcd, prefix, "web", "a", 8080)
    wait_until(lambda: len(render.logged("reloaded")) == 2, message="second reload")
    assert victim.read_text() == "precious\n"
    assert victim.stat().st_mode & 0o777 == 0o644
    assert render.stop() == 0

    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    created = tmp_path / "created-by-render"
    marker.symlink_to(created)
    put_entry(etcd, prefix, "web", "b", 8081)
    out = cli(*render_args(etcd, prefix, src, dest, "--once",
                           "--reload-cmd", "false"))
    assert out.returncode == 1, out.stderr
    assert not created.exists()


@pytest.fixture
def tls_etcd(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    server = TlsEtcdServer(pki).start()
    yield pki, server
    server.stop()


def test_store_passwords_never_reach_check_or_reload_commands(tmp_path, tls_etcd):
    """render's etcd (and ZooKeeper) password is in its environment; the check and reload
    commands (haproxy, nginx, a user's script) must not inherit it."""
    pki, server = tls_etcd
    prefix = f"/sec-{uuid.uuid4().hex[:8]}"
    server.enable_auth(prefix)
    put_entry(server, prefix, "web", "a", 8080)
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text(TEMPLATE)
    seen = tmp_path / "seen-env"
    zk_password = "zk-" + uuid.uuid4().hex  # never used for etcd, only passed along
    out = cli("render", "--prefix", prefix, "--etcd-endpoints", server.endpoint,
              "--etcd-cacert", pki.path("ca.pem"), "--etcd-cert", pki.path("client.pem"),
              "--etcd-key", pki.path("client-key.pem"), "--etcd-user", USER,
              "--template", str(src), "--dest", str(dest), "--once",
              "--check-cmd", f"env >> {seen}", "--reload-cmd", f"env >> {seen}",
              env={"REGISTRATOR_ETCD_PASSWORD": USER_PASSWORD,
                   "REGISTRATOR_ZOOKEEPER_PASSWORD": zk_password})
    assert out.returncode == 0, out.stderr
    assert "server a" in dest.read_text()
    environments = seen.read_text()
    assert environments.count("\nPWD=") == 2  # both commands ran, with an environment
    assert USER_PASSWORD not in environments
    assert zk_password not in environments


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, render, has exited).
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return False


@pytest.mark.parametrize("mode", ["daemon", "once"])
def test_sigterm_during_a_check_ends_it_and_render(etcd, prefix, tmp_path, consumer, mode):
    """A check (or reload) runs in a process group of its own, so a signal to render does
    not reach it: SIGTERM to render must end the command too, not wait for it to finish
    (here never: the cmd-timeout is 10 minutes) nor leave it running behind."""
    src, dest, pidfile = tmp_path / "t.j2", tmp_path / "out.cfg", tmp_path / "check.pid"
    src.write_text(TEMPLATE)
    put_entry(etcd, prefix, "web", "a", 8080)
    extra = ("--once",) if mode == "once" else ()
    render = consumer(*render_args(etcd, prefix, src, dest, *extra, "--cmd-timeout", "600s",
                                   "--check-cmd", f"echo $$ > {pidfile}.tmp && "
                                   f"mv {pidfile}.tmp {pidfile} && exec sleep 600"))
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(),
                         timeout=30, message="the check started"))
    try:
        render.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: not render.alive(), timeout=20, message="render exited")
        wait_until(lambda: not alive(pid), timeout=10, message="the check ended with it")
        assert not dest.exists()  # the check never passed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_failing_reload_keeps_its_backoff_while_other_services_churn(etcd, prefix, tmp_path,
                                                                     consumer):
    """Changes that do not change this template's output must not retry its failing reload
    at each one (a busy registry changes every second): the retry waits for its backoff."""
    src, dest, count = tmp_path / "t.j2", tmp_path / "out.cfg", tmp_path / "reloads"
    src.write_text(TEMPLATE)
    put_entry(etcd, prefix, "web", "a", 8080)
    render = consumer(*render_args(etcd, prefix, src, dest, "--reload-cmd",
                                   f"echo r >> {count}; false"))
    wait_until(lambda: render.logged("reload failed; retrying with backoff"),
               message="the first reload failed")
    pace = threading.Event()
    for port in range(9000, 9032):  # 32 unrelated changes over about 8 s
        put_entry(etcd, prefix, "other", "x", port)
        pace.wait(0.25)
    # Backoff 1, 2, 4 s: at most 4 or 5 tries in those 8 s; a try per change would be ~32.
    assert count.read_text().count("r") <= 8, count.read_text()
    assert dest.read_text() == "server a 127.0.0.1:8080\n"


def test_dest_in_a_symlink_loop_is_one_line_at_start_and_at_sighup(etcd, prefix, tmp_path,
                                                                   consumer):
    """DEST's directory path through a symlink loop: one line and exit 2 at start (not a
    traceback), and a config re-read at SIGHUP that keeps the templates in use (not a dead
    render)."""
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text(TEMPLATE)
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    looped = tmp_path / "loop1" / "out.cfg"
    out = cli(*render_args(etcd, prefix, src, looped, "--once"))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr

    cfg = tmp_path / "render.toml"
    cfg.write_text(f'[[template]]\nsrc = "{src}"\ndest = "{dest}"\nwait = "20ms:200ms"\n')
    render = consumer("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix,
                      "--config", str(cfg))
    wait_until(lambda: render.logged("rendered"), message="first render")
    cfg.write_text(f'[[template]]\nsrc = "{src}"\ndest = "{looped}"\n')
    render.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: render.logged("config not re-read; keeping the templates in use"),
               message="the re-read refused")
    put_entry(etcd, prefix, "web", "a", 8080)
    wait_until(lambda: "server a" in dest.read_text(), message="render goes on")
    assert render.alive()


def render_peak_mb(*args):
    """`registrator <args>` in a process of its own; (exit code, its peak RSS in MB)."""
    probe = ("import atexit, runpy, sys\n"
             "def peak():\n"
             "    status = open('/proc/self/status').read()\n"
             "    print('PEAK', status.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
             "atexit.register(peak)\n"
             "sys.argv = ['registrator', *sys.argv[1:]]\n"
             "runpy.run_module('registrator', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                          text=True, timeout=300, env=CLEAN_ENV, check=False)
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("PEAK ")]
    return done.returncode, int(line.split()[1]) / 1024


def test_an_unchanged_200_mb_file_is_compared_without_two_more_copies(etcd, prefix,
                                                                      tmp_path):
    """A 200 MB render whose text did not change: render compared it with DEST's text read
    whole (its bytes and their decoding: 400 MB more), peaking at about 3x the file."""
    src, dest = tmp_path / "big.j2", tmp_path / "big.out"
    src.write_text('{% for i in range(2000000) %}{{ "x" * 99 }}\n{% endfor %}')
    args = render_args(etcd, prefix, src, dest, "--once")
    code, first = render_peak_mb(*args)
    assert code == 0
    assert dest.stat().st_size == 200_000_000
    code, unchanged = render_peak_mb(*args)
    assert code == 0
    assert unchanged < 560, (first, unchanged)
