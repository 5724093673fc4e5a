"""SPEC §11 Prometheus service discovery, with a real Prometheus (Debian's 2.42) whose
http_sd_configs point at serve: it discovers what is registered, with the
__meta_registrator_* labels, and follows a change."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import pytest
from harness import free_port, terminate, wait_until
from serve_support import Serve, put, record

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture
def prometheus(tmp_path):
    if not shutil.which("prometheus"):
        pytest.skip("prometheus is not installed (scripts/setup installs it)")
    started = []

    def start(sd_url):
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "registrator",
                "http_sd_configs": [{"url": sd_url, "refresh_interval": "1s"}],
            }],
        }))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("w")
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        started.append((proc, log))
        return port

    yield start
    for proc, log in started:
        terminate(proc)
        log.close()


def _targets(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets",
                                    timeout=2) as response:
            data = json.load(response)["data"]
    except OSError:
        return None
    return data["activeTargets"]


def _discovered(port):
    return {t["discoveredLabels"]["__meta_registrator_id"]: t["discoveredLabels"]
            for t in _targets(port) or []}


def test_prometheus_discovers_the_registered_targets(etcd, prefix, consumer, prometheus):
    put(etcd, prefix, record("web", "w1", 18080, tags=["prod", "blue"],
                             meta={"team": "core", "metrics-path": "/m"}, host="h1"))
    put(etcd, prefix, record("api", "a1", 18081, address="::1", host="h2"))
    serve = Serve(consumer, etcd, prefix)
    port = prometheus(f"http://127.0.0.1:{serve.port}/v1/prometheus/sd")
    found = wait_until(lambda: (d := _discovered(port)) and len(d) == 2 and d, timeout=60,
                       message="Prometheus to discover both targets")
    web = found["w1"]
    assert web["__address__"] == "127.0.0.1:18080"
    assert web["__meta_registrator_service"] == "web"
    assert web["__meta_registrator_host"] == "h1"
    assert web["__meta_registrator_tags"] == ",prod,blue,"
    assert web["__meta_registrator_meta_team"] == "core"
    assert web["__meta_registrator_meta_metrics_path"] == "/m"
    assert found["a1"]["__address__"] == "[::1]:18081"
    # Prometheus keeps following: an entry added later is discovered, a deleted one goes.
    put(etcd, prefix, record("web", "w2", 18082))
    etcd.view.delete(f"{prefix}/services/api/a1")
    wait_until(lambda: set(_discovered(port)) == {"w1", "w2"}, timeout=60,
               message="Prometheus to follow the change")
    scraped = {t["labels"]["instance"] for t in _targets(port)}
    assert scraped == {"127.0.0.1:18080", "127.0.0.1:18082"}
