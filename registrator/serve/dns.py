"""serve's DNS interface (SPEC §11): UDP and TCP on one port, answering from the registry
snapshot the serve state holds (never a store read per query).

Threads, not the HTTP side's event loop: UDP is one thread in a blocking receive loop (the
cheapest per packet in Python), TCP an asyncio loop of its own. A new snapshot only marks the
answers stale (O(1) in the caller's thread); the next query rebuilds the zone, reusing every
service whose entries did not change, so a change is answered at once.

Bounds (bad input never crashes the process, and one client cannot hold the others):
  - a packet that cannot be read gets FORMERR (or is dropped when too short to carry an id);
  - UDP answers are truncated (TC) past 512 bytes or the client's EDNS size;
  - TCP: at most `max_tcp` connections, `max_tcp_per_client` of them from one address (more
    are closed at once), a message must complete within `tcp_idle` seconds of the last
    whole one (then the connection is closed), a length prefix under 12 bytes closes it,
    and a client that does not read its answers is cut off past 256 KiB of unsent data."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import socket
import struct
import threading
from collections.abc import Callable

import dns.name
import structlog

from registrator.serve.dns_answers import Answers
from registrator.serve.dns_wire import (
    TCP_MAX,
    Builder,
    Query,
    error_header,
    parse_fast,
    parse_slow,
    udp_limit,
)
from registrator.serve.dns_zone import SnapshotLike, Zone

log = structlog.get_logger("registrator.serve.dns")

Subscribe = Callable[[Callable[[SnapshotLike], None]], None]
WRITE_MAX = 256 * 1024
_LENGTH = struct.Struct(">H")
_SERVFAIL = 2


def parse_domain(domain: str) -> dns.name.Name:
    """--domain as an absolute, lowercase name; ValueError for the root or a bad name."""
    try:
        name = dns.name.from_text(domain.strip().lower())
    except dns.name.EmptyLabel as exc:
        raise ValueError(f"bad DNS domain {domain!r}") from exc
    except Exception as exc:  # dnspython raises many kinds for one bad name
        raise ValueError(f"bad DNS domain {domain!r}: {exc}") from exc
    if name == dns.name.root:
        raise ValueError("the DNS domain cannot be the root")
    return name


class DnsServer:
    """DNS on HOST:PORT (UDP and TCP, the same port; port 0 picks a free one)."""

    def __init__(  # noqa: PLR0913 - the signature serve's CLI calls
            self, current: Callable[[], SnapshotLike], subscribe: Subscribe,
                 domain: str = "registrator.", ttl: float = 0, host: str = "127.0.0.1",
                 port: int = 0, *, max_tcp: int = 128, tcp_idle: float = 10.0,
                 max_tcp_per_client: int = 16) -> None:
        self._current, self._subscribe = current, subscribe
        if not 0 <= ttl < 2**31:  # RFC 2181 8: a TTL is 0 to 2^31 - 1 seconds
            raise ValueError(f"DNS TTL {ttl!r} is out of range")
        # --dns-ttl is a duration (a float of seconds); DNS counts whole seconds.
        self.builder = Builder(parse_domain(domain), int(ttl))
        self.host, self.port = host, port
        self.max_tcp, self.tcp_idle = max_tcp, tcp_idle
        # Per source address too: one client opening connection after connection must not
        # take every slot (its own are refused, the others' are not).
        self.max_tcp_per_client = min(max_tcp_per_client, max_tcp)
        self.tcp_by_client: dict[str, int] = {}
        self._pending: SnapshotLike | None = None
        self._answers: Answers | None = None
        self._swap = threading.Lock()  # guards _pending only: held for an assignment
        self._build = threading.Lock()  # one zone build at a time
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tcp_open = 0
        # Answers sent by (transport, rcode), and the truncated ones: plain ints bumped per
        # answer (a Prometheus counter's lock would cost more than the answer), read by
        # dns_metrics' collector at scrape time.
        self.answered: collections.Counter[tuple[str, int]] = collections.Counter()
        self.truncated = 0

    # -- the registry side ---------------------------------------------------------------

    def changed(self, snapshot: SnapshotLike) -> None:
        """The state's subscriber: O(1), whatever thread calls it."""
        with self._swap:
            self._pending = snapshot

    def answers(self) -> Answers:
        """The current answers, rebuilt first when a newer snapshot came in."""
        if self._pending is not None or self._answers is None:
            with self._build:
                with self._swap:
                    snapshot, self._pending = self._pending, None
                if snapshot is not None:
                    previous = self._answers.zone if self._answers is not None else None
                    self._answers = Answers(Zone.build(snapshot, previous), self.builder)
        assert self._answers is not None  # noqa: S101 - start() installs the first one
        return self._answers

    def handle(self, data: bytes, udp: bool) -> bytes | None:
        """The answer to one DNS message; None to send nothing."""
        reply = self._answer(data, udp=udp)
        if reply is not None:
            self.answered["udp" if udp else "tcp", reply[3] & 0x0F] += 1
            if reply[2] & 0x02:
                self.truncated += 1
        return reply

    def _answer(self, data: bytes, udp: bool) -> bytes | None:
        try:
            query = parse_fast(data)
            if query is None:
                parsed = parse_slow(data)
                if not isinstance(parsed, Query):
                    return parsed
                query = parsed
            return self.answers().respond(query, udp_limit(query) if udp else TCP_MAX)
        except Exception as exc:  # noqa: BLE001 - one bad question must not stop the server
            log.warning("DNS query failed", error=repr(exc)[:300])
            return error_header(data, _SERVFAIL) if len(data) >= 12 else None

    # -- sockets -------------------------------------------------------------------------

    def start(self) -> DnsServer:
        if self._udp is None:
            self.bind()
        self.changed(self._current())
        self._subscribe(self.changed)
        self.answers()
        self._threads = [threading.Thread(target=self._serve_udp, name="dns-udp", daemon=True),
                         threading.Thread(target=self._serve_tcp, name="dns-tcp", daemon=True)]
        for thread in self._threads:
            thread.start()
        log.info("serving DNS", host=self.host, port=self.port,
                 domain=self.builder.domain.to_text())
        return self

    def bind(self) -> None:
        """Take the port (UDP and TCP) without serving yet: OSError when it is not free."""
        # A name (localhost) is resolved once, here; its first address is the one served.
        family, _, _, _, address = socket.getaddrinfo(self.host, self.port,
                                                      type=socket.SOCK_DGRAM)[0]
        host = str(address[0])
        # Port 0: the kernel picks a free UDP port; the TCP one must be the same (dig and
        # resolvers retry a truncated answer on the same port), so try a few.
        for _attempt in range(20 if self.port == 0 else 1):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                udp.bind((host, self.port))
                port = udp.getsockname()[1]
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                # Inherited by accepted connections (asyncio would set it only on a socket
                # made with proto=IPPROTO_TCP): a pipelined second answer must not wait
                # 40 ms for the client's delayed ACK.
                tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                tcp.bind((host, port))
                tcp.listen(128)
            except OSError:
                udp.close()
                tcp.close()
                if self.port != 0:
                    raise
                continue
            self._udp, self._tcp, self.host, self.port = udp, tcp, host, port
            return
        raise OSError(f"no free port on {self.host} for both UDP and TCP")

    def stop(self) -> None:
        self._stopping.set()
        if self._udp is not None:
            # Wake the blocking receive with an empty datagram of our own.
            with contextlib.suppress(OSError), socket.socket(self._udp.family,
                                                             socket.SOCK_DGRAM) as poke:
                poke.sendto(b"", self._wake_address())
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
        for thread in self._threads:
            thread.join(5)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()

    def _wake_address(self) -> tuple[str, int]:
        unspecified = ipaddress.ip_address(self.host).is_unspecified
        if not unspecified:
            return (self.host, self.port)
        return ("::1" if ":" in self.host else "127.0.0.1", self.port)

    def _serve_udp(self) -> None:
        sock = self._udp
        assert sock is not None  # noqa: S101 - bound in start()
        handle, stopping = self.handle, self._stopping
        while not stopping.is_set():
            try:
                data, peer = sock.recvfrom(TCP_MAX)
            except OSError:
                continue  # e.g. an ICMP error surfacing here: the next datagram is fine
            if not data:
                continue
            reply = handle(data, udp=True)
            if reply is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        sock = self._tcp
        assert sock is not None  # noqa: S101 - bound in start()
        try:
            server = loop.run_until_complete(
                loop.create_server(lambda: _TcpConnection(self), sock=sock))
            if not self._stopping.is_set():
                loop.run_forever()
            server.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(server.wait_closed(), 2))
        finally:
            loop.close()


