"""serve's DNS figures on its /metrics: answers by transport and rcode, truncated answers,
open TCP connections. Read from the server's plain counters at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from registrator.serve.dns import DnsServer

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsCollector(Collector):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        answers = CounterMetricFamily("registrator_serve_dns_responses",
                                      "DNS answers sent, by transport and rcode",
                                      labels=["transport", "rcode"])
        for (transport, rcode), count in sorted(self.server.answered.copy().items()):
            answers.add_metric([transport, RCODES.get(rcode, str(rcode))], count)
        yield answers
        yield CounterMetricFamily("registrator_serve_dns_truncated",
                                  "UDP answers sent truncated (TC) for a retry over TCP",
                                  value=self.server.truncated)
        yield GaugeMetricFamily("registrator_serve_dns_tcp_connections",
                                "DNS TCP connections open now", value=self.server.tcp_open)


def register(registry: CollectorRegistry, server: DnsServer) -> None:
    registry.register(DnsCollector(server))
