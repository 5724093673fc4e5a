"""`registrator render` as a real process against real etcd: the failure cases keep the last
good file and the process running; --once exit codes; --in-place; SIGHUP; /healthz."""

from __future__ import annotations

import json
import math
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from consumer_support import cli, put_entry
from harness import EtcdServer, free_port, wait_until

TEMPLATE = ("# web backends\n{% for e in service('web') %}server {{ e.id }} {{ e | hostport }}\n"
            "{% endfor %}")


def render_args(etcd, prefix, src, dest, *extra):
    return ("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix, "--template",
            str(src), "--dest", str(dest), "--wait", "20ms:200ms", *extra)


def test_once_renders_and_exits_0_empty_list_too(etcd, prefix, tmp_path):
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text(TEMPLATE)
    out = cli(*render_args(etcd, prefix, src, dest, "--once"))
    assert out.returncode == 0, out.stderr
    assert dest.read_text() == "# web backends\n"  # an empty service list renders
    put_entry(etcd, prefix, "web", "a", 8080)
    put_entry(etcd, prefix, "web", "b", 8081, address="::1")
    assert cli(*render_args(etcd, prefix, src, dest, "--once", "--mode", "0600")).returncode == 0
    assert dest.read_text() == ("# web backends\nserver a 127.0.0.1:8080\n"
                                "server b [::1]:8081\n")
    assert dest.stat().st_mode & 0o777 == 0o600
    # Nothing to change is success too.
    assert cli(*render_args(etcd, prefix, src, dest, "--once")).returncode == 0


def test_once_failures_exit_1_and_leave_dest(etcd, prefix, tmp_path):
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    dest.write_text("last good\n")
    put_entry(etcd, prefix, "web", "a", 8080)
    src.write_text("line one\n{{ service('web')[0].nope }}\n")
    out = cli(*render_args(etcd, prefix, src, dest, "--once"))
    assert out.returncode == 1
    error = json.loads(out.stderr.splitlines()[-1])
    assert (error["event"], error["line"]) == ("template failed; keeping the last good file", 2)
    assert "nope" in error["reason"]
    src.write_text(TEMPLATE)
    out = cli(*render_args(etcd, prefix, src, dest, "--once", "--check-cmd", "false {src}"))
    assert out.returncode == 1
    assert "check failed" in out.stderr
    out = cli(*render_args(etcd, prefix, src, dest, "--once", "--reload-cmd", "exit 7"))
    assert out.returncode == 1
    assert "exit 7" in out.stderr
    assert dest.read_text() == "# web backends\nserver a 127.0.0.1:8080\n"  # swapped, reload failed
    out = cli("render", "--etcd-endpoints", f"http://127.0.0.1:{free_port()}", "--etcd-timeout",
              "1s", "--template", str(src), "--dest", str(tmp_path / "x"), "--once")
    assert out.returncode == 1
    assert not (tmp_path / "x").exists()
    assert cli(*render_args(etcd, prefix, src, dest, "--wait", "soon")).returncode == 2


def test_running_render_keeps_last_good_file_through_every_failure(etcd, prefix, tmp_path,
                                                                   consumer):
    src, dest, marker = tmp_path / "t.j2", tmp_path / "out.cfg", tmp_path / "reloads"
    src.write_text(TEMPLATE)
    check = tmp_path / "check.sh"
    check.write_text("#!/bin/sh\ngrep -q BAD \"$1\" && { echo 'found BAD' >&2; exit 1; }\nexit 0\n")
    check.chmod(0o755)
    reload_ok = tmp_path / "reload_ok"
    reload_ok.write_text("")
    render = consumer(*render_args(
        etcd, prefix, src, dest, "--check-cmd", f"{check} {{src}}",
        "--reload-cmd", f"echo x >> {marker}; test -e {reload_ok}"))
    wait_until(lambda: dest.exists() and render.logged("watching the registry"),
               message="first render")
    put_entry(etcd, prefix, "web", "a", 8080)
    wait_until(lambda: "server a" in dest.read_text(), message="entry rendered")
    good = dest.read_text()

    # A template error: one line naming template and line; DEST stays; process lives on.
    src.write_text("ok\n{{ undefined_thing }}\n")
    put_entry(etcd, prefix, "web", "b", 8081)
    failed = wait_until(lambda: render.logged("template failed; keeping the last good file"),
                        message="template error logged")
    assert (failed[0]["line"], failed[0]["template"]) == (2, str(src))
    assert dest.read_text() == good
    assert render.alive()

    # A failing check: DEST stays.
    src.write_text(TEMPLATE + "BAD\n")
    put_entry(etcd, prefix, "web", "c", 8082)
    wait_until(lambda: render.logged("not installed; keeping the last good file"),
               message="check failure logged")
    assert dest.read_text() == good
    assert render.alive()

    # A failing reload: logged, the file is in, retried at the next change.
    reload_ok.unlink()
    src.write_text(TEMPLATE)
    put_entry(etcd, prefix, "web", "d", 8083)
    wait_until(lambda: render.logged("reload failed; retrying with backoff"),
               message="reload failure logged")
    assert "server d" in dest.read_text()
    assert render.alive()
    reload_ok.write_text("")
    etcd.view.put(f"{prefix}/unrelated", "x")  # any change retries the reload
    wait_until(lambda: len(render.logged("reloaded")) >= 2, message="reload retried")


