"""The HTTP floor of `python -m bench`'s serve section: one trivial route on the server
stack serve runs (starlette on uvicorn, with serve's own uvicorn settings and limits).
Usage: python bench/serve_trivial.py PORT"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from registrator.serve.run import ServeSettings, _bind_http, _run_http

if TYPE_CHECKING:
    from starlette.requests import Request


async def trivial(_request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def main() -> None:
    port = int(sys.argv[1])
    settings = ServeSettings(http=("127.0.0.1", port), dns=None, domain="registrator.",
                             dns_ttl=0, http_cert=None, http_key=None, show_config=False,
                             stale_after=10, metrics_addr=None)
    assert settings.http is not None  # noqa: S101 - set just above
    _run_http(Starlette(routes=[Route("/", trivial)]), settings, _bind_http(settings.http),
              on_shutdown=lambda: None)


if __name__ == "__main__":
    main()
