"""`registrator render` and its commands (issue 20, items 2, 8, 10): a failed reload is not
forgotten by a second --once, a restart or SIGHUP, and is retried with backoff while nothing
changes, /healthz failing meanwhile; a check's output is bounded in memory; a reload command
that leaves a background child holding its output is done when it exits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

from consumer_support import cli, put_entry
from harness import free_port, wait_until

TEMPLATE = "{% for e in service('web') %}server {{ e.id }} {{ e | hostport }}\n{% endfor %}"


def render_args(etcd, prefix, src, dest, *extra):
    return ("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix, "--template",
            str(src), "--dest", str(dest), "--wait", "20ms:200ms", *extra)


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code
    except OSError:
        return None


def reloads(marker):
    return marker.read_text().count("reload") if marker.exists() else 0


def test_failed_reload_survives_a_second_once_run(etcd, prefix, tmp_path):
    src, dest, marker, ok = (tmp_path / "t.j2", tmp_path / "out.cfg", tmp_path / "reloads",
                             tmp_path / "reload-works")
    src.write_text(TEMPLATE)
    put_entry(etcd, prefix, "web", "a", 8080)
    args = render_args(etcd, prefix, src, dest, "--once", "--reload-cmd",
                       f"test -e {ok} && echo reload >> {marker}")
    first = cli(*args)
    assert first.returncode == 1
    assert "server a" in dest.read_text()  # swapped in, not reloaded
    again = cli(*args)  # nothing changed, but the reload is still owed
    assert again.returncode == 1, again.stderr
    ok.write_text("")
    third = cli(*args)
    assert third.returncode == 0, third.stderr
    assert reloads(marker) == 1
    assert cli(*args).returncode == 0
    assert reloads(marker) == 1  # owed once, done once
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failed_reload_survives_restart_and_sighup_and_retries_with_backoff(
        etcd, prefix, tmp_path, consumer):
    src, dest, marker, ok = (tmp_path / "t.j2", tmp_path / "out.cfg", tmp_path / "reloads",
                             tmp_path / "reload-works")
    src.write_text(TEMPLATE)
    port = free_port()
    args = render_args(etcd, prefix, src, dest, "--reload-cmd",
                       f"test -e {ok} && echo reload >> {marker}",
                       "--metrics-addr", f"127.0.0.1:{port}")
    first = consumer(*args)
    wait_until(lambda: first.logged("reload failed; retrying with backoff"),
               message="first reload failed")
    wait_until(lambda: healthz(port) == 503, message="/healthz 503")
    assert first.stop() == 0

    # A restart with nothing changed in the registry: the reload is still owed.
    second = consumer(*args)
    wait_until(lambda: second.logged("reload failed; retrying with backoff"), timeout=15,
               message="the restarted render retries the reload")
    wait_until(lambda: healthz(port) == 503, message="/healthz 503 after the restart")
    second.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: second.logged("config re-read"), message="config re-read")
    failures = len(second.logged("reload failed; retrying with backoff"))
    wait_until(lambda: len(second.logged("reload failed; retrying with backoff")) > failures,
               timeout=15, message="the reload still retried after SIGHUP")
    assert healthz(port) == 503

    ok.write_text("")  # nothing changes in the registry: the timer alone retries
    wait_until(lambda: second.logged("reloaded"), timeout=90, message="reload retried")
    wait_until(lambda: healthz(port) == 200, message="/healthz ok once reloaded")
    assert reloads(marker) == 1
    # Backoff: after the SIGHUP (which starts the templates afresh), each retry waits at
    # least as long as the one before, never more than a minute.
    events = second.log_events()
    reread = next(i for i, e in enumerate(events) if e.get("event") == "config re-read")
    delays = [e["retry_in"] for e in events[reread:]
              if e.get("event") == "reload failed; retrying with backoff"]
    assert delays == sorted(delays)
    assert max(delays) <= 60


def test_reload_that_leaves_a_background_child_is_done_when_it_exits(etcd, prefix, tmp_path):
    src, dest, pidfile = tmp_path / "t.j2", tmp_path / "out.cfg", tmp_path / "child.pid"
    src.write_text(TEMPLATE)
    try:
        out = cli(*render_args(etcd, prefix, src, dest, "--once", "--cmd-timeout", "60s",
                               "--reload-cmd", f"sleep 120 & echo $! > {pidfile}"),
                  timeout=20)
        assert out.returncode == 0, out.stderr
        assert "timed out" not in out.stderr
        assert json.loads(out.stderr.splitlines()[-1])["event"] == "reloaded"
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


def peak_rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_check_output_is_bounded_head_and_tail(etcd, prefix, tmp_path, consumer):
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text(TEMPLATE)
    check = tmp_path / "check.sh"
    # 300 MB of output between a first and a last line that say why.
    check.write_text("#!/bin/sh\necho 'first: the reason'\nhead -c 300000000 /dev/zero\n"
                     "echo\necho 'last: exit 1 follows'\nexit 1\n")
    check.chmod(0o755)
    render = consumer(*render_args(etcd, prefix, src, dest, "--check-cmd", f"{check} {{src}}"))
    failed = wait_until(lambda: render.logged("not installed; keeping the last good file"),
                        timeout=60, message="the check failed")
    assert peak_rss_mb(render.proc.pid) < 200  # the output is 300 MB
    reason = failed[0]["reason"]
    assert "first: the reason" in reason
    assert "last: exit 1 follows" in reason
    assert len(reason) < 4000
