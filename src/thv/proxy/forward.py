"""Streaming HTTP forwarding from an ASGI request to the MCP server, and back.

Request and response bodies are passed through unaltered and unbuffered: the request body is
streamed to httpx as it arrives, the response body is relayed chunk by chunk as read from the
socket (``aiter_raw``: no decompression), so SSE events reach the client as soon as the MCP
server writes them. Hop-by-hop headers are dropped (RFC 9110 §7.6.1); ``Host`` becomes the
target's; ``X-Forwarded-For/-Host/-Proto`` are added. A client disconnect cancels the upstream
stream.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Final

import anyio
import httpx

from thv.proxy.asgi import Receive, Scope, Send

log = logging.getLogger("thv.proxy.forward")

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


class ClientDisconnected(Exception):
    """The client went away while its request body was being streamed."""


class UpstreamError(Exception):
    """The MCP server could not be reached (before any response byte was sent)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


def new_upstream_client(*, connect_timeout: float = 10.0, write_timeout: float = 60.0) -> httpx.AsyncClient:
    """httpx client for the MCP server: no read timeout (SSE streams are long), no default headers."""
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(connect=connect_timeout, read=None, write=write_timeout, pool=connect_timeout),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        follow_redirects=False,
        trust_env=False,
    )
    for name in ("accept", "accept-encoding", "user-agent"):  # pass the client's own, add none
        del client.headers[name]
    return client


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    out: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            out.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return out


def filter_headers(
    headers: Iterable[tuple[bytes, bytes]], *, drop: Iterable[bytes] = ()
) -> list[tuple[bytes, bytes]]:
    """Headers without hop-by-hop ones (and without those named in ``drop``, lower-case)."""
    headers = list(headers)
    banned = HOP_BY_HOP | _connection_tokens(headers) | frozenset(drop)
    return [(n, v) for n, v in headers if n.lower() not in banned]


def upstream_request_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Request headers for the MCP server: filtered, ``Host`` removed, X-Forwarded-* added."""
    out = filter_headers(
        headers, drop=(b"host", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto")
    )
    original = dict((n.lower(), v) for n, v in headers)
    client = scope.get("client")
    prior = original.get(b"x-forwarded-for")
    if client:
        addr = str(client[0]).encode()
        out.append((b"x-forwarded-for", prior + b", " + addr if prior else addr))
    elif prior:
        out.append((b"x-forwarded-for", prior))
    if b"host" in original:
        out.append((b"x-forwarded-host", original[b"host"]))
    out.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
    return out


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length" and value.strip() != b"0":
            return True
        if lname == b"transfer-encoding":
            return True
    return False


DEFAULT_SHARDS: Final = 16


class Forwarder:
    """Relays one ASGI HTTP request to ``target`` and streams the answer back.

    ``clients`` are used round-robin: httpcore's pool bookkeeping costs O(connections²) per
    request, so several small pools keep the per-request cost flat under concurrency.
    """

    def __init__(self, clients: httpx.AsyncClient | Sequence[httpx.AsyncClient], target: str) -> None:
        self.clients = [clients] if isinstance(clients, httpx.AsyncClient) else list(clients)
        if not self.clients:
            raise ValueError("at least one client is needed")
        self._next = itertools.cycle(self.clients)
        self.target = target.rstrip("/")

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    def url_for(self, scope: Scope) -> str:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        url = self.target + raw_path.decode("latin-1")
        return url + "?" + query.decode("latin-1") if query else url

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]
    ) -> int:
        """Forward; returns the upstream status. Raises :class:`UpstreamError` before any byte
        was sent to the client, so the caller can still answer 502/504."""
        body_done = anyio.Event()
        has_body = _has_body(headers)

        async def request_body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected
                chunk: bytes = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    body_done.set()
                    return

        if not has_body:
            body_done.set()
        client = next(self._next)
        request = client.build_request(
            scope["method"],
            self.url_for(scope),
            headers=upstream_request_headers(scope, headers),
            content=request_body() if has_body else None,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamError(504, "MCP server timed out") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(502, f"MCP server unreachable ({type(exc).__name__})") from None
        try:
            await self._relay(response, receive, send, body_done)
        finally:
            await response.aclose()
        return response.status_code

    async def _relay(
        self, response: httpx.Response, receive: Receive, send: Send, body_done: anyio.Event
    ) -> None:
        headers = filter_headers(response.headers.raw)
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        complete = False
        async with anyio.create_task_group() as tg:
            if body_done.is_set():  # only one reader of `receive` at a time

                async def watch_disconnect() -> None:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            if not complete:
                                log.debug("client disconnected; closing the upstream stream")
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_disconnect)
            try:
                async for chunk in response.aiter_raw():
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:
                log.warning("upstream stream broke: %s", type(exc).__name__)
            complete = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()
