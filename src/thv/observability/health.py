"""``/healthz``, ``/readyz`` and ``/metrics`` on one small ASGI app served by uvicorn."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from thv.observability.metrics import REGISTRY

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HealthApp:
    """Liveness is "the process answers"; readiness is the callable ``ready()``."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            status, body, ctype = 200, b"ok", b"text/plain"
        elif path == "/readyz":
            ok = self.ready()
            status, body, ctype = (
                (200, b"ok", b"text/plain") if ok else (503, b"caches not synced", b"text/plain")
            )
        elif path == "/metrics":
            status, body, ctype = 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST.encode()
        else:
            status, body, ctype = 404, b"not found", b"text/plain"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]})
        await send({"type": "http.response.body", "body": body})


async def serve(ready: Callable[[], bool], host: str, port: int) -> None:
    """Serve until cancelled."""
    config = uvicorn.Config(HealthApp(ready), host=host, port=port, log_level="warning", lifespan="off")
    await uvicorn.Server(config).serve()
