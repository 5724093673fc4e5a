"""serve's DNS on real sockets, asked by real `dig` (SPEC §11): every record type, UDP
truncation and the TCP retry, NXDOMAIN/SOA, REFUSED, a change answered at once, and hostile
packets that leave the server answering."""

from __future__ import annotations

import os
import socket
import struct

import dns.message
import pytest
from dns_support import FakeState, Snap, dig, entry, flags, need_dig, short, status
from harness import wait_until

from registrator.serve.dns import DnsServer
from registrator.serve.dns_zone import id_hash

WEB = [entry("web", 1, "127.0.0.11", 8001, tags=["v1"]),
       entry("web", 2, "127.0.0.12", 8002, tags=["v2"]),
       entry("web", 3, "::1", 8003, protocol="udp")]
BIG = [entry("big", i, f"127.0.1.{i}", 9000 + i) for i in range(1, 41)]
HOSTS = [{"hostname": "h1", "address": "127.0.0.1"}, {"hostname": "h6", "address": "::1"}]


@pytest.fixture
def state():
    return FakeState(Snap(3, {"web": WEB, "big": BIG}, HOSTS))


@pytest.fixture
def server(state):
    need_dig()
    srv = DnsServer(state.current, state.subscribe, ttl=0, max_tcp=4, tcp_idle=1.0).start()
    yield srv
    srv.stop()


def test_every_record_type(server):
    port = server.port
    assert short(port, "web.service.registrator") == ["127.0.0.11", "127.0.0.12"]
    assert short(port, "web.service.registrator", "AAAA") == ["::1"]
    srv = dig(port, "_web._tcp.service.registrator", "SRV")
    for e in WEB[:2]:
        target = f"{id_hash(e['id'])}.addr.registrator."
        assert f"SRV\t1 1 {e['port']} {target}" in srv
        assert f"{target} 0 IN\tA\t{e['address']}" in srv  # the additional section
    assert short(port, "_web._udp.service.registrator", "SRV") == \
        [f"1 1 8003 {id_hash(WEB[2]['id'])}.addr.registrator."]
    assert short(port, "v2.web.service.registrator") == ["127.0.0.12"]
    assert short(port, "h1.node.registrator") == ["127.0.0.1"]
    assert short(port, "h6.node.registrator", "AAAA") == ["::1"]
    assert short(port, f"{id_hash(WEB[0]['id'])}.addr.registrator") == ["127.0.0.11"]
    assert status(dig(port, "web.service.registrator", "A", "+tcp")) == "NOERROR"


def test_nxdomain_with_soa_and_refused_outside(server):
    out = dig(server.port, "nope.service.registrator")
    assert status(out) == "NXDOMAIN"
    assert "registrator.\t\t0\tIN\tSOA\tns.registrator. hostmaster.registrator. 3 " in out
    assert status(dig(server.port, "v9.web.service.registrator")) == "NXDOMAIN"
    out = dig(server.port, "example.com")
    assert status(out) == "REFUSED"
    assert "aa" not in flags(out)


def test_udp_truncates_and_dig_gets_it_whole_over_tcp(server):
    cut = dig(server.port, "big.service.registrator", "SRV", "+notcp", "+ignore", "+noedns")
    assert "tc" in flags(cut)
    assert "ANSWER: 0" in cut
    whole = dig(server.port, "big.service.registrator", "SRV", "+noedns")
    assert "Truncated, retrying in TCP mode" in whole
    assert "tc" not in flags(whole)
    assert "ANSWER: 40," in whole
    assert "ADDITIONAL: 40" in whole
    # An EDNS client that asks for enough room gets it over UDP.
    room = dig(server.port, "big.service.registrator", "SRV", "+notcp", "+bufsize=4096")
    assert "tc" not in flags(room)
    assert "ANSWER: 40," in room


def test_a_store_change_is_answered_at_once(server, state):
    assert short(server.port, "web.service.registrator") == ["127.0.0.11", "127.0.0.12"]
    state.set(Snap(4, {"web": [entry("web", 9, "127.0.0.99", 8009)], "big": BIG}, HOSTS))
    assert short(server.port, "web.service.registrator") == ["127.0.0.99"]
    state.set(Snap(5, {"big": BIG}, HOSTS))
    assert status(dig(server.port, "web.service.registrator")) == "NXDOMAIN"


def tcp_connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_by_server(sock):
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def test_hostile_packets_leave_it_answering(server):
    port = server.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(2)
        for junk in (os.urandom(3), os.urandom(11), b"\x12\x34" + os.urandom(40),
                     b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc",  # cut name
                     b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
                     b"\x00" * 65000):
            udp.sendto(junk, ("127.0.0.1", port))
        formerr = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc"
        udp.sendto(formerr, ("127.0.0.1", port))
        reply = wait_until(lambda: _reply_to(udp, b"\xab\xcd"), message="an answer to junk")
        assert reply[3] & 0x0F in (1, 2)  # FORMERR (or SERVFAIL), never silence-then-crash
    huge = tcp_connect(port)  # says 65535 bytes follow, sends 3, then waits
    huge.sendall(struct.pack(">H", 65535) + b"abc")
    short_len = tcp_connect(port)  # a length too small to be DNS: closed at once
    short_len.sendall(struct.pack(">H", 3) + b"abc")
    try:
        wait_until(lambda: closed_by_server(short_len), message="short length cut off")
        wait_until(lambda: closed_by_server(huge), timeout=15, message="idle client cut off")
    finally:
        huge.close()
        short_len.close()
    assert short(port, "web.service.registrator") == ["127.0.0.11", "127.0.0.12"]
    assert status(dig(port, "web.service.registrator", "A", "+tcp")) == "NOERROR"


def _reply_to(udp, qid):
    data = udp.recv(65535)
    return data if data[:2] == qid else None


def test_tcp_connections_are_bounded_and_answered_in_order(server):
    held = [tcp_connect(server.port) for _ in range(4)]  # max_tcp=4
    try:
        wait_until(lambda: server.tcp_open == 4, message="4 connections held")
        extra = tcp_connect(server.port)
        wait_until(lambda: closed_by_server(extra), message="the fifth refused")
        extra.close()
        # Two pipelined questions on one held connection: two answers, in order.
        queries = [dns.message.make_query(n, "A") for n in
                   ("web.service.registrator.", "h1.node.registrator.")]
        held[0].sendall(b"".join(struct.pack(">H", len(w)) + w
                                 for w in (q.to_wire() for q in queries)))
        answers = [_read_tcp_message(held[0]) for _ in queries]
        assert [a.id for a in answers] == [q.id for q in queries]
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: server.tcp_open == 0, message="connections released")
    assert status(dig(server.port, "web.service.registrator", "A", "+tcp")) == "NOERROR"


def _read_tcp_message(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    (size,) = struct.unpack(">H", exactly(2))
    return dns.message.from_wire(exactly(size))


def test_ipv6_listener(state):
    need_dig()
    try:
        srv = DnsServer(state.current, state.subscribe, host="::1").start()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert short(srv.port, "web.service.registrator", "A", host="::1") == \
            ["127.0.0.11", "127.0.0.12"]
        assert status(dig(srv.port, "web.service.registrator", "AAAA", "+tcp", host="::1")) \
            == "NOERROR"
    finally:
        srv.stop()
