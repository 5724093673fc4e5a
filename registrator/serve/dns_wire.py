"""DNS wire format for serve (RFC 1035, EDNS per RFC 6891), with dnspython.

Speed: the answer to one (name, type) question is built with dnspython once per registry
change and kept as bytes; a request only gets its id, RD bit, the client's spelling of the
name and (with EDNS) an OPT record patched in. The common query (one question, a plain name,
at most an OPT record) is read by `parse_fast` without the library; anything else goes
through dnspython's parser (`parse_slow`), which answers what it cannot read with FORMERR."""

from __future__ import annotations

import dataclasses
import struct
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from registrator.serve.dns_zone import IP, SOA, Found, Target, ip_text

IN = dns.rdataclass.IN
UDP_PLAIN = 512  # RFC 1035: a UDP answer without EDNS
OUR_PAYLOAD = 1232  # what we advertise in OPT (the 2020 DNS flag day's safe size)
TCP_MAX = 65535  # one TCP message's length prefix
UDP_MAX = 65507  # one IPv4 UDP datagram's payload
OPT = b"\x00\x00\x29" + struct.pack(">H", OUR_PAYLOAD) + b"\x00" * 6
FIT = TCP_MAX - len(OPT)  # the largest template: finish() may add our OPT record
_QTYPE_CLASS = struct.Struct(">HH")
_RR_HEAD = struct.Struct(">HHHIH")  # name pointer, type, class, TTL, rdata length
_SOA_FIELDS = struct.Struct(">IIIII")  # serial, refresh, retry, expire, minimum
_OPT_FIELDS = struct.Struct(">HHBBHH")
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"
REFUSED_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})


class Query(NamedTuple):  # a tuple: one is made per packet, a frozen dataclass costs more
    qid: bytes  # the two id bytes, as sent
    rd: int  # the RD bit (0x01) to echo
    qname: bytes  # the name in wire form, in the client's case
    qtype: int
    qclass: int
    edns: int | None  # the client's UDP payload size; None without EDNS


def parse_fast(data: bytes) -> Query | None:  # noqa: PLR0911 - one return per shape refused
    """The common query, read without the library; None for anything else."""
    end = len(data)
    # No QR, opcode QUERY, no TC (AA and RD ignored); one question, no answers or authority.
    if end < 17 or data[2] & 0xFA or data[4:10] != _ONE_QUESTION or data[10]:
        return None
    arcount = data[11]
    pos = 12
    while (size := data[pos]) != 0:
        if size > 63:  # a compression pointer or an extended label type
            return None
        pos += size + 1
        if pos >= end:
            return None
    pos += 1
    if pos - 12 > 255 or pos + 4 > end:
        return None
    qtype, qclass = _QTYPE_CLASS.unpack_from(data, pos)
    pos += 4
    edns = None
    if arcount == 1:
        # OPT: the root name, type 41, class = payload size, ext-rcode, version, flags, rdlen.
        if end - pos < 11 or data[pos] != 0:
            return None
        rtype, payload, _ext, version, _flags, rdlen = _OPT_FIELDS.unpack_from(data, pos + 1)
        if rtype != dns.rdatatype.OPT or version != 0 or pos + 11 + rdlen != end:
            return None
        edns = payload
    elif arcount or pos != end:
        return None
    return Query(data[:2], data[2] & 0x01, data[12:pos - 4], qtype, qclass, edns)


def parse_slow(data: bytes) -> Query | bytes | None:
    """A query dnspython can read; otherwise the error answer to send, or None to drop
    (too short to carry an id, or a response: answering those could loop)."""
    if len(data) < 12 or data[2] & 0x80:
        return None
    try:
        msg = dns.message.from_wire(data)
    except Exception:  # noqa: BLE001 - whatever the parser rejects is a FORMERR, never a crash
        return error_header(data, dns.rcode.FORMERR)
    if msg.opcode() != dns.opcode.QUERY:
        return _error(msg, dns.rcode.NOTIMP)
    if msg.edns > 0:
        return _error(msg, dns.rcode.BADVERS)
    if len(msg.question) != 1:
        return _error(msg, dns.rcode.FORMERR)
    question = msg.question[0]
    return Query(data[:2], data[2] & 0x01, name_wire(question.name), question.rdtype,
                 question.rdclass, msg.payload if msg.edns == 0 else None)


