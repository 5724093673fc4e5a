"""The HTTP side of `serve` (SPEC §11): the JSON API, /healthz, /metrics, and the web view's
routes (pages.py), on Starlette + uvicorn. Every answer comes from the current Snapshot, never
from the store. starlette/uvicorn: the ASGI pair most Python web stacks build on, small, typed,
actively released; uvicorn's h11 protocol bounds the request head and gives keep-alive
timeouts, Starlette gives routing and streaming (server-sent events) without a framework."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from registrator.configvalues.names import name_problem
from registrator.durations import seconds as parse_seconds
from registrator.serve import views
from registrator.serve.limits import MAX_HEAD, MAX_WAIT, HeldLimit, Wakeup, hold
from registrator.serve.metrics import ServeMetrics
from registrator.serve.state import ServeState, Snapshot

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

JSON_TYPE = "application/json; charset=utf-8"
CACHE_ENTRIES = 4096  # encoded answers kept per snapshot
CACHE_KEY_CHARS = 512  # answers to longer parameters (name, tag, host together) are not kept


@dataclass(frozen=True)
class Options:
    prefix: str
    stale_after: float = 10.0
    show_config: bool = False


class BadRequestError(Exception):
    """A query parameter that cannot be used: 400 with this message."""


class Api:
    """The routes' shared state: the copy, the options, held-request accounting."""

    def __init__(self, state: ServeState, options: Options, metrics: ServeMetrics) -> None:
        self.state, self.options, self.metrics = state, options, metrics
        self.wakeup = Wakeup()
        self.held = HeldLimit()
        metrics.held = lambda: self.held.held
        state.subscribe(self.wakeup.published)
        # Encoded answers per snapshot: most requests ask what the last one asked.
        self._cache_of: Snapshot | None = None
        self._cache: dict[tuple[str | None, ...], bytes] = {}

    def health(self) -> str | None:
        """None while /healthz says ok, otherwise why not."""
        snap, stale = self.state.current(), self.state.stale_for
        if not snap.loaded:
            return "no copy of the registry yet: the store has not answered"
        if stale is not None and stale > self.options.stale_after:
            return (f"store unreachable for {stale:.1f}s (over --stale-after "
                    f"{self.options.stale_after:g}s); answering from the copy of revision "
                    f"{snap.revision}" + (f" ({self.state.problem})" if self.state.problem else ""))
        return None

    def cached(self, snap: Snapshot, key: tuple[str | None, ...], make: Callable[[], Any]) -> bytes:
        if self._cache_of is not snap or len(self._cache) > CACHE_ENTRIES:
            self._cache_of, self._cache = snap, {}
        body = self._cache.get(key)
        if body is None:
            # ASCII with \u escapes: a stored value may hold a lone surrogate (a valid JSON
            # escape that no UTF-8 encoder takes); the answer is valid whatever it holds.
            body = json.dumps(make(), sort_keys=True).encode()
            # Long parameters are not what clients ask again and again, and as keys they
            # would let one client fill memory (4,096 names of 15 KB: 60 MB).
            if sum(len(part) for part in key if part is not None) <= CACHE_KEY_CHARS:
                self._cache[key] = body
        return body

    async def blocking(self, request: Request, index_of: Callable[[Snapshot], int]) -> Snapshot:
        """The snapshot to answer from: at once, or (?index=N) once the answer's index passes
        N, the wait ends, or the client leaves."""
        index, wait = _blocking_params(request)
        snap = self.state.current()
        if not snap.loaded:
            raise NotLoadedError
        # An index from beyond this copy (another server, a reset store): answer at once.
        if index is None or index_of(snap) > index or index > snap.revision:
            return snap
        client = request.client.host if request.client else "-"
        with self.held.slot(client) as taken:
            if not taken:
                raise TooManyHeldError
            await hold(self.wakeup, request.receive, wait,
                       lambda: index_of(self.state.current()) > index)
        return self.state.current()

    def answer(self, body: bytes, index: int, status: int = 200) -> Response:
        return Response(body, status, media_type=JSON_TYPE,
                        headers={"X-Registrator-Index": str(index)})


class TooManyHeldError(Exception):
    """No held-request slot is free for this client."""


class NotLoadedError(Exception):
    """The store has not been read yet: an empty answer would be wrong (a Prometheus would
    drop every target), so the client is told to come back (503), keeping what it had."""


def _blocking_params(request: Request) -> tuple[int | None, float]:
    params = request.query_params
    index: int | None = None
    if "index" in params:
        text = params["index"]
        if not text.isascii() or not text.isdigit() or len(text) > 20:
            raise BadRequestError(f"index {text[:40]!r}: expected a non-negative integer")
        index = int(text)
    wait = MAX_WAIT
    if "wait" in params:
        value = parse_seconds(params["wait"][:40])
        if value is None or not math.isfinite(value):
            raise BadRequestError(f"wait {params['wait'][:40]!r}: expected a duration "
                                  "such as 30s")
        wait = min(value, MAX_WAIT)
    return index, wait


