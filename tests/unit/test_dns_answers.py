"""serve's DNS answers, without sockets: DnsServer.handle() on queries built with dnspython,
from a fake snapshot (SPEC §11). The sockets, dig and HAProxy are in tests/serve_dns/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registrator.serve.dns import DnsServer, parse_domain
from registrator.serve.dns_wire import parse_fast, parse_slow, udp_limit
from registrator.serve.dns_zone import id_hash


@dataclass(frozen=True)
class Snap:
    revision: int
    services: dict[str, Any]
    hosts: list[Any] = field(default_factory=list)


def entry(name, n, address="127.0.0.1", port=8000, protocol="tcp", tags=()):
    return {"name": name, "id": f"h1:{name}-{n}:{port}", "address": address, "port": port,
            "protocol": protocol, "tags": list(tags), "meta": {}, "host": "h1"}


WEB = [entry("web", 1, "10.0.0.1", 8001, tags=["v1"]),
       entry("web", 2, "10.0.0.2", 8002, tags=["v2", "Not_A_Label"]),
       entry("web", 3, "fd00::3", 8003, protocol="udp")]
SNAP = Snap(7, {"web": WEB, "big": [entry("big", i, f"10.1.{i // 250}.{i % 250}", 9000 + i)
                                    for i in range(60)],
                "Bad_Name": [entry("Bad_Name", 1)], "odd": [entry("odd", 1, "not-an-ip")]},
            [{"hostname": "h1", "address": "192.0.2.1"},
             {"hostname": "rack1.h2", "address": "2001:db8::2"},
             {"hostname": "under_score", "address": "192.0.2.9"}])


@pytest.fixture
def server():
    srv = DnsServer(lambda: SNAP, lambda _cb: None, domain="Registrator", ttl=5)
    srv.changed(SNAP)
    return srv


def ask(server, name, rdtype="A", udp=True, edns=-1, payload=1232, raw=None):
    query = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload)
    wire = raw if raw is not None else query.to_wire()
    reply = server.handle(wire, udp=udp)
    assert reply is not None
    response = dns.message.from_wire(reply)
    assert response.id == query.id or raw is not None
    return response


def records(response, section="answer"):
    return sorted(rd.to_text() for rrset in getattr(response, section) for rd in rrset)


def test_service_a_aaaa_srv_with_addresses_in_additional(server):
    a = ask(server, "web.service.registrator.")
    assert a.rcode() == dns.rcode.NOERROR
    assert a.flags & dns.flags.AA
    assert records(a) == ["10.0.0.1", "10.0.0.2"]
    assert a.answer[0].ttl == 5
    assert records(ask(server, "web.service.registrator.", "AAAA")) == ["fd00::3"]
    srv = ask(server, "web.service.registrator.", "SRV")
    targets = {f"{id_hash(e['id'])}.addr.registrator.": e for e in WEB}
    assert records(srv) == sorted(f"1 1 {e['port']} {t}" for t, e in targets.items())
    additional = {rr.name.to_text(): [rd.to_text() for rd in rr] for rr in srv.additional}
    assert additional == {t: [e["address"]] for t, e in targets.items()}


def test_rfc2782_protocol_and_tag_filters(server):
    tcp = ask(server, "_web._tcp.service.registrator.", "SRV")
    assert [rd.port for rd in tcp.answer[0]] == [8001, 8002] or \
        sorted(rd.port for rd in tcp.answer[0]) == [8001, 8002]
    udp = ask(server, "_web._udp.service.registrator.", "SRV")
    assert [rd.port for rd in udp.answer[0]] == [8003]
    assert records(ask(server, "v2.web.service.registrator.")) == ["10.0.0.2"]
    for missing in ("v3.web.service.registrator.", "not_a_label.web.service.registrator.",
                    "_big._udp.service.registrator."):
        assert ask(server, missing).rcode() == dns.rcode.NXDOMAIN, missing


def test_nodes_and_srv_targets_resolve(server):
    assert records(ask(server, "h1.node.registrator.")) == ["192.0.2.1"]
    assert records(ask(server, "rack1.h2.node.registrator.", "AAAA")) == ["2001:db8::2"]
    # The parent of a dotted hostname exists (no records), a hostname with "_" does not.
    assert ask(server, "h2.node.registrator.").rcode() == dns.rcode.NOERROR
    assert ask(server, "under_score.node.registrator.").rcode() == dns.rcode.NXDOMAIN
    target = f"{id_hash(WEB[0]['id'])}.addr.registrator."
    assert records(ask(server, target)) == ["10.0.0.1"]


def test_unknown_names_get_nxdomain_with_soa_and_outside_names_refused(server):
    for name in ("nope.service.registrator.", "bad_name.service.registrator.",
                 "odd.service.registrator.", "x.y.z.service.registrator.",
                 "nothing.registrator."):
        response = ask(server, name)
        assert response.rcode() == dns.rcode.NXDOMAIN, name
        assert [rr.rdtype for rr in response.authority] == [dns.rdatatype.SOA]
        assert response.authority[0].name.to_text().lower() == "registrator."
        assert response.authority[0][0].serial == 7
    nodata = ask(server, "web.service.registrator.", "TXT")
    assert nodata.rcode() == dns.rcode.NOERROR
    assert not nodata.answer
    assert [rr.rdtype for rr in nodata.authority] == [dns.rdatatype.SOA]
    assert records(ask(server, "registrator.", "SOA"))[0].startswith("ns.registrator. ")
    for name in ("example.com.", "registrator.example.", "xregistrator.", "a\\011registrator."):
        response = ask(server, name)
        assert response.rcode() == dns.rcode.REFUSED, name
        assert not response.flags & dns.flags.AA


def test_udp_truncates_past_512_or_the_edns_size_and_tcp_answers_whole(server):
    plain = ask(server, "big.service.registrator.", "SRV")
    assert plain.flags & dns.flags.TC
    assert not plain.answer
    small = ask(server, "big.service.registrator.", "SRV", edns=0, payload=1232)
    assert small.flags & dns.flags.TC
    assert small.edns == 0
    # An EDNS size over --dns-udp-max (default 1232) is cut to it: a spoofed query must not
    # draw a large answer at a victim (amplification).
    capped = ask(server, "big.service.registrator.", "SRV", edns=0, payload=8192)
    assert capped.flags & dns.flags.TC
    wide = DnsServer(lambda: SNAP, lambda _cb: None, domain="Registrator", ttl=5,
                     udp_max=8192)
    wide.changed(SNAP)
    large = ask(wide, "big.service.registrator.", "SRV", edns=0, payload=8192)
    assert not large.flags & dns.flags.TC
    assert len(large.answer[0]) == 60
    whole = ask(server, "big.service.registrator.", "SRV", udp=False)
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 60
    assert len(whole.additional) == 60
    fits = ask(server, "web.service.registrator.", "SRV")
    assert not fits.flags & dns.flags.TC
    assert len(fits.answer[0]) == 3


def test_the_client_spelling_id_rd_and_edns_come_back(server):
    query = dns.message.make_query("WeB.SeRvIcE.rEgIsTrAtOr.", "A", use_edns=0)
    query.flags &= ~dns.flags.RD
    response = dns.message.from_wire(server.handle(query.to_wire(), udp=True))
    assert response.id == query.id
    assert response.question[0].name.to_text() == \
        "WeB.SeRvIcE.rEgIsTrAtOr."
    assert not response.flags & dns.flags.RD
    assert response.edns == 0
    assert records(response) == ["10.0.0.1", "10.0.0.2"]
    assert ask(server, "web.service.registrator.").flags & dns.flags.RD


def addr(e):
    return f"{id_hash(e['id'])}.addr.registrator."


def test_a_change_is_answered_at_once_and_unchanged_services_keep_their_answers(server):
    ask(server, "web.service.registrator.", "SRV")
    kept = server.answers().zone.services["web"]
    assert kept.cache
    moved = Snap(8, {**SNAP.services, "big": [entry("big", 0, "10.9.9.9", 9999)],
                     "new": [entry("new", 1, "10.2.2.2")]}, SNAP.hosts)
    server.changed(moved)
    assert records(ask(server, "big.service.registrator.")) == ["10.9.9.9"]
    assert records(ask(server, "new.service.registrator.")) == ["10.2.2.2"]
    assert server.answers().zone.services["web"] is kept
    # The SRV targets' names follow: the moved instances' go, the new and kept ones answer.
    assert ask(server, addr(SNAP.services["big"][1])).rcode() == dns.rcode.NXDOMAIN
    assert records(ask(server, addr(moved.services["big"][0]))) == ["10.9.9.9"]
    assert records(ask(server, addr(WEB[1]))) == ["10.0.0.2"]
    server.changed(Snap(9, {}, []))
    assert ask(server, "web.service.registrator.").rcode() == dns.rcode.NXDOMAIN


def test_what_the_parser_refuses_gets_formerr_notimp_badvers_or_nothing(server):
    query = dns.message.make_query("web.service.registrator.", "A").to_wire()
    assert server.handle(query[:5], udp=True) is None  # no room for an id: dropped
    formerr = server.handle(query[:20], udp=True)
    assert formerr is not None
    assert formerr[:2] == query[:2]
    assert formerr[3] & 0xF == 1
    response = bytearray(query)
    response[2] |= 0x80
    assert server.handle(bytes(response), udp=True) is None  # never answer an answer
    notify = dns.message.make_query("web.service.registrator.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert dns.message.from_wire(server.handle(notify.to_wire(), udp=True)).rcode() == \
        dns.rcode.NOTIMP
    badvers = dns.message.make_query("web.service.registrator.", "A", use_edns=1)
    assert dns.message.from_wire(server.handle(badvers.to_wire(), udp=True)).rcode() == \
        dns.rcode.BADVERS
    chaos = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
    assert dns.message.from_wire(server.handle(chaos.to_wire(), udp=True)).rcode() == \
        dns.rcode.REFUSED
    axfr = dns.message.make_query("registrator.", "AXFR")
    assert dns.message.from_wire(server.handle(axfr.to_wire(), udp=False)).rcode() == \
        dns.rcode.REFUSED


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data):
    srv = DnsServer(lambda: SNAP, lambda _cb: None)
    srv.changed(SNAP)
    reply = srv.handle(data, udp=True)
    assert reply is None or (reply[:2] == data[:2] and reply[2] & 0x80)


NAMES = st.lists(st.text("abcdefgh-_XYZ09", min_size=1, max_size=20), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(NAMES, st.sampled_from(["A", "AAAA", "SRV", "TXT", "SOA"]), st.integers(-1, 0),
       st.integers(0, 65535))
def test_the_fast_parser_reads_what_dnspython_reads(labels, rdtype, edns, payload):
    wire = dns.message.make_query(".".join(labels) + ".registrator.", rdtype, use_edns=edns,
                                  payload=payload).to_wire()
    assert parse_fast(wire) == parse_slow(wire)


def test_ttl_is_whole_seconds_of_the_duration():
    srv = DnsServer(lambda: SNAP, lambda _cb: None, ttl=2.5)
    srv.changed(SNAP)
    assert ask(srv, "web.service.registrator.").answer[0].ttl == 2
    with pytest.raises(ValueError, match="TTL"):
        DnsServer(lambda: SNAP, lambda _cb: None, ttl=2.0**31)


def test_domain_is_checked():
    assert parse_domain("Registrator").to_text() == "registrator."
    for bad in (".", "a..b", "x" * 64 + ".com"):
        with pytest.raises(ValueError, match="domain"):
            parse_domain(bad)


def test_empty_non_terminals_are_nodata_not_nxdomain(server):
    """RFC 8020: NXDOMAIN says nothing exists below; these names have children."""
    for name in ("service.registrator.", "node.registrator.", "addr.registrator.",
                 "_tcp.service.registrator.", "h2.node.registrator."):
        response = ask(server, name)
        assert response.rcode() == dns.rcode.NOERROR, name
        assert not response.answer
        assert [rr.rdtype for rr in response.authority] == [dns.rdatatype.SOA]


def test_before_the_store_was_read_once_the_answer_is_servfail_not_nxdomain():
    """serve binds DNS before its first read of the store: 'no such name' then would be a
    lie a resolver may act on (HAProxy drops the servers); SERVFAIL says 'ask again'."""

    @dataclass(frozen=True)
    class Unloaded(Snap):
        loaded: bool = False

    srv = DnsServer(lambda: SNAP, lambda _cb: None)
    srv.changed(Unloaded(0, {}, []))
    assert ask(srv, "web.service.registrator.").rcode() == dns.rcode.SERVFAIL
    assert ask(srv, "example.com.").rcode() == dns.rcode.REFUSED
    srv.changed(SNAP)  # a snapshot without the flag (a fake, or an older state): loaded
    assert records(ask(srv, "web.service.registrator.")) == ["10.0.0.1", "10.0.0.2"]


def test_udp_answers_fit_in_one_datagram():
    """An EDNS client may offer 65535 bytes; a UDP datagram holds 65507 (IPv4): past that
    sendto fails and the client would get nothing instead of TC."""
    query = parse_fast(dns.message.make_query("a.registrator.", "A", use_edns=0,
                                              payload=65535).to_wire())
    assert udp_limit(query, 65535) == 65507
    assert udp_limit(query) == 1232
