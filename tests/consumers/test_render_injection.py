"""Registry contents are untrusted (issue 20, items 3, 6, 9): an entry whose fields would
write lines of their own into HAProxy's or nginx's configuration is skipped with one warning
naming its key; names, tags and meta reach the examples only through the quoting filters; a
failing check logs the lines that say why, with every configuration value masked. Checked
with the shipped examples, real etcd, `registrator render --once` and the real `haproxy -c`
and `nginx -t`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from consumer_support import HAPROXY, ROOT, cli, get, put_entry
from harness import free_port, terminate, wait_until

from registrator.consumers import templates

HAPROXY_TEMPLATE = ROOT / "examples" / "haproxy" / "haproxy.cfg.j2"
NGINX_TEMPLATE = ROOT / "examples" / "nginx" / "upstream.conf.j2"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
EVIL = "10.6.6.6"


def render_once(etcd, prefix, src, dest, check, env=None):
    return cli("render", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix,
               "--template", str(src), "--dest", str(dest), "--check-cmd", check, "--once",
               env=env)


def logged(stderr, event):
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def skipped_ids(stderr):
    return sorted(s["key"].rsplit("/", 1)[1] for s in logged(stderr, "skipping a registry entry"))


@pytest.fixture
def need_haproxy():
    if not Path(HAPROXY).exists():
        pytest.skip("haproxy is not installed (scripts/setup installs it)")


@pytest.fixture
def nginx_check(tmp_path):
    """A check command for a rendered upstream file: nginx -t on a minimal nginx.conf that
    includes the staged file and proxies to the upstream `web_app`."""
    if not Path(NGINX).exists():
        if os.environ.get("CI"):
            raise RuntimeError("nginx is not installed: scripts/setup installs nginx-light")
        pytest.skip("nginx is not installed (scripts/setup installs nginx-light)")
    (tmp_path / "nginx.conf.in").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
        "    access_log off;\n    include @SRC@;\n"
        f"    server {{ listen 127.0.0.1:{free_port()}; "
        "location / { proxy_pass http://web_app; } }\n}\n")
    script = tmp_path / "nginx-check.sh"
    script.write_text(f'#!/bin/sh\nsed "s|@SRC@|$1|" {tmp_path}/nginx.conf.in '
                      f"> {tmp_path}/nginx-check.conf && "
                      f"exec {NGINX} -t -q -p {tmp_path} -c {tmp_path}/nginx-check.conf\n")
    script.chmod(0o755)
    return f"{script} {{src}}"


def test_entries_that_would_add_haproxy_lines_are_skipped(etcd, prefix, tmp_path,
                                                          need_haproxy):
    line = f"\n    server injected {EVIL}"
    put_entry(etcd, prefix, "web", "good", 8080)
    put_entry(etcd, prefix, "web", "by-host", 8081, host=f"h1{line}:80")
    put_entry(etcd, prefix, "web", "by-cname", 8082, container_name=f"/c{line}:80")
    put_entry(etcd, prefix, "web", "by-address", 8083, address=f"127.0.0.1:1 check{line}")
    put_entry(etcd, prefix, "web", "by-scope", 8084, address=f"fe80::1%lo{line}")
    put_entry(etcd, prefix, "web", "by-image", 8085, image=f"busybox{line}:80")
    put_entry(etcd, prefix, "web", "by-port", 99999)  # item 6: one bad port froze every file
    put_entry(etcd, prefix, "web", "by-protocol", 8086, protocol="sctp")
    put_entry(etcd, prefix, "web", "by-name-address", 8087, address="no-such-host.invalid")
    # Free text reaches the example only through a quoting filter.
    put_entry(etcd, prefix, "web", "free-text", 8088,
              tags=[f"t{line}"], meta={"note": f"x{line}:80 'q' \"d\" #c"})
    dest = tmp_path / "haproxy.cfg"
    out = render_once(etcd, prefix, HAPROXY_TEMPLATE, dest, f"{HAPROXY} -q -c -f {{src}}",
                      env={"LB_SERVICE": "web", "LB_BIND": f"127.0.0.1:{free_port()}"})
    assert out.returncode == 0, out.stderr
    lines = [x.strip() for x in dest.read_text().splitlines()]
    assert [x for x in lines if EVIL in x and not x.startswith("#")] == []
    assert sum(x.startswith("server ") for x in lines) == 2  # good and free-text
    assert skipped_ids(out.stderr) == sorted(["by-host", "by-cname", "by-address", "by-scope",
                                              "by-image", "by-port", "by-protocol",
                                              "by-name-address"])
    for warning in logged(out.stderr, "skipping a registry entry"):
        assert "\n" not in warning["reason"]


def test_host_records_that_would_add_lines_are_skipped(etcd, prefix, tmp_path):
    etcd.view.put(f"{prefix}/hosts/h1", json.dumps({"hostname": "h1", "address": "10.0.0.1"}))
    etcd.view.put(f"{prefix}/hosts/h2", json.dumps(
        {"hostname": "h2", "address": f"10.0.0.2\nserver injected {EVIL}"}))
    etcd.view.put(f"{prefix}/hosts/h3", json.dumps({"hostname": "other", "address": "10.0.0.3"}))
    src, dest = tmp_path / "hosts.j2", tmp_path / "hosts.out"
    src.write_text("{% for h in hosts %}{{ h.hostname }} {{ h.address }}\n{% endfor %}")
    out = render_once(etcd, prefix, src, dest, "true")
    assert out.returncode == 0, out.stderr
    assert dest.read_text() == "h1 10.0.0.1\n"
    assert skipped_ids(out.stderr) == ["h2", "h3"]


def test_service_names_cannot_add_nginx_blocks(etcd, prefix, tmp_path, nginx_check):
    put_entry(etcd, prefix, "web-app", "a", 8080, tags=["http"])
    # Were the name pasted as it is, nginx would read a second `upstream web_app` block.
    hostile = "x { server 127.0.0.1:9; } upstream web_app"
    put_entry(etcd, prefix, hostile, "b", 8081, tags=["http"],
              meta={"note": 'a"; } server { listen 9; } #'})
    dest = tmp_path / "upstreams.conf"
    out = render_once(etcd, prefix, NGINX_TEMPLATE, dest, nginx_check)
    assert out.returncode == 0, out.stderr
    text = dest.read_text()
    assert "upstream web_app {" in text
    assert text.count("server 127.0.0.1:") == 2


def test_failing_check_logs_the_alert_lines_with_config_values_masked(etcd, prefix, tmp_path,
                                                                      need_haproxy):
    secret = "s3cr3t-Tok3n"  # noqa: S105 - a test value, to be masked
    put_entry(etcd, prefix, "web", "a", 8080)
    etcd.view.put(f"{prefix}/config/lb/defaults/backend", secret)
    src, dest = tmp_path / "lb.j2", tmp_path / "haproxy.cfg"
    dest.write_text("last good\n")
    src.write_text((HAPROXY_TEMPLATE.read_text()) +
                   "\n    server pinned 127.0.0.1:{{ config('lb', 'backend') }} check\n")
    out = render_once(etcd, prefix, src, dest, f"{HAPROXY} -c -f {{src}}",
                      env={"LB_SERVICE": "web", "LB_BIND": f"127.0.0.1:{free_port()}"})
    assert out.returncode == 1
    assert dest.read_text() == "last good\n"
    assert secret not in out.stderr
    (failed,) = logged(out.stderr, "not installed; keeping the last good file")
    # HAProxy's reason names the line; its last line ("Fatal errors found") says nothing.
    assert "[ALERT]" in failed["reason"]
    assert "/pinned'" in failed["reason"]
    assert "***" in failed["reason"]



FREE_TEXT = "it's \"q\" \\ ; } { #c %[src] $HOME\nnext line\ttab"


def render_file(src, environ):
    env = templates.environment(str(src))
    return templates.render(env, str(src), templates.context(
        templates.Snapshot({}, []), environ))


def get_or_none(port):
    try:
        return get(port)[1]
    except OSError:
        return None


def test_haproxy_quote_round_trips_through_haproxy(tmp_path, need_haproxy, haproxy):
    port = free_port()
    src = tmp_path / "q.j2"
    src.write_text("defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
                   "    timeout server 5s\nfrontend f\n    bind 127.0.0.1:{{ env.PORT }}\n"
                   "    http-request return status 200 content-type text/plain string "
                   "{{ env.VALUE | haproxy_quote }}  # a comment stays one\n")
    cfg = tmp_path / "q.cfg"
    cfg.write_text(render_file(src, {"PORT": str(port), "VALUE": FREE_TEXT}))
    haproxy(cfg)
    assert wait_until(lambda: get_or_none(port), message="haproxy answers") == FREE_TEXT


def test_nginx_quote_round_trips_through_nginx(tmp_path, nginx_check):
    del nginx_check  # only its skip when nginx is missing
    port = free_port()
    value = FREE_TEXT.replace("$", "")  # nginx expands $name in `return`: no escape exists
    src = tmp_path / "n.j2"
    src.write_text(f"pid {tmp_path}/n.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
                   f"    access_log off;\n    server {{ listen 127.0.0.1:{port};\n"
                   "    location / { default_type text/plain;\n"
                   "    return 200 {{ env.VALUE | nginx_quote }}; } }  # {{ env.VALUE | "
                   "nginx_quote }}\n}\n")
    conf = tmp_path / "n.conf"
    conf.write_text(render_file(src, {"VALUE": value}))
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: get_or_none(port), message="nginx answers") == value
    finally:
        terminate(proc)


def test_service_names_that_map_to_one_upstream_do_not_freeze_the_nginx_file(
        etcd, prefix, tmp_path, nginx_check):
    """`web-app`, `web.app` and `Web-App` all become upstream `web_app` (nginx compares
    upstream names without case): a duplicate upstream fails `nginx -t`, which froze the
    whole file for every service while any one of them existed."""
    put_entry(etcd, prefix, "web-app", "a", 8080, tags=["http"])
    put_entry(etcd, prefix, "web.app", "b", 8081, tags=["http"])
    put_entry(etcd, prefix, "Web-App", "c", 8082, tags=["http"])
    put_entry(etcd, prefix, "api", "d", 8083, tags=["http"])
    dest = tmp_path / "upstreams.conf"
    out = render_once(etcd, prefix, NGINX_TEMPLATE, dest, nginx_check)
    assert out.returncode == 0, out.stderr
    text = dest.read_text()
    assert text.count("upstream ") == 4
    assert "upstream web_app {" in text
    assert "upstream api {" in text
