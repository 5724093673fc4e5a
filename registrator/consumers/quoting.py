"""Template filters that turn free text (tags, meta, host labels, service names) into one
token of a configuration language, so a value can never end a line, open a block or start a
comment in the file it is rendered into."""

from __future__ import annotations

import json
import re
from typing import Any

# Left bare: nothing in these characters means anything to HAProxy's or nginx's parser.
_BARE = re.compile(r"[A-Za-z0-9_.:/@+-]+")


def haproxy_quote(value: Any) -> str:
    """One HAProxy word (configuration manual, 2.2 "Quoting and escaping"): single quotes,
    which expand nothing (no `$VAR`, no backslash escapes); a quote or a control character
    is written between quoted runs as `\\'` or `\\xNN`, which HAProxy joins into the word.
    A control character inside quotes would still end HAProxy's line."""
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    out: list[str] = []
    run: list[str] = []
    for char in text:
        if char == "'" or _control(char):
            if run:
                out.append("'" + "".join(run) + "'")
                run = []
            out.append("\\'" if char == "'" else f"\\x{ord(char):02x}")
        else:
            run.append(char)
    if run or not out:
        out.append("'" + "".join(run) + "'")
    return "".join(out)


def nginx_quote(value: Any) -> str:
    """One nginx token: double quotes with `\\"` and `\\\\`, and line breaks and tabs written
    as nginx's own escapes so the token stays on its line (a comment after it stays a
    comment). nginx still expands `$name` in directives that take variables: quoting cannot
    prevent that, and nginx has no escape for `$`."""
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def as_json(value: Any) -> str:
    """JSON on one line (every control character escaped), ASCII only, keys sorted so an
    unchanged value renders the same text. Unlike Jinja's `tojson`, nothing is HTML-escaped."""
    return json.dumps(value, sort_keys=True, default=str)


def _control(char: str) -> bool:
    return ord(char) < 0x20 or ord(char) == 0x7F  # what ends or garbles a line for HAProxy