def _one(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and len(value) > 1024:
        raise BadRequestError(f"{name} is longer than 1024 characters")
    return value


def api_routes(api: Api) -> list[Route]:
    async def services(request: Request) -> Response:
        snap = await api.blocking(request, lambda s: s.services_index)
        body = api.cached(snap, ("services",), lambda: views.service_counts(snap))
        return api.answer(body, snap.services_index)

    async def service(request: Request) -> Response:
        name = request.path_params["name"]
        tag, host = _one(request, "tag"), _one(request, "host")
        snap = await api.blocking(request, lambda s: s.index_of(name))
        body = api.cached(snap, ("service", name, tag, host),
                          lambda: views.instances(snap, name, tag, host))
        return api.answer(body, snap.index_of(name))

    async def hosts(request: Request) -> Response:
        snap = await api.blocking(request, lambda s: s.hosts_index)
        return api.answer(api.cached(snap, ("hosts",), lambda: list(snap.hosts)),
                          snap.hosts_index)

    async def prometheus(request: Request) -> Response:
        name, tag = _one(request, "service"), _one(request, "tag")
        snap = await api.blocking(
            request, lambda s: s.services_index if name is None else s.index_of(name))
        body = api.cached(snap, ("sd", name, tag),
                          lambda: views.prometheus_sd(snap, name, tag))
        return api.answer(body, snap.services_index if name is None else snap.index_of(name))

    async def config(request: Request) -> Response:
        if not api.options.show_config:
            return _error(404, "configuration is not served (start serve with --show-config)")
        app, host = request.path_params["app"], _one(request, "host")
        if name_problem(app) is not None or (host is not None and name_problem(host)):
            raise BadRequestError("app or host is not a valid name")
        snap = await api.blocking(request, lambda s: s.config_index)
        body = api.cached(snap, ("config", app, host),
                          lambda: views.config_view(snap, api.options.prefix, app, host))
        return api.answer(body, snap.config_index)

    async def healthz(_request: Request) -> Response:
        problem = api.health()
        return PlainTextResponse((problem or "ok") + "\n", 200 if problem is None else 503)

    async def metrics(_request: Request) -> Response:
        body, content_type = api.metrics.exposition()
        return Response(body, media_type=content_type)

    get = ["GET", "HEAD"]
    return [
        Route("/v1/services", services, methods=get),
        Route("/v1/services/{name}", service, methods=get),
        Route("/v1/hosts", hosts, methods=get),
        Route("/v1/prometheus/sd", prometheus, methods=get),
        Route("/v1/config/{app}", config, methods=get),
        Route("/healthz", healthz, methods=get),
        Route("/metrics", metrics, methods=get),
    ]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status, headers=headers)


class Guard:
    """Pure ASGI middleware: no request body, the stale header on every answer, a count of
    answers by status."""

    def __init__(self, app: ASGIApp, api: Api) -> None:
        self.app, self.api = app, api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.api.metrics.answered(message["status"])
                # Taken as the answer leaves: a held read may end long after it began.
                stale = self.api.state.stale_for
                if stale is not None:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"],
                                          (b"x-registrator-stale", f"{stale:.1f}".encode())]
            await send(message)

        # h11 bounds a head that arrives in pieces; one that arrives whole is measured here.
        head = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) + sum(
            len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > MAX_HEAD:
            await _error(431, f"request line and headers over {MAX_HEAD} bytes",
                         headers={"Connection": "close"})(scope, receive, send_with_headers)
            return
        headers = dict(scope["headers"])
        if headers.get(b"transfer-encoding") or headers.get(b"content-length", b"0") != b"0":
            response = _error(413, "no request body is accepted here",
                              headers={"Connection": "close"})
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def build_app(state: ServeState, options: Options, metrics: ServeMetrics,
              extra_routes: Callable[[Api], list[Any]] | None = None) -> tuple[Starlette, Api]:
    api = Api(state, options, metrics)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        api.wakeup.attach()
        yield

    routes: list[Any] = api_routes(api)
    if extra_routes is not None:
        routes += extra_routes(api)

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return _error(404, "not found")

    async def not_allowed(_request: Request, _exc: Exception) -> Response:
        return _error(405, "method not allowed")

    async def bad_request(_request: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def too_many(_request: Request, _exc: Exception) -> Response:
        return _error(429, "too many held requests; retry later", headers={"Retry-After": "1"})

    async def not_loaded(_request: Request, _exc: Exception) -> Response:
        return _error(503, "no copy of the registry yet: the store has not answered",
                      headers={"Retry-After": "1"})

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        404: not_found, 405: not_allowed, BadRequestError: bad_request,
        TooManyHeldError: too_many, NotLoadedError: not_loaded})
    app.add_middleware(Guard, api=api)
    return app, api