def test_in_place_keeps_the_inode_and_hostile_entries_are_skipped(etcd, prefix, tmp_path,
                                                                  consumer):
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text(TEMPLATE)
    dest.write_text("old\n")
    inode = dest.stat().st_ino
    render = consumer(*render_args(etcd, prefix, src, dest, "--in-place"))
    wait_until(lambda: dest.read_text() == "# web backends\n", message="first render")
    etcd.view.put(f"{prefix}/services/web/huge", "x" * (1024 * 1024))
    etcd.view.put(f"{prefix}/services/web/junk", "{not json")
    put_entry(etcd, prefix, "web", "a", 8080)
    wait_until(lambda: "server a" in dest.read_text(), message="good entry rendered")
    assert dest.read_text() == "# web backends\nserver a 127.0.0.1:8080\n"
    assert dest.stat().st_ino == inode
    skipped = render.logged("skipping a registry entry")
    assert sorted(s["key"].rsplit("/", 1)[1] for s in skipped) == ["huge", "junk"]
    assert render.alive()


def test_require_keeps_previous_output_when_a_service_drops_to_zero(etcd, prefix, tmp_path,
                                                                    consumer):
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text("{% for e in require('web') %}{{ e.port }}\n{% endfor %}")
    put_entry(etcd, prefix, "web", "a", 8080)
    render = consumer(*render_args(etcd, prefix, src, dest))
    wait_until(lambda: dest.exists() and dest.read_text() == "8080\n", message="render")
    etcd.view.delete(f"{prefix}/services/web/a")
    wait_until(lambda: render.logged("render skipped; keeping the last good file"),
               message="render skipped")
    assert dest.read_text() == "8080\n"


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response's socket
        return exc.code


def test_config_file_sighup_and_healthz(etcd, prefix, tmp_path, consumer):
    (tmp_path / "a.j2").write_text("a {{ service('web') | length }}\n")
    (tmp_path / "b.j2").write_text("b {{ service('web') | length }}\n")
    marker = tmp_path / "reloads"
    cfg = tmp_path / "render.toml"
    reload_cmd = f"echo reload >> {marker}"
    cfg.write_text(f"""
[[template]]
src = "a.j2"
dest = "a.out"
wait = "50ms:500ms"
reload_cmd = "{reload_cmd}"

[[template]]
src = "b.j2"
dest = "b.out"
wait = "50ms:500ms"
reload_cmd = "{reload_cmd}"
""")
    port = free_port()
    render = consumer("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix,
                      "--config", str(cfg), "--metrics-addr", f"127.0.0.1:{port}")
    wait_until(lambda: healthz(port) == 200, message="/healthz ok")
    assert (tmp_path / "a.out").read_text() == "a 0\n"
    put_entry(etcd, prefix, "web", "x", 1)
    wait_until(lambda: (tmp_path / "b.out").read_text() == "b 1\n", message="re-rendered")
    # Both templates changed together: one reload for the pair, at start and after the put.
    wait_until(lambda: marker.read_text().count("reload") == 2, message="two reloads")

    # A broken template turns /healthz red, and SIGHUP re-reads the file.
    (tmp_path / "a.j2").write_text("{{ nope }}")
    put_entry(etcd, prefix, "web", "y", 2)
    wait_until(lambda: healthz(port) == 503, message="/healthz 503")
    cfg.write_text(cfg.read_text().replace('src = "a.j2"', 'src = "b.j2"'))
    render.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: render.logged("config re-read"), message="config re-read")
    wait_until(lambda: (tmp_path / "a.out").read_text() == "b 2\n", message="new template used")
    wait_until(lambda: healthz(port) == 200, message="/healthz ok again")
    assert render.alive()
    assert render.stop() == 0


