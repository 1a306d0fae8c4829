"""``pods/attach`` over WebSocket through the API server (the stdio of a running container).

The API server speaks the ``channel.k8s.io`` protocol: every binary frame starts with one byte,
the channel (0 stdin, 1 stdout, 2 stderr, 3 error/status, 255 close in ``v5``). A WebSocket
connection is a GET, so the caller needs ``get`` on ``pods/attach`` (``create`` is the SPDY/POST
verb); both are in the proxy runner's Role.

The container must have been started with ``stdin: true`` (``tty: false``); attaching does not
restart it, and several attaches see the same stdout, so one runner attaches once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Final

import httpx_ws

from thv.kube.client import KubeClient
from thv.kube.errors import ApiError

__all__ = ["AttachClosed", "AttachStream", "open_attach"]

STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
ERROR: Final = 3
PROTOCOLS: Final = ("v5.channel.k8s.io", "v4.channel.k8s.io")


class AttachClosed(Exception):
    """The attach stream ended (the container exited, the pod was deleted, the connection broke)."""


class AttachStream:
    """One attach session: write stdin, read stdout chunks."""

    def __init__(self, ws: httpx_ws.AsyncWebSocketSession) -> None:
        self._ws = ws

    async def write(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(bytes([STDIN]) + data)
        except (httpx_ws.WebSocketDisconnect, httpx_ws.WebSocketNetworkError, OSError) as exc:
            raise AttachClosed(f"stdin closed: {type(exc).__name__}") from exc

    async def read(self) -> bytes:
        """The next stdout chunk (stderr is discarded); raises :class:`AttachClosed` at the end."""
        while True:
            try:
                frame = await self._ws.receive_bytes()
            except (httpx_ws.WebSocketDisconnect, httpx_ws.WebSocketNetworkError, OSError) as exc:
                raise AttachClosed(f"stream closed: {type(exc).__name__}") from exc
            except httpx_ws.WebSocketInvalidTypeReceived:
                continue  # text frames carry nothing for us
            if not frame:
                continue
            channel, payload = frame[0], frame[1:]
            if channel == STDOUT and payload:
                return payload
            if channel == ERROR and payload:
                try:
                    status = json.loads(payload)
                except ValueError:
                    status = {}
                raise AttachClosed(
                    f"attach ended: {status.get('message') or status.get('status') or 'error'}"
                )


@contextlib.asynccontextmanager
async def open_attach(
    client: KubeClient, namespace: str, pod: str, container: str
) -> AsyncIterator[AttachStream]:
    """Attach to ``container`` of ``pod`` (stdin + stdout); raises :class:`ApiError` if refused."""
    params = {"container": container, "stdin": "true", "stdout": "true", "stderr": "false", "tty": "false"}
    try:
        async with client.api.open_websocket(
            version="v1",
            namespace=namespace,
            url=f"pods/{pod}/attach",
            params=params,
            subprotocols=list(PROTOCOLS),
        ) as ws:
            yield AttachStream(ws)
    except httpx_ws.WebSocketUpgradeError as exc:
        response = exc.response
        raise ApiError(response.status_code, "AttachRefused", f"pods/{pod}/attach refused") from None
