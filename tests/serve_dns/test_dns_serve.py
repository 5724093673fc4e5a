"""`registrator serve --dns` end to end, on etcd and on ZooKeeper: the real daemon registers
real containers, serve follows the prefix, real `dig` resolves them (SPEC §11)."""

from __future__ import annotations

import socket
import uuid

from consumer_support import cli
from dns_support import dig, free_dns_port, need_dig, short, status
from harness import published_port, wait_until
from zk_harness import both_stores

LOCAL = ("127.0.0.1", None)


@both_stores
def test_serve_dns_follows_containers(store, start_daemon, containers, consumer):
    need_dig()
    daemon = start_daemon()
    name = f"d{uuid.uuid4().hex[:8]}"
    port = free_dns_port()
    serve = consumer("serve", *store.daemon_args(), "--prefix", daemon.prefix,
                     "--dns", f"127.0.0.1:{port}", "--domain", "reg.test", "--dns-ttl", "2s")
    wait_until(lambda: serve.logged("serving DNS") or not serve.alive(), timeout=20,
               message="serve's DNS up")
    assert serve.alive(), serve.log_path.read_text()[-2000:]
    wait_until(lambda: short(port, f"{daemon.hostname}.node.reg.test") == ["127.0.0.1"],
               timeout=20, message="the host record")

    first = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": name,
                                                            "registrator.tags": "blue"})
    wait_until(lambda: short(port, f"{name}.service.reg.test") == ["127.0.0.1"], timeout=20,
               message="the first instance")
    srv = short(port, f"_{name}._tcp.service.reg.test", "SRV")
    assert [line.split()[:3] for line in srv] == [["1", "1", str(published_port(first, "80/tcp"))]]
    assert short(port, srv[0].split()[3]) == ["127.0.0.1"]  # the SRV target resolves
    assert f"{name}.service.reg.test. 2\tIN\tA" in dig(port, f"{name}.service.reg.test")
    assert len(short(port, f"blue.{name}.service.reg.test", "SRV")) == 1

    second = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": name})
    wait_until(lambda: len(short(port, f"{name}.service.reg.test", "SRV")) == 2, timeout=20,
               message="both instances")
    assert len(short(port, f"blue.{name}.service.reg.test", "SRV")) == 1
    first.stop(timeout=1)
    wait_until(lambda: [s.split()[2] for s in short(port, f"{name}.service.reg.test", "SRV")]
               == [str(published_port(second, "80/tcp"))], timeout=20, message="first gone")
    assert status(dig(port, f"blue.{name}.service.reg.test")) == "NXDOMAIN"
    second.stop(timeout=1)
    wait_until(lambda: status(dig(port, f"{name}.service.reg.test")) == "NXDOMAIN",
               timeout=20, message="no instance left")
    assert serve.alive()


def test_bad_dns_flags_exit_2_with_one_line(etcd):
    taken = free_dns_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", taken))
        for flags, says in ((["--dns", f"127.0.0.1:{taken}"], "--dns"),
                            (["--dns", "127.0.0.1:5353", "--domain", "x" * 64], "--dns"),
                            (["--dns", "no-such-host.invalid:5353"], "--dns")):
            out = cli("serve", "--etcd-endpoints", etcd.endpoint, *flags, timeout=60)
            assert out.returncode == 2, (flags, out.stderr[-2000:])
            lines = out.stderr.strip().splitlines()
            assert len(lines) == 1, lines
            assert says in lines[0]