@pytest.mark.slow
def test_store_outage_keeps_files_backs_off_and_re_renders(docker_client, tmp_path, consumer):
    server = EtcdServer(host_port=free_port()).start()
    try:
        src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
        src.write_text(TEMPLATE)
        port = free_port()
        render = consumer("render", "--etcd-endpoints", server.endpoint, "--prefix", "/o",
                          "--template", str(src), "--dest", str(dest), "--wait", "20ms:200ms",
                          "--metrics-addr", f"127.0.0.1:{port}")
        wait_until(lambda: healthz(port) == 200, message="/healthz ok")
        put_entry(server, "/o", "web", "a", 8080)
        wait_until(lambda: "server a" in dest.read_text(), message="first entry")
        good = dest.read_text()

        server.view.close()
        server.container.get_wrapped_container().stop(timeout=5)
        wait_until(lambda: healthz(port) == 503, timeout=30, message="/healthz 503 in outage")
        assert dest.read_text() == good
        assert render.alive()
        server.container.get_wrapped_container().start()
        server.view = type(server.view)(server.port)
        wait_until(server.view.healthy, timeout=30, message="etcd back")
        put_entry(server, "/o", "web", "b", 8081)
        wait_until(lambda: "server b" in dest.read_text(), timeout=30,
                   message="re-rendered after the outage")
        wait_until(lambda: healthz(port) == 200, message="/healthz ok again")
        # Backoff, not a busy loop: one warning for the whole outage.
        assert len(render.logged("store unreachable; retrying with backoff")) == 1
    finally:
        server.stop()


def test_reload_container_by_label_through_the_docker_api(etcd, prefix, tmp_path, consumer,
                                                          containers):
    label = f"lb-{uuid.uuid4().hex[:8]}"
    target = containers.run(
        "sh -c 'trap \"echo hup >> /tmp/hups\" HUP; while true; do sleep 0.1; done'",
        labels={"reload-me": label})
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text(TEMPLATE)
    render = consumer(*render_args(etcd, prefix, src, dest, "--reload-container",
                                   f"reload-me={label}", "--reload-signal", "HUP"))
    wait_until(lambda: render.logged("reloaded"), message="first reload")

    def hups():
        result = target.exec_run("cat /tmp/hups")
        return result.output.decode().count("hup") if result.exit_code == 0 else 0

    wait_until(lambda: hups() == 1, message="one SIGHUP")
    put_entry(etcd, prefix, "web", "a", 8080)
    wait_until(lambda: hups() == 2, message="SIGHUP after the change")
    target.stop(timeout=1)
    put_entry(etcd, prefix, "web", "b", 8081)
    failed = wait_until(lambda: render.logged("reload failed; retrying with backoff"),
                        message="no container to signal")
    assert "no running container" in failed[0]["reason"]


def test_a_burst_gives_few_renders_and_the_final_file_matches(etcd, prefix, tmp_path, consumer):
    src, dest = tmp_path / "t.j2", tmp_path / "out.cfg"
    src.write_text(TEMPLATE)
    render = consumer("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix,
                      "--template", str(src), "--dest", str(dest), "--wait", "200ms:2s")
    wait_until(lambda: render.logged("rendered"), message="first render")
    start = time.monotonic()
    for i in range(200):  # 200 changes within about a second
        put_entry(etcd, prefix, "web", f"s{i % 20:02d}", 10000 + i)
        # Pacing the burst (not waiting for a condition): 200 puts spread over one second.
        time.sleep(max(0.0, start + (i + 1) / 200 - time.monotonic()))
    elapsed = time.monotonic() - start
    expected = "# web backends\n" + "".join(
        f"server s{n:02d} 127.0.0.1:{10000 + 180 + n}\n" for n in range(20))
    wait_until(lambda: dest.read_text() == expected, message="final file")
    # The "rendered" line is written just after the file: wait for it, not only the file.
    wait_until(lambda: len(render.logged("rendered")) >= 2, message="the render's log line")
    renders = len(render.logged("rendered")) - 1
    bound = math.ceil(max(elapsed, 1.0) / 0.2) + 1
    sys.stderr.write(f"\n[measured] burst of 200 changes in {elapsed:.2f} s: {renders} renders\n")
    assert 1 <= renders <= bound, (renders, elapsed)
