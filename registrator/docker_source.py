"""The Docker engine: list, inspect, events. The only module that imports the Docker SDK;
its exceptions become registrator's here."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, NamedTuple, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

import docker
import docker.errors
import requests
import requests.exceptions
import urllib3
from docker.utils import kwargs_from_env

from registrator.errors import ConfigError, DockerAccessError, DockerUnavailableError

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
        except (docker.errors.DockerException, requests.exceptions.RequestException,
                urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            source = args[0] if args and isinstance(args[0], DockerSource) else None
            raise _convert(exc, source.base_url if source else "the Docker socket") from None

    return wrapper


def _convert(exc: BaseException, where: str) -> Exception:
    text = short(str(exc))
    if _denied(exc):
        path = where.removeprefix("unix://")
        return DockerAccessError(
            f"permission denied on {path}: run as a user in the socket's group (a container: "
            f"docker run --group-add $(stat -c %g {path}) ...)")
    if isinstance(exc, docker.errors.DockerException):
        return DockerUnavailableError(f"docker at {where}: {text}")
    return DockerUnavailableError(f"docker unreachable at {where}: {text}")


def _denied(exc: BaseException | None) -> bool:
    """A PermissionError anywhere in the chain, or in the args requests wraps it in."""
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
    """A live subscription to engine events; iterate for hints."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __iter__(self) -> Iterator[Hint]:
        try:
            for event in self._raw:
                hint = container_hint(event)
                if hint is not None:
                    yield hint
        except (requests.exceptions.RequestException, OSError, ValueError,
                AttributeError, docker.errors.DockerException) as exc:
            # AttributeError: the SDK's stream after close() from another thread.
            raise DockerUnavailableError(f"docker event stream broken: {exc}") from None

    def close(self) -> None:
        try:
            self._raw.close()
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


def _podman_gone(response: Any) -> bool:
    """Podman answers an inspect of a container it is removing with HTTP 500 "no such
    container" rather than 404: that container is gone all the same."""
    if response.status != HTTPStatus.INTERNAL_SERVER_ERROR:
        return False
    try:
        body = json.loads(response.data)
    except ValueError:
        return False
    return isinstance(body, dict) and any(
        "no such container" in str(body.get(k) or "").lower() for k in ("cause", "message"))


class DockerSource:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        try:
            self._kwargs = kwargs_from_env(
                environment=dict(environ) if environ is not None else None)
        except docker.errors.DockerException as exc:
            raise ConfigError(f"docker settings (DOCKER_HOST / DOCKER_TLS_*): {exc}") from None
        self.base_url = str(self._kwargs.get("base_url") or "unix:///var/run/docker.sock")
        self._client: docker.APIClient | None = None
        self._fast: tuple[Any, str] | None = None
        self._lock = threading.RLock()  # _pool() takes it and then calls _api

    @property
    def _api(self) -> docker.APIClient:
        """Created on first use: the SDK asks the engine for its API version while
        constructing the client, and an engine that is down must be retried, not fatal."""
        with self._lock:
            if self._client is None:
                client = docker.APIClient(timeout=_API_TIMEOUT, **self._kwargs)
                # A session-wide proxy lookup in the environment on every request costs
                # ~0.5 ms on the hot path, and a Docker socket is never reached via a proxy.
                client.trust_env = False
                self._client = client
            return self._client

    def _pool(self) -> tuple[Any, str]:
        """The SDK's own connection pool for the engine (unix socket, TLS or ssh, as the
        SDK set it up) and the versioned path prefix. Calling the pool directly skips the
        requests Session machinery: ~0.5 ms of the ~1.3 ms an inspect costs through it."""
        with self._lock:  # inspects run on several threads during a full reconcile
            if self._fast is None:
                api = self._api
                url = api._url("/containers/json")  # noqa: SLF001 - the SDK's versioned URL
                request = api.prepare_request(requests.Request("GET", url))
                pool = api.get_adapter(url).get_connection_with_tls_context(
                    request, verify=api.verify, cert=api.cert)
                self._fast = (pool, urlsplit(url).path.removesuffix("/containers/json"))
            return self._fast

    @_converted
    def ping(self) -> None:
        self._api.ping()

    @_converted
    def engine_id(self) -> str:
        """The engine's own id: tells whether another daemon's host record came from this
        very Docker host."""
        return str(self._api.info().get("ID") or "")

    @_converted
    def running_ids(self) -> list[str]:
        """Running containers, paused ones included (Docker lists them as running)."""
        return [c["Id"] for c in self._api.containers(quiet=True)]

    @_converted
    def inspect(self, container_id: str) -> dict[str, Any] | None:
        """The container's inspect data, or None when it no longer exists. The hot path:
        every event leads here."""
        pool, prefix = self._pool()
        response = pool.urlopen(
            "GET", f"{prefix}/containers/{quote(container_id, safe='')}/json",
            headers={"Host": "docker", "Accept": "application/json"}, retries=False,
            timeout=urllib3.Timeout(_API_TIMEOUT), preload_content=True)
        if response.status == HTTPStatus.NOT_FOUND or _podman_gone(response):
            return None
        if response.status != HTTPStatus.OK:
            raise DockerUnavailableError(
                f"docker: inspect {container_id[:12]}: HTTP {response.status}: "
                f"{short(response.data[:400].decode('utf-8', 'replace'))}")
        data = json.loads(response.data)
        if not isinstance(data, dict):
            raise DockerUnavailableError(f"docker: inspect {container_id[:12]}: not an object")
        return data

    @_converted
    def events(self) -> EventStream:
        """Subscribe now (the request is sent before this returns), so nothing that happens
        after this call is missed by a reconcile that lists containers afterwards."""
        raw = self._api.events(decode=True, filters={
            "type": ["container", "network"],
            "event": [*CONTAINER_ACTIONS, *NETWORK_ACTIONS, *PODMAN_ACTIONS],
        })
        return EventStream(raw)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            if self._fast is not None:
                self._fast[0].close()
