"""Docker reached the way a locked-down host offers it: a TCP endpoint in front of the
socket (what a socket proxy provides), via DOCKER_HOST."""

from __future__ import annotations

import json
import shutil
import signal
import ssl

from harness import Proxy, wait_until
from tls_support import make_pki


def test_docker_host_tcp_through_a_proxy(start_daemon, containers):
    proxy = Proxy("/var/run/docker.sock")  # listens on 127.0.0.1:<free port>
    try:
        daemon = start_daemon(env={"DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}"})
        c = containers.run(ports={"80/tcp": ("127.0.0.1", None)})
        wait_until(lambda: c.id in {v["container_id"] for v in daemon.mine(containers).values()},
                   message="registered through DOCKER_HOST=tcp://")
        started = daemon.logged("starting")[0]
        assert started["docker"] == f"tcp://127.0.0.1:{proxy.port}"
    finally:
        proxy.cut()


def _docker_tls(pki, tmp_path, ca: str = "ca"):
    """A TLS endpoint in front of the socket that requires a client certificate of `pki`'s
    CA, and a DOCKER_CERT_PATH directory laid out as the docker CLI wants it."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.path("ca.pem"))
    server.load_cert_chain(pki.path("server.pem"), pki.path("server-key.pem"))
    server.verify_mode = ssl.CERT_REQUIRED
    certs = tmp_path / "docker-certs"
    certs.mkdir()
    shutil.copy(pki.path(f"{ca}.pem"), certs / "ca.pem")
    shutil.copy(pki.path("client.pem"), certs / "cert.pem")
    shutil.copy(pki.path("client-key.pem"), certs / "key.pem")
    return Proxy("/var/run/docker.sock", tls=server), certs


def test_docker_host_tcp_with_tls_client_certificates(start_daemon, containers, tmp_path,
                                                     tmp_path_factory):
    proxy, certs = _docker_tls(make_pki(tmp_path_factory.mktemp("pki")), tmp_path)
    try:
        daemon = start_daemon(env={"DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}",
                                   "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)})
        c = containers.run(ports={"80/tcp": ("127.0.0.1", None)})
        wait_until(lambda: c.id in {v["container_id"] for v in daemon.mine(containers).values()},
                   message="registered through Docker over TLS")
        c.stop(timeout=1)
        wait_until(lambda: c.id not in {v["container_id"]
                                        for v in daemon.mine(containers).values()},
                   message="deregistered: the event stream runs over TLS too")
    finally:
        proxy.cut()


def test_docker_tls_with_an_untrusted_server_is_retried_and_named(start_daemon, tmp_path,
                                                                  tmp_path_factory):
    proxy, certs = _docker_tls(make_pki(tmp_path_factory.mktemp("pki")), tmp_path,
                               ca="other-ca")
    try:
        daemon = start_daemon(ready=False, env={
            "DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}", "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(certs)})
        line = wait_until(lambda: daemon.logged("docker failed; retrying"),
                          message="a retry line")[0]
        assert "CERTIFICATE_VERIFY_FAILED" in json.dumps(line)
        assert daemon.stop(signal.SIGTERM) == 0
    finally:
        proxy.cut()


def test_docker_host_over_ssh_is_refused_in_one_line(start_daemon):
    daemon = start_daemon(ready=False, env={"DOCKER_HOST": "ssh://user@127.0.0.1"})
    assert daemon.proc.wait(20) == 2
    text = daemon.log_path.read_text()
    assert "DOCKER_HOST 'ssh://user@127.0.0.1'" in text
    assert "Traceback" not in text
