"""The data registrator moves around: what one container port becomes in the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registrator.checks import CheckSpec

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Service:
    """One (container, port) entry. Frozen and hashable so desired/actual sets can be diffed."""

    name: str
    id: str
    address: str
    port: int
    protocol: str  # "tcp" or "udp"
    host: str
    container_id: str
    container_name: str
    image: str
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs
    health: str = "none"  # Docker's health status, or "none" without a HEALTHCHECK
    check: CheckSpec | None = None  # label health check; gates the entry, is not stored

    def to_record(self, registered_at: str) -> dict[str, object]:
        return {
            "version": FORMAT_VERSION,
            "name": self.name,
            "id": self.id,
            "address": self.address,
            "port": self.port,
            "protocol": self.protocol,
            "tags": list(self.tags),
            "meta": dict(self.meta),
            "host": self.host,
            "container_id": self.container_id,
            "container_name": self.container_name,
            "image": self.image,
            "health": self.health,
            "registered_at": registered_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, object]) -> Service:
        """Rebuild from a stored record; raises ValueError/TypeError/KeyError on a bad shape."""
        tags = record["tags"]
        meta = record["meta"]
        port = record["port"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise TypeError("tags must be a list of strings")
        if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise TypeError("meta must be an object of strings")
        if not isinstance(port, int) or isinstance(port, bool):
            raise TypeError("port must be an integer")
        strings: dict[str, Any] = {}
        for key in ("name", "id", "address", "protocol", "host", "container_id",
                    "container_name", "image", "health"):
            value = record[key]
            if not isinstance(value, str):
                raise TypeError(f"{key} must be a string")
            strings[key] = value
        return cls(port=port, tags=tuple(tags), meta=tuple(sorted(meta.items())), **strings)


@dataclass(frozen=True, slots=True)
class LabelWarning:
    """A problem with one container's labels: logged once, the service skipped."""

    container: str
    label: str
    message: str


@dataclass(slots=True)
class Desired:
    """What one container should produce: its services and the warnings met on the way."""

    services: list[Service] = field(default_factory=list)
    warnings: list[LabelWarning] = field(default_factory=list)
    drain: bool = True  # entries leave at the stop signal (registrator.drain, SERVICE_DRAIN)
