"""The Docker engine: list, inspect, events, over engine.py's connections (it says why not
the SDK). Their errors become registrator's here."""

from __future__ import annotations

import functools
import http.client
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, NamedTuple, ParamSpec, TypeVar
from urllib.parse import quote, urlencode

from registrator.engine import Connections, Endpoint, Stream
from registrator.errors import DockerAccessError, DockerUnavailableError

P = ParamSpec("P")
R = TypeVar("R")

# Actions after which a container may need (de)registering. Everything else (exec_*, attach,
# resize...) cannot change what a container produces.
CONTAINER_ACTIONS = ("start", "restart", "die", "stop", "kill", "destroy", "pause", "unpause",
                     "health_status", "rename", "update")
NETWORK_ACTIONS = ("connect", "disconnect")  # change a container's IP for --internal
# Podman 4.3 filters events by its own names before renaming them for Docker clients (its
# issue #16857, fixed in 4.4): a filter on `die` alone never matches its `died`. Its names
# are subscribed to as well and mapped back; dockerd just never sends them.
PODMAN_ACTIONS = {"died": "die", "remove": "destroy"}
_API_TIMEOUT = 30


def _converted(func: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (http.client.HTTPException, OSError, ValueError) as exc:
            source = args[0] if args and isinstance(args[0], DockerSource) else None
            raise _convert(exc, source.base_url if source else "the Docker socket") from None

    return wrapper


def _convert(exc: BaseException, where: str) -> Exception:
    if _denied(exc):
        path = where.removeprefix("unix://")
        return DockerAccessError(
            f"permission denied on {path}: run as a user in the socket's group (a container: "
            f"docker run --group-add $(stat -c %g {path}) ...)")
    if where.startswith("unix://") and _in_chain(exc, FileNotFoundError):
        # Mostly a container started without the socket mounted: say what to add.
        path = where.removeprefix("unix://")
        return DockerUnavailableError(
            f"no Docker socket at {path}: in a container, mount it (docker run -v "
            f"{path}:{path}:ro ...), or point DOCKER_HOST at the engine (or a socket proxy)")
    return DockerUnavailableError(f"docker unreachable at {where}: {short(str(exc))}")


def _in_chain(exc: BaseException | None, kind: type[BaseException]) -> bool:
    seen = 0
    while exc is not None and seen < 10:  # a chain is never this long; a loop could be
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _denied(exc: BaseException | None) -> bool:
    """A PermissionError anywhere in the chain, or in the text it was wrapped in."""
    seen = 0
    while exc is not None and seen < 10:  # a chain is never this long; a loop could be
        if isinstance(exc, PermissionError) or "Permission denied" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def short(text: str, limit: int = 200) -> str:
    """One line of at most `limit` characters: something that is not Docker may answer
    with a whole HTML page, which must not fill every retry line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


class Hint(NamedTuple):
    """What the daemon needs of one event: which container, what happened, when (epoch s),
    and for a `kill` the signal as the engine wrote it (drain on stop)."""

    container_id: str
    action: str
    at: float | None
    signal: str | None = None


class EventStream:
    """A live subscription to engine events; iterate for hints. close() from another thread
    ends the iteration."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Hint]:
        try:
            while line := self._stream.readline():
                if not line.strip():
                    continue
                hint = container_hint(json.loads(line))
                if hint is not None:
                    yield hint
        except (http.client.HTTPException, OSError, ValueError, AttributeError) as exc:
            # AttributeError: a response whose connection close() took from another thread.
            raise DockerUnavailableError(f"docker event stream broken: {short(str(exc))}",
                                         ) from None

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:  # noqa: BLE001 - closing a dead stream must never fail shutdown
            return


def container_hint(event: Mapping[str, Any]) -> Hint | None:
    """The hint of an event, or None for events we skip."""
    if not isinstance(event, Mapping):
        return None
    kind = event.get("Type")
    action = str(event.get("Action") or event.get("status") or "")
    actor = event.get("Actor") or {}
    if kind == "container":
        cid = actor.get("ID") or event.get("id")
    elif kind == "network" and action in NETWORK_ACTIONS:
        # dockerd: Actor is the network, the container an attribute; Podman: Actor is the
        # container itself.
        cid = (actor.get("Attributes") or {}).get("container") or actor.get("ID")
    else:
        return None
    base = action.split(":", 1)[0]
    base = PODMAN_ACTIONS.get(base, base)
    if not cid or base not in (*CONTAINER_ACTIONS, *NETWORK_ACTIONS):
        return None
    nanos = event.get("timeNano")
    sig = (actor.get("Attributes") or {}).get("signal") if base == "kill" else None
    return Hint(str(cid), base, nanos / 1e9 if isinstance(nanos, int) else None,
                str(sig) if sig is not None else None)


def _podman_gone(status: int, data: bytes) -> bool:
    """Podman answers an inspect of a container it is removing with HTTP 500 "no such
    container" rather than 404: that container is gone all the same."""
    if status != HTTPStatus.INTERNAL_SERVER_ERROR:
        return False
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return isinstance(body, dict) and any(
        "no such container" in str(body.get(k) or "").lower() for k in ("cause", "message"))


class DockerSource:
    def __init__(self, environ: Mapping[str, str] | None = None,
                 timeout: float = _API_TIMEOUT) -> None:
        self.endpoint = Endpoint.from_env(os.environ if environ is None else environ)
        self.base_url = self.endpoint.url
        self._connections = Connections(self.endpoint.connector(timeout))
        self._lock = threading.Lock()
        self._prefix: str | None = None  # "/v1.47": the engine's API version, asked once

    def _versioned(self, path: str) -> str:
        """Like the SDK, requests speak the engine's own API version, so the fields read
        here are the ones it documents. Asked on first use, not at start: an engine that
        is down must be retried, not fatal."""
        with self._lock:
            if self._prefix is None:
                version = self._get("/version", "version").get("ApiVersion")
                if not isinstance(version, str) or not version.replace(".", "").isdigit():
                    raise DockerUnavailableError(
                        f"docker at {self.base_url}: /version named no API version")
                self._prefix = f"/v{version}"
            return self._prefix + path

    def _get(self, path: str, what: str, *, gone_ok: bool = False) -> Any:
        """The JSON answer of a GET; None for a container that is gone when `gone_ok`."""
        status, data = self._connections.get(path)
        if gone_ok and (status == HTTPStatus.NOT_FOUND or _podman_gone(status, data)):
            return None
        return self._answer(status, data, what)

    @staticmethod
    def _answer(status: int, data: bytes, what: str) -> Any:
        if status != HTTPStatus.OK:
            raise DockerUnavailableError(
                f"docker: {what}: HTTP {status}: {short(data[:400].decode('utf-8', 'replace'))}")
        return json.loads(data)

    @_converted
    def ping(self) -> None:
        """Reaches the engine (and learns its API version)."""
        self._versioned("")

    @_converted
    def engine_id(self) -> str:
        """The engine's own id: tells whether another daemon's host record came from this
        very Docker host."""
        status, data = self._connections.get(self._versioned("/info"))
        if status == HTTPStatus.FORBIDDEN:
            return ""  # a socket proxy that allows no /info: the engine stays unknown
        info = self._answer(status, data, "info")
        return str(info.get("ID") or "") if isinstance(info, dict) else ""

    @_converted
    def running_ids(self) -> list[str]:
        """Running containers, paused ones included (Docker lists them as running)."""
        listed = self._get(self._versioned("/containers/json"), "list of containers")
        if not isinstance(listed, list):
            raise DockerUnavailableError("docker: list of containers: not a list")
        return [str(c["Id"]) for c in listed if isinstance(c, dict) and c.get("Id")]

    @_converted
    def inspect(self, container_id: str) -> dict[str, Any] | None:
        """The fields of the container's inspect data registrator reads (slim()), or None
        when it no longer exists. The hot path: every event leads here."""
        path = self._versioned(f"/containers/{quote(container_id, safe='')}/json")
        data = self._get(path, f"inspect {container_id[:12]}", gone_ok=True)
        if data is None:
            return None
        if not isinstance(data, dict):
            raise DockerUnavailableError(f"docker: inspect {container_id[:12]}: not an object")
        return slim(data)

    @_converted
    def events(self) -> EventStream:
        """Subscribe now (the request is sent and answered before this returns), so nothing
        that happens after this call is missed by a reconcile that lists containers
        afterwards."""
        query = urlencode({"filters": json.dumps({
            "type": ["container", "network"],
            "event": [*CONTAINER_ACTIONS, *NETWORK_ACTIONS, *PODMAN_ACTIONS],
        })})
        stream = self._connections.stream(self._versioned(f"/events?{query}"))
        if stream.status != HTTPStatus.OK:
            body = stream.response.read(400).decode("utf-8", "replace")
            stream.close()
            raise DockerUnavailableError(f"docker: events: HTTP {stream.status}: {short(body)}")
        return EventStream(stream)

    def close(self) -> None:
        self._connections.close()


# What registrator reads of an inspect (desired, drain, takeover). An inspect is ~40 KB of
# Python objects, most of it HostConfig, GraphDriver and Mounts: kept whole, 300 containers
# held through a reconcile cost the daemon ~12 MB it never gives back to the system.
INSPECT_FIELDS: dict[str, tuple[str, ...] | None] = {
    "Id": None, "Name": None, "State": None, "NetworkSettings": ("Ports", "Networks"),
    "Config": ("Labels", "Env", "ExposedPorts", "Image", "StopSignal", "StopTimeout"),
    "HostConfig": ("NetworkMode", "StopTimeout"),
}


def slim(data: Mapping[str, Any]) -> dict[str, Any]:
    """The inspect data registrator reads, and nothing else (a health check's last outputs
    included: they can be large and are never read)."""
    out: dict[str, Any] = {}
    for field, keep in INSPECT_FIELDS.items():
        if field not in data:
            continue
        value = data[field]
        if isinstance(value, Mapping) and keep is not None:
            value = {k: value[k] for k in keep if k in value}
        out[field] = value
    state = out.get("State")
    if isinstance(state, Mapping) and isinstance(state.get("Health"), Mapping):
        out["State"] = {**state, "Health": {k: v for k, v in state["Health"].items()
                                            if k != "Log"}}
    return out
