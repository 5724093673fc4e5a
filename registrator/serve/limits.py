"""The bounds that keep one client from starving the others (SPEC §11 "bad input"), and the
wake-up that ends held requests the moment a new snapshot is published.

- Request line + headers: at most MAX_HEAD bytes (h11's own bound; 400 beyond) and
  HEAD_TIMEOUT seconds to arrive (a slowloris connection is closed; uvicorn only times out
  idle keep-alive connections, so that timer is added here).
- No request body is read: every route is GET, a request that announces a body gets 413.
- Held requests (blocking reads and event streams) at most MAX_HELD at once, MAX_HELD_PER_CLIENT
  per client address: beyond, 429 with Retry-After; a held request whose client went away
  gives its slot back at once.
- Connections plus running requests at most MAX_CONNECTIONS (uvicorn's limit_concurrency;
  503 beyond)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from registrator.serve.state import Snapshot

MAX_HEAD = 16 * 1024
HEAD_TIMEOUT = 10.0
KEEP_ALIVE = 5.0
MAX_HELD = 1024
MAX_HELD_PER_CLIENT = 64
MAX_CONNECTIONS = 4096
MAX_WAIT = 300.0  # a blocking read is held at most 5 minutes (SPEC §11, as Consul)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request head: a client that opens a
    connection and sends its headers a byte at a time is cut off after HEAD_TIMEOUT."""

    head_timeout = HEAD_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout, self._too_slow, self.cycle)

    def _too_slow(self, cycle_then: object) -> None:
        self._head_timer = None
        # A new request began since the timer was armed: its head arrived in time.
        if self.cycle is cycle_then and not self.transport.is_closing():
            self.transport.close()


class HeldLimit:
    """Counts held requests, in total and per client address (one event loop: no lock)."""

    def __init__(self, total: int = MAX_HELD, per_client: int = MAX_HELD_PER_CLIENT) -> None:
        self.total, self.per_client = total, per_client
        self.held = 0
        self._by_client: dict[str, int] = {}

    def acquire(self, client: str) -> bool:
        """Take a slot for `client`; False when none is free."""
        mine = self._by_client.get(client, 0)
        if self.held >= self.total or mine >= self.per_client:
            return False
        self.held += 1
        self._by_client[client] = mine + 1
        return True

    def release(self, client: str) -> None:
        self.held -= 1
        left = self._by_client[client] - 1
        if left:
            self._by_client[client] = left
        else:
            del self._by_client[client]

    @contextlib.contextmanager
    def slot(self, client: str) -> Iterator[bool]:
        """Yields True with a slot taken (given back on exit), False when none is free."""
        taken = self.acquire(client)
        try:
            yield taken
        finally:
            if taken:
                self.release(client)


class Wakeup:
    """One future per published snapshot, shared by every held request: a snapshot (from the
    watch thread) resolves it on the event loop and puts a fresh one in its place."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None
        # Set at shutdown: held reads are answered and event streams end at once, instead
        # of holding the exit until uvicorn's grace period cancels them.
        self.closed = False

    def close(self) -> None:
        """On the event loop: end every held request now."""
        self.closed = True
        self._wake()

    def attach(self) -> None:
        """On the event loop, before serving."""
        self._loop = asyncio.get_running_loop()
        self._future = self._loop.create_future()

    def published(self, _snap: Snapshot) -> None:
        """ServeState.subscribe callback: any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        old, self._future = self._future, asyncio.get_running_loop().create_future()
        if old is not None and not old.done():
            old.set_result(None)

    def next(self) -> asyncio.Future[None]:
        if self._future is None:
            self.attach()
        assert self._future is not None  # noqa: S101 - attach() just made it
        return self._future


async def until_disconnect(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> None:
    """Returns when the client went away (a GET has no body: the first message is the empty
    request, the next one comes only with the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def hold(wakeup: Wakeup, receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
               seconds: float, done: Callable[[], bool]) -> None:
    """Wait until `done()` (checked at each new snapshot), `seconds` pass, or the client goes
    away, whichever comes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    gone = asyncio.ensure_future(until_disconnect(receive))
    try:
        while not done() and not gone.done() and not wakeup.closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            # The future is taken before done() is looked at again: a snapshot published in
            # between resolves this very future, so no change is missed.
            changed = wakeup.next()
            await asyncio.wait({asyncio.shield(changed), gone}, timeout=remaining,
                               return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
