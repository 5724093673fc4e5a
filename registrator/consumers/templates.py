"""Jinja2 templates over the registry (SPEC §8): the environment, the context, the helpers,
and errors that name template, line and reason."""

from __future__ import annotations

import hashlib
import json
import os
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from registrator.consumers.process import command_environment
from registrator.consumers.quoting import as_json, haproxy_quote, nginx_quote
from registrator.consumers.registry import Record


class TemplateFailedError(Exception):
    """The template could not be rendered; `line` is 0 when no template line is to blame."""

    def __init__(self, template: str, line: int, reason: str) -> None:
        super().__init__(f"{template}:{line}: {reason}")
        self.template, self.line, self.reason = template, line, reason


class KeepPreviousError(Exception):
    """Raised by require(): a service the template needs has no entries right now, so this
    render is dropped and the last good file stays (consul-template's safeLs)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one render sees: the registry at one moment."""

    services: Mapping[str, list[Record]]
    hosts: list[Record]


class _StrictLoader(jinja2.FileSystemLoader):
    """A template that is not UTF-8 is an error naming its file, line and byte offset (the
    codec's own error would be blamed on a line of Python's codecs module)."""

    def get_source(self, environment: jinja2.Environment, template: str,
                   ) -> tuple[str, str, Callable[[], bool]]:
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError as exc:
            path = str(Path(self.searchpath[0]) / template)
            line = exc.object[:exc.start].count(b"\n") + 1
            raise TemplateFailedError(path, line, f"not UTF-8 at byte {exc.start}") from None


def environment(src: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_StrictLoader(str(Path(src).resolve().parent)),
        undefined=jinja2.StrictUndefined,  # never a silent empty string or <no value>
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - config files, not HTML
    )
    # The quoting filters are how free text (tags, meta, names, host labels) enters a file.
    env.filters.update(tagged=tagged, meta=meta, group_by=group_by, hash=hash_of,
                       hostport=hostport, haproxy_quote=haproxy_quote,
                       nginx_quote=nginx_quote, json=as_json)
    env.globals["hostport"] = hostport
    return env


def tagged(entries: list[Record], tag: str) -> list[Record]:
    return [e for e in entries if tag in e["tags"]]


def meta(entries: list[Record], key: str, value: str | None = None) -> list[Record]:
    """Entries whose meta has `key` (equal to `value` when given)."""
    return [e for e in entries if key in e["meta"] and (value is None or e["meta"][key] == value)]


def group_by(entries: list[Record], field: str) -> dict[str, list[Record]]:
    """field may be 'host', 'meta.zone', ...; entries without it go under ''."""
    out: dict[str, list[Record]] = {}
    for entry in entries:
        value: Any = entry
        for part in field.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        out.setdefault(str(value), []).append(entry)
    return dict(sorted(out.items()))


def hash_of(value: Any, length: int = 16) -> str:
    """A stable short hash of any JSON-able value (e.g. a backend set, for a name)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def hostport(entry: Record) -> str:
    """'[v6]:port' or 'v4:port'. Called per entry per render: a colon is enough to tell
    (stored addresses are IP literals), no need to parse."""
    address = entry["address"]
    return f"[{address}]:{entry['port']}" if ":" in address else f"{address}:{entry['port']}"


def context(snap: Snapshot, environ: Mapping[str, str] | None = None,
            config: Callable[..., Any] | None = None) -> dict[str, Any]:
    def service(name: str, tag: str | None = None) -> list[Record]:
        entries = snap.services.get(name, [])
        return tagged(entries, tag) if tag is not None else list(entries)

    def require(name: str, tag: str | None = None) -> list[Record]:
        entries = service(name, tag)
        if not entries:
            what = f"{name!r} with tag {tag!r}" if tag is not None else repr(name)
            raise KeepPreviousError(f"service {what} has no entries; keeping the previous file")
        return entries

    def no_config(app: str, key: str, default: Any = None) -> Any:
        del app, key  # no store behind this context (unit tests): the caller's default
        return default

    return {"services": dict(snap.services), "service": service, "require": require,
            # Without render's store passwords: a template may write its env out to a file.
            "hosts": list(snap.hosts),
            "env": command_environment(os.environ if environ is None else environ),
            "config": config or no_config}


def render(env: jinja2.Environment, src: str, ctx: dict[str, Any]) -> str:
    """The rendered text; TemplateFailedError naming the line, or KeepPreviousError."""
    name = Path(src).name
    try:
        return env.get_template(name).render(ctx)
    except (KeepPreviousError, TemplateFailedError):
        raise
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateFailedError(src, exc.lineno or 0, exc.message or str(exc)) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateFailedError(src, 0, f"template not found: {exc.name}") from None
    except Exception as exc:  # noqa: BLE001 - any error inside a template is that template's
        raise TemplateFailedError(src, _template_line(exc), f"{type(exc).__name__}: {exc}"
                                  ) from None


def _template_line(exc: BaseException) -> int:
    # Jinja rewrites tracebacks so template frames carry the template's file and line.
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename and not f.filename.endswith(".py")]
    return frames[-1].lineno or 0 if frames else 0