class _TcpConnection(asyncio.Protocol):
    """One TCP client (RFC 1035 4.2.2 length-prefixed messages, pipelined per RFC 7766)."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.counted = False
        self.client = "-"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream server
        self.transport = transport
        server = self.server
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "-"
        mine = server.tcp_by_client.get(self.client, 0)
        if server.tcp_open >= server.max_tcp or mine >= server.max_tcp_per_client:
            transport.abort()
            return
        server.tcp_open += 1
        server.tcp_by_client[self.client] = mine + 1
        self.counted = True
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.server.tcp_idle, self._idle)

    def _idle(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.buffer += data
        while len(self.buffer) >= 2:
            (size,) = _LENGTH.unpack_from(self.buffer)
            if size < 12:  # shorter than a DNS header: not DNS, or a broken client
                transport.abort()
                return
            if len(self.buffer) < 2 + size:
                return  # the rest must come before the idle timer fires
            message = bytes(self.buffer[2:2 + size])
            del self.buffer[:2 + size]
            self._arm()
            reply = self.server.handle(message, udp=False)
            if reply is not None:
                transport.write(_LENGTH.pack(len(reply)) + reply)
            if transport.get_write_buffer_size() > WRITE_MAX:
                transport.abort()  # it sends questions but does not read the answers
                return

    def connection_lost(self, _exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.counted:
            server = self.server
            server.tcp_open -= 1
            left = server.tcp_by_client[self.client] - 1
            if left:
                server.tcp_by_client[self.client] = left
            else:
                del server.tcp_by_client[self.client]
            self.counted = False
