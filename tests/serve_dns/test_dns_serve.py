"""`registrator serve --dns` end to end, on etcd and on ZooKeeper: the real daemon registers
real containers, serve follows the prefix, real `dig` resolves them (SPEC §11)."""

from __future__ import annotations

import socket
import sys
import time
import uuid

from consumer_support import cli, get, put_entry
from dns_support import dig, free_dns_port, need_dig, short, status
from harness import Proxy, new_prefix, published_port, wait_until
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

    started = time.monotonic()
    first = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": name,
                                                            "registrator.tags": "blue"})
    wait_until(lambda: short(port, f"{name}.service.reg.test") == ["127.0.0.1"], timeout=20,
               message="the first instance")
    sys.stderr.write(f"\n[measured] {store.kind}: container start -> answered by DNS: "
                     f"{time.monotonic() - started:.3f} s\n")
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


def test_dns_answers_are_counted_in_metrics(etcd, prefix, consumer):
    """/metrics on --http counts DNS answers by transport and rcode, and the truncated ones."""
    need_dig()
    for n in range(40):  # an SRV answer over 512 bytes
        put_entry(etcd, prefix, "many", f"i{n}", 8000 + n, address=f"127.0.0.{n + 1}")
    dns_port, http_port = free_dns_port(), free_dns_port()
    serve = consumer("serve", "--etcd-endpoints", etcd.endpoint, "--prefix", prefix,
                     "--dns", f"127.0.0.1:{dns_port}", "--http", f"127.0.0.1:{http_port}")
    wait_until(lambda: len(short(dns_port, "many.service.registrator")) == 40, timeout=20,
               message="serve answering")

    def metric(name, **labels):
        text = get(http_port, "/metrics")[1]
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith((f"{name}{{{want}}} ", f"{name} ")):
                return float(line.split()[-1])
        return 0.0

    counted = {"nx": ("registrator_serve_dns_responses_total",
                      {"rcode": "NXDOMAIN", "transport": "udp"}),
               "refused": ("registrator_serve_dns_responses_total",
                           {"rcode": "REFUSED", "transport": "udp"}),
               "tcp": ("registrator_serve_dns_responses_total",
                       {"rcode": "NOERROR", "transport": "tcp"}),
               "tc": ("registrator_serve_dns_truncated_total", {})}
    before = {k: metric(name, **labels) for k, (name, labels) in counted.items()}
    assert status(dig(dns_port, "nope.service.registrator")) == "NXDOMAIN"
    assert status(dig(dns_port, "example.com")) == "REFUSED"
    assert "ANSWER: 40," in dig(dns_port, "many.service.registrator", "SRV", "+noedns")
    after = {k: metric(name, **labels) for k, (name, labels) in counted.items()}
    assert {k: after[k] - before[k] for k in counted} == {"nx": 1, "refused": 1, "tcp": 1,
                                                          "tc": 1}
    assert metric("registrator_serve_dns_tcp_connections") == 0
    assert serve.alive()


@both_stores
def test_dns_answers_from_the_last_copy_while_the_store_is_away(store, consumer):
    """SPEC §11: with the store cut off, serve answers DNS from its last copy; a change made
    meanwhile is answered once the store is back."""
    need_dig()
    prefix = new_prefix()
    put_entry(store, prefix, "kept", "k1", 8001)
    proxy = Proxy(("127.0.0.1", store.port))
    via = proxy.listen[1]
    store_args = ([f"--zookeeper=127.0.0.1:{via}"] if store.kind == "zookeeper"
                  else [f"--etcd-endpoints=http://127.0.0.1:{via}"])
    port, http_port = free_dns_port(), free_dns_port()
    try:
        serve = consumer("serve", *store_args, "--prefix", prefix, "--dns",
                         f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http_port}",
                         "--stale-after", "1s")
        wait_until(lambda: short(port, "kept.service.registrator") == ["127.0.0.1"],
                   timeout=20, message="serve answering")
        proxy.cut()
        # /healthz says the copy is stale: the outage is seen, and DNS still answers.
        wait_until(lambda: get(http_port, "/healthz")[0] == 503, timeout=30,
                   message="serve seeing the outage")
        for _ in range(5):
            assert short(port, "kept.service.registrator") == ["127.0.0.1"]
        put_entry(store, prefix, "late", "l1", 8002, address="127.0.0.2")
        proxy.restore()
        wait_until(lambda: short(port, "late.service.registrator") == ["127.0.0.2"],
                   timeout=20, message="the change made during the outage")
        assert serve.alive()
    finally:
        proxy.cut()
        store.view.delete_prefix(prefix + "/")
