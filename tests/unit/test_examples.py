"""The shipped example templates render, empty and full; the HAProxy one passes haproxy -c
when HAProxy is installed (scripts/setup installs it)."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from registrator.consumers import templates
from registrator.consumers.jobs import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def entry(name, i, address, tags=("http",)):
    return {"name": name, "id": f"h:c{i}:80", "address": address, "port": 32000 + i,
            "container_name": f"/c{i}", "host": "h", "tags": list(tags), "meta": {},
            "protocol": "tcp", "health": "none"}


def render(src, services, environ=None):
    env = templates.environment(str(src))
    return templates.render(env, str(src), templates.context(
        templates.Snapshot(services, []), environ or {}))


def test_haproxy_example_keeps_the_last_file_when_the_service_has_no_entries():
    # require(): an empty backend would answer 503 while the containers may still serve.
    with pytest.raises(templates.KeepPreviousError):
        render(EXAMPLES / "haproxy" / "haproxy.cfg.j2", {}, {"LB_BIND": "127.0.0.1:18080"})


def test_haproxy_example(tmp_path):
    services = {"web": [entry("web", 1, "127.0.0.1"), entry("web", 2, "::1")]}
    text = render(EXAMPLES / "haproxy" / "haproxy.cfg.j2", services,
                  {"LB_BIND": "127.0.0.1:18080"})
    assert text.count("server s_") == 2
    assert "[::1]:32002 check" in text
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if Path(haproxy).exists():
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(text)
        check = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True,
                               text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr


def test_nginx_example():
    services = {"web-app": [entry("web-app", 1, "127.0.0.1"), entry("web-app", 2, "::1")],
                "db": [entry("db", 3, "10.0.0.3", tags=())]}
    text = render(EXAMPLES / "nginx" / "upstream.conf.j2", services)
    assert "upstream web_app {" in text
    assert "server [::1]:32002 max_fails=2" in text
    assert "db" not in text  # not tagged http
    assert "upstream" not in render(EXAMPLES / "nginx" / "upstream.conf.j2", {})


def test_render_toml_example_parses(tmp_path):
    data = tomllib.loads((EXAMPLES / "haproxy" / "render.toml").read_text())
    assert data["template"][0]["check_cmd"] == "haproxy -q -c -f {src}"
    # load_config wants the dest's directory to exist: point it at tmp_path.
    cfg = tmp_path / "render.toml"
    shutil.copy(EXAMPLES / "haproxy" / "haproxy.cfg.j2", tmp_path)
    cfg.write_text((EXAMPLES / "haproxy" / "render.toml").read_text()
                   .replace("/etc/haproxy/haproxy.cfg", "haproxy.cfg"))
    (job,) = load_config(str(cfg))
    assert job.mode == 0o644
    assert job.wait == (0.2, 2.0)


def test_haproxy_dns_example_is_valid_as_shipped():
    """examples/haproxy-dns is a plain file (no template): HAProxy must accept it as is, and
    with the environment the docs and tests give it."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.skip("haproxy is not installed")
    cfg = EXAMPLES / "haproxy-dns" / "haproxy.cfg"
    text = cfg.read_text()
    assert 'server-template w 6 "_${LB_SERVICE-web}._tcp.service.registrator."' in text
    assert "accepted_payload_size 8192" in text
    for env in ({}, {"LB_SERVICE": "api", "LB_DNS": "127.0.0.1:8600"}):
        check = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True,
                               text=True, check=False, env=env)
        assert check.returncode == 0, check.stdout + check.stderr