def name_wire(name: dns.name.Name) -> bytes:
    """A name in wire form, uncompressed, its case kept."""
    wire = name.to_wire()
    if wire is None:  # only when writing to a file, which we never do
        raise TypeError("dnspython returned no wire form")
    return wire


def error_header(data: bytes, rcode: int) -> bytes:
    """A header-only answer to a query we could not read: its id, opcode and RD kept."""
    return data[:2] + bytes((0x80 | (data[2] & 0x79), rcode)) + b"\x00" * 8


def _error(msg: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    response = dns.message.make_response(msg)
    response.set_rcode(rcode)
    return response.to_wire()


def bare(qname: bytes, qtype: int, qclass: int, rcode: int) -> bytes:
    """The template of an answer with no records and no AA: REFUSED (a name outside our
    domain, a type we never serve), SERVFAIL (the store not read yet); the question echoed."""
    return (b"\x00\x00\x80" + bytes((rcode,)) + _ONE_QUESTION + b"\x00\x00"
            + qname + _QTYPE_CLASS.pack(qtype, qclass))


def finish(template: bytes, query: Query, limit: int) -> bytes:
    """The answer to `query` from `template` (id 0, RD clear, lowercase name): id, RD and
    the client's spelling patched in, an OPT record appended when the client sent one.
    Past `limit` bytes: only the question, with TC set, so the client retries over TCP."""
    rest = 12 + len(query.qname)
    flags = bytes((template[2] | query.rd, template[3]))
    if query.edns is None:
        out = b"".join((query.qid, flags, template[4:12], query.qname, template[rest:]))
        opt, arcount = b"", b"\x00\x00"
    else:
        opt, arcount = OPT, b"\x00\x01"
        additional = struct.pack(">H", ((template[10] << 8) | template[11]) + 1)
        out = b"".join((query.qid, flags, template[4:10], additional, query.qname,
                        template[rest:], opt))
    if len(out) <= limit:
        return out
    return b"".join((query.qid, bytes((flags[0] | 0x02, flags[1])), _ONE_QUESTION, arcount,
                     query.qname, template[rest:rest + 4], opt))


def udp_limit(query: Query) -> int:
    return UDP_PLAIN if query.edns is None else min(max(UDP_PLAIN, query.edns), UDP_MAX)


class Builder:
    """Turns a Found into its template bytes, for one domain and TTL."""

    def __init__(self, domain: dns.name.Name, ttl: int) -> None:
        self.domain, self.ttl = domain, ttl
        self._addr = dns.name.Name(("addr",)).concatenate(domain)
        self._domain_wire = name_wire(domain)
        # The SOA's names, uncompressed: ns.DOMAIN and hostmaster.DOMAIN.
        self._soa_names = b"".join(name_wire(dns.name.Name((label,)).concatenate(domain))
                                   for label in (b"ns", b"hostmaster"))
        self._soa_rdata: tuple[int, bytes] = (-1, b"")

    def soa(self, serial: int) -> dns.rrset.RRset:
        # Text in, because dnspython's rdata constructors are untyped; built once per change.
        return dns.rrset.from_text_list(
            self.domain, self.ttl, IN, dns.rdatatype.SOA,
            [(f"ns.{self.domain} hostmaster.{self.domain} {serial & 0xFFFFFFFF} "
             f"3600 600 86400 {self.ttl}")])

    def build(self, qname_lower: bytes, qtype: int, found: Found, serial: int) -> bytes:
        """The template of one answer. One that would not fit in a DNS message (thousands of
        instances) keeps the records that do, as Consul does over TCP: a resolver gets part
        of the set rather than SERVFAIL (dnspython refuses to write past 64 KiB)."""
        # The bytes one record takes: A 16, AAAA 28; SRV about 75 plus its address in the
        # additional section (names past 16 KiB into a message cannot be compressed). Room
        # is left for the header, question and OPT; cut before building (building thousands
        # of records only to refuse them is slow).
        if found.negative:
            return self._negative(qname_lower, qtype, found.rcode, serial)
        ips = found.ips or tuple(t.ip for t in found.srv)
        size = 16 if all(len(ip) == 4 for ip in ips) else 28
        keep = max(len(found.ips), len(found.srv), 1)
        keep = min(keep, (FIT - 600) // (size + (75 if found.srv else 0)))
        while keep > 0:
            cut = dataclasses.replace(found, ips=found.ips[:keep], srv=found.srv[:keep])
            try:
                return self._build(qname_lower, qtype, cut, serial)
            except dns.exception.TooBig:
                keep = keep * 9 // 10
        raise dns.exception.TooBig

    def _negative(self, qname_lower: bytes, qtype: int, rcode: int, serial: int) -> bytes:
        """NXDOMAIN or NODATA with the SOA in the authority section (RFC 2308), written
        directly: random names (never asked twice, so never cached) are the usual flood,
        and a dnspython message per answer cost ~100 times more. The SOA's owner points at
        the domain's place in the question (`qname_lower` ends with it: checked before)."""
        kept_serial, rdata = self._soa_rdata
        if kept_serial != serial:
            rdata = self._soa_names + _SOA_FIELDS.pack(serial & 0xFFFFFFFF, 3600, 600, 86400,
                                                       self.ttl)
            self._soa_rdata = (serial, rdata)
        owner = 0xC000 | (12 + len(qname_lower) - len(self._domain_wire))
        return b"".join((b"\x00\x00\x84", bytes((rcode,)), b"\x00\x01\x00\x00\x00\x01\x00\x00",
                         qname_lower, _QTYPE_CLASS.pack(qtype, IN),
                         _RR_HEAD.pack(owner, SOA, IN, self.ttl, len(rdata)), rdata))

    def _build(self, qname_lower: bytes, qtype: int, found: Found, serial: int) -> bytes:
        name = dns.name.from_wire(qname_lower, 0)[0]
        msg = dns.message.Message(id=0)
        msg.flags = dns.flags.QR | dns.flags.AA
        msg.set_rcode(dns.rcode.Rcode(found.rcode))
        msg.find_rrset(msg.question, name, IN, dns.rdatatype.RdataType.make(qtype),
                       create=True, force_unique=True)
        if found.ips:
            msg.answer.append(self._ips(name, found.ips))
        if found.srv:
            msg.answer.append(dns.rrset.from_text_list(
                name, self.ttl, IN, dns.rdatatype.SRV,
                [f"1 1 {t.port} {self._target(t)}" for t in found.srv]))
            for target in dict.fromkeys(found.srv):
                msg.additional.append(self._ips(self._target(target), (target.ip,)))
        if found.soa_answer and qtype == SOA:
            msg.answer.append(self.soa(serial))
        if found.negative:
            msg.authority.append(self.soa(serial))
        return msg.to_wire(max_size=FIT)

    def _target(self, target: Target) -> dns.name.Name:
        return dns.name.Name((target.label,)).concatenate(self._addr)

    def _ips(self, name: dns.name.Name, ips: tuple[IP, ...]) -> dns.rrset.RRset:
        """One A or AAAA rrset (`ips` are all of one family)."""
        rdtype = dns.rdatatype.A if len(ips[0]) == 4 else dns.rdatatype.AAAA
        return dns.rrset.from_text_list(name, self.ttl, IN, rdtype, [ip_text(ip) for ip in ips])


def labels_of(qname_lower: bytes) -> list[str]:
    """The labels of a well-formed wire name, leftmost first (latin-1: any byte decodes,
    and nothing that is not a DNS label matches a name of ours)."""
    labels = []
    pos = 0
    while (size := qname_lower[pos]) != 0:
        labels.append(qname_lower[pos + 1:pos + 1 + size].decode("latin-1"))
        pos += size + 1
    return labels
