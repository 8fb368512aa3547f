"""Baseline of S7: the console's own pages, already rendered, served by a bare ASGI app.

    BARE_PORT=… PAGES_FILE=pages.json python -m bench.baselines.static_pages

``pages.json`` maps a path to the HTML the console answered for it once. uvicorn with uvloop
and httptools, as ``shared.runner`` runs the services; each GET answers those bytes: no
session check, no backend call, no template — what serving the same page costs at the least.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import uvicorn

Scope = dict[str, Any]


class App:
    def __init__(self, pages: dict[str, bytes]) -> None:
        self._pages = pages

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        body = b"ok" if path == "/readyz" else self._pages.get(path)
        status = 200 if body is not None else 404
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body or b""})


def main() -> None:
    raw = json.loads(Path(os.environ["PAGES_FILE"]).read_text(encoding="utf-8"))
    app = App({path: html.encode() for path, html in raw.items()})
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["BARE_PORT"]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
