"""The web view at / (SPEC §11): server-rendered Jinja2 pages (autoescape on: every value is
untrusted), one CSS and one JS file served by the process (no CDN, no build chain), and a
server-sent event stream that tells the page to fetch its own content again when the copy
changed (no page reload). The Content-Security-Policy allows scripts from this origin only:
even a value that got past the escaping could not run."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from registrator.configvalues.names import name_problem
from registrator.consumers.ls import age
from registrator.layouts import host_port
from registrator.serve import views
from registrator.serve.http import Api, TooManyHeldError
from registrator.serve.state import Snapshot

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

WEB = Path(__file__).parent / "web"
HEARTBEAT = 5.0  # seconds between event-stream heartbeats (they carry the stale state)
# Rows one page shows at most (instances, hosts): the page stays small and quick to render
# on the event loop whatever the registry holds; the JSON API has the whole list.
MAX_ROWS = 500
_SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# How a health state is coloured: passing, on its way, failing (anything else).
_HEALTH_CLASS = {"healthy": "ok", "none": "ok", "passing": "ok", "starting": "warn"}
_STATIC = {"serve.css": "text/css; charset=utf-8",
           "serve.js": "text/javascript; charset=utf-8"}


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(WEB / "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def _text(value: object) -> str:
    """Any JSON value of a (hostile) host record as one line of text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _instance_rows(entries: Any, now: datetime) -> list[dict[str, Any]]:
    return [{"address": host_port(e["address"], e["port"]), "protocol": e["protocol"],
             "host": e["host"], "id": e["id"], "tags": e["tags"],
             "meta": sorted(e["meta"].items()), "health": e["health"],
             "state": _HEALTH_CLASS.get(e["health"], "bad"),
             "since": e.get("registered_at", ""), "age": age(e.get("registered_at", ""), now),
             "container": e.get("container_name", "")} for e in entries]


def _host_rows(snap: Snapshot) -> list[dict[str, Any]]:
    rows = []
    for record in snap.hosts:
        labels = record.get("labels")
        rows.append({
            "hostname": _text(record.get("hostname", "")),
            "address": _text(record.get("address", "")),
            "labels": sorted((str(k), _text(v)) for k, v in labels.items())
            if isinstance(labels, dict) else [],
            "version": _text(record.get("registrator_version", "")),
            "lease": _text(record.get("lease", "")),
            "ttl": _text(record.get("ttl", "")),
            "started": _text(record.get("started_at", "")),
        })
    return rows


def _service_rows(snap: Snapshot) -> list[dict[str, Any]]:
    rows = []
    for name, entries in snap.services.items():
        tags = sorted({t for e in entries for t in e["tags"]})
        passing = sum(1 for e in entries if e["health"] in ("healthy", "none", "passing"))
        rows.append({"name": name, "count": len(entries), "passing": passing, "tags": tags,
                     "hosts": len({e["host"] for e in entries})})
    return rows


class Pages:
    """The web view's handlers; every one renders from the current snapshot."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.env = environment()
        self.static = {name: (WEB / "static" / name).read_bytes() for name in _STATIC}

    def render(self, request: Request, template: str, status: int = 200,
               **context: Any) -> Response:
        api = self.api
        snap, stale = api.state.current(), api.state.stale_for
        html = self.env.get_template(template).render(
            whole=request.query_params.get("fragment") != "1", revision=snap.revision,
            loaded=snap.loaded, stale=None if stale is None else f"{stale:.0f}",
            problem=api.health(), show_config=api.options.show_config,
            page=template.removesuffix(".html"), **context)
        # A stored value may hold a lone surrogate: replaced, never a failed answer.
        return HTMLResponse(html.encode("utf-8", "replace"), status, headers=_SECURITY)

    async def services(self, request: Request) -> Response:
        return self.render(request, "services.html",
                           services=_service_rows(self.api.state.current()))

    async def service(self, request: Request) -> Response:
        name = request.path_params["name"]
        snap = self.api.state.current()
        entries = snap.services.get(name, ())
        rows = _instance_rows(entries[:MAX_ROWS], datetime.now(UTC))
        return self.render(request, "service.html", 200 if rows else 404, name=name, rows=rows,
                           total=len(entries), max_rows=MAX_ROWS)

    async def hosts(self, request: Request) -> Response:
        return self.render(request, "hosts.html", hosts=_host_rows(self.api.state.current()))

    async def config(self, request: Request) -> Response:
        api = self.api
        if not api.options.show_config:
            return self.render(request, "missing.html", 404, what="configuration")
        snap = api.state.current()
        app = request.path_params.get("app")
        if app is None:
            return self.render(request, "config.html", app=None, rows=[],
                               apps=views.config_apps(snap, api.options.prefix))
        if name_problem(app) is not None:
            return self.render(request, "missing.html", 404, what="application")
        rows = views.config_rows(snap, api.options.prefix, app)
        return self.render(request, "config.html", app=app, apps=[], rows=rows)

    async def events(self, request: Request) -> Response:
        client = request.client.host if request.client else "-"
        if not self.api.held.acquire(client):
            raise TooManyHeldError
        return _EventStream(_stream(self.api), lambda: self.api.held.release(client))

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.static:
            return Response("not found\n", 404, media_type="text/plain")
        return Response(self.static[name], media_type=_STATIC[name],
                        headers={"Cache-Control": "max-age=300",
                                 "X-Content-Type-Options": "nosniff"})


def page_routes(api: Api) -> list[Route]:
    pages = Pages(api)
    get = ["GET", "HEAD"]
    return [
        Route("/", pages.services, methods=get),
        Route("/ui/services/{name}", pages.service, methods=get),
        Route("/ui/hosts", pages.hosts, methods=get),
        Route("/ui/config", pages.config, methods=get),
        Route("/ui/config/{app}", pages.config, methods=get),
        Route("/ui/events", pages.events, methods=get),
        Route("/static/{name}", pages.asset, methods=get),
    ]


def _state_line(api: Api) -> str:
    """What a page shows depends on: the copy's revision and whether it is stale."""
    snap = api.state.current()
    return f"{snap.revision}:{'stale' if api.state.stale_for is not None else 'current'}"


class _EventStream(StreamingResponse):
    """An event stream that gives its held-request slot back however it ends (the client
    left, the server stops, or it never started)."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(body, media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _stream(api: Api) -> AsyncIterator[bytes]:
    """One `data: <revision>:<current|stale>` line at start and at each change; heartbeats
    keep proxies from closing the stream and carry stale/current changes too."""
    last = _state_line(api)
    yield f"retry: 2000\ndata: {last}\n\n".encode()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(api.wakeup.next()), HEARTBEAT)
        if api.wakeup.closed:  # serve is stopping: end the stream (the page reconnects)
            return
        line = _state_line(api)
        yield f"data: {line}\n\n".encode() if line != last else b": heartbeat\n\n"
        last = line

