"""The DNS answers of one registry snapshot: the wire bytes of each question, built on its
first ask and kept until the next change (an unchanged service keeps its answers across
changes). A request costs a dict look-up and a few byte copies."""

from __future__ import annotations

import dns.name
import dns.rdataclass

from registrator.serve.dns_wire import (
    REFUSED_TYPES,
    Builder,
    Query,
    bare,
    finish,
    labels_of,
    name_wire,
)
from registrator.serve.dns_zone import Zone

# Answers kept per snapshot beyond the services' own (negative answers, hosts, addr names,
# names outside the domain): bounded, so random names cannot grow memory.
HOT_MAX = 50_000
# ...and in bytes (names, answers and about what Python adds per entry): 50,000 random names
# near 255 bytes, a "water torture" flood, kept ~38 MB before this bound.
HOT_BYTES = 4 * 1024 * 1024
ENTRY_OVERHEAD = 200
REFUSED, SERVFAIL = 5, 2


class Answers:
    def __init__(self, zone: Zone, builder: Builder) -> None:
        self.zone, self.builder = zone, builder
        domain: dns.name.Name = builder.domain
        self._domain_wire = name_wire(domain)
        self._domain_labels = [label.decode("latin-1") for label in domain.labels[:-1]]
        self._hot: dict[tuple[bytes, int], bytes] = {}
        self._hot_bytes = 0

    def respond(self, query: Query, limit: int) -> bytes:
        """The answer to `query`, truncated (TC) past `limit` bytes."""
        key = (query.qname.lower(), query.qtype)
        template = self._hot.get(key)
        if template is None:
            if query.qclass != dns.rdataclass.IN:
                return finish(bare(key[0], query.qtype, query.qclass, REFUSED), query, limit)
            template = self._template(*key)
            size = len(key[0]) + len(template) + ENTRY_OVERHEAD
            if len(self._hot) < HOT_MAX and self._hot_bytes + size <= HOT_BYTES:
                self._hot[key] = template
                self._hot_bytes += size
        return finish(template, query, limit)

    def _template(self, qname: bytes, qtype: int) -> bytes:
        if not qname.endswith(self._domain_wire) or qtype in REFUSED_TYPES:
            return bare(qname, qtype, dns.rdataclass.IN, REFUSED)
        labels = labels_of(qname)
        cut = len(labels) - len(self._domain_labels)
        # endswith() on wire bytes alone could match inside a label: compare labels too.
        if cut < 0 or labels[cut:] != self._domain_labels:
            return bare(qname, qtype, dns.rdataclass.IN, REFUSED)
        if not self.zone.loaded:  # not "no such name" before we know: ask again
            return bare(qname, qtype, dns.rdataclass.IN, SERVFAIL)
        found = self.zone.find(labels[:cut], qtype)
        cache = None if found.negative else found.cache
        if cache is not None and (kept := cache.get((qname, qtype))) is not None:
            return kept
        template = self.builder.build(qname, qtype, found, self.zone.revision)
        if cache is not None:
            cache[qname, qtype] = template
        return template
