"""Streaming HTTP forwarding from an ASGI request to the MCP server, and back.

Request and response bodies are passed through unaltered and unbuffered: the request body is
streamed to the MCP server as it arrives, the response body is relayed chunk by chunk as read
from the socket (no decompression), so SSE events reach the client as soon as the MCP server
writes them. Hop-by-hop headers are dropped (RFC 9110 §7.6.1); ``Host`` becomes the target's;
``X-Forwarded-For/-Host/-Proto`` are added. A client disconnect cancels the upstream stream.

Two implementations of one interface (``forward(scope, receive, send, headers) -> status``):

* :class:`RawForwarder` (the default): HTTP/1.1 on asyncio streams with a pool of keep-alive
  connections. It is the data plane's hot path, so it does only what a reverse proxy must --
  one write of the request head (and a one-message body), one parse of the response head, the
  body relayed by its framing (``Content-Length``, chunked, or until close) -- without httpx's
  request/response models, URL merging, cookie and redirect machinery or httpcore's per-request
  task-group and lock bookkeeping (measured: ``docs/benchmarks.md`` § Data plane);
* :class:`Forwarder`: the same over injected ``httpx.AsyncClient`` s (tests, custom transports).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Final
from urllib.parse import urlsplit

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
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope, lambda: complete)
            try:
                async for chunk in response.aiter_raw():
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:
                log.warning("upstream stream broke: %s", type(exc).__name__)
            complete = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()


# ------------------------------------------------------------------------------------------------
# RawForwarder: HTTP/1.1 on asyncio streams

MAX_HEAD: Final = 64 * 1024  # response head bound (status line + headers)
READ_SIZE: Final = 64 * 1024
NO_BODY_STATUS: Final = frozenset({204, 304})


class _Conn:
    """One keep-alive connection to the MCP server."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class _Retryable(Exception):
    """A reused connection turned out dead before any response byte (safe to resend)."""


class RawForwarder:
    """Relays one ASGI HTTP request to ``target`` over pooled HTTP/1.1 connections."""

    def __init__(
        self,
        target: str,
        *,
        connect_timeout: float = 10.0,
        write_timeout: float = 60.0,
        max_idle: int = 256,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(target.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"target must be an http(s) URL, got {target!r}")
        self.target = target.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._base = parts.path.encode("latin-1")
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        default_port = self._port == (443 if parts.scheme == "https" else 80)
        netloc = parts.hostname if default_port else f"{parts.hostname}:{self._port}"
        if ":" in parts.hostname and not parts.hostname.startswith("["):
            netloc = f"[{parts.hostname}]" if default_port else f"[{parts.hostname}]:{self._port}"
        self._host_header = b"host: " + netloc.encode("idna") + b"\r\n"
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout  # a streamed request body the server stops reading
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- connections ------------------------------------------------------------------------------

    async def _connect(self) -> _Conn:
        server_hostname = self._host if self._ssl is not None else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, limit=MAX_HEAD, server_hostname=server_hostname
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise UpstreamError(504, "MCP server timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(502, f"MCP server unreachable ({type(exc).__name__})") from None
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _release(self, conn: _Conn) -> None:
        if self._closed or len(self._idle) >= self.max_idle or not conn.usable():
            conn.close()
        else:
            self._idle.append(conn)

    # --- one request ----------------------------------------------------------------------------

    def _head(self, scope: Scope, headers: list[tuple[bytes, bytes]], chunked: bool) -> bytes:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        target = self._base + raw_path + (b"?" + query if query else b"")
        parts = [scope["method"].encode("ascii"), b" ", target, b" HTTP/1.1\r\n", self._host_header]
        for name, value in upstream_request_headers(scope, headers):
            parts += (name, b": ", value, b"\r\n")
        if chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]
    ) -> int:
        """Forward; returns the upstream status. Raises :class:`UpstreamError` before any byte
        was sent to the client, so the caller can still answer 502/504."""
        has_body = _has_body(headers)
        length_known = any(n.lower() == b"content-length" for n, _ in headers)
        first = b""
        more = False
        if has_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            first = message.get("body", b"")
            more = bool(message.get("more_body", False))
        chunked = has_body and not length_known
        head = self._head(scope, headers, chunked)
        body = (_chunk(first) + (b"" if more else b"0\r\n\r\n")) if chunked else first
        payload = head + body
        conn = self._take_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        try:
            try:
                status, resp_headers, framing = await self._exchange(
                    conn, payload, receive, more, chunked, retryable=reused and not more
                )
            except _Retryable:
                conn.close()
                conn = await self._connect()
                status, resp_headers, framing = await self._exchange(
                    conn, payload, receive, more, chunked, retryable=False
                )
            keep = await self._relay(conn, scope, receive, send, status, resp_headers, framing)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._release(conn)
        else:
            conn.close()
        return status

    async def _exchange(
        self, conn: _Conn, payload: bytes, receive: Receive, more: bool, chunked: bool, *, retryable: bool
    ) -> tuple[int, list[tuple[bytes, bytes]], tuple[str, int]]:
        """Send the request, read the response head: (status, headers, (framing, length))."""
        try:
            conn.writer.write(payload)
            if more:
                await asyncio.wait_for(conn.writer.drain(), self.write_timeout)
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientDisconnected
                    chunk = message.get("body", b"")
                    more = bool(message.get("more_body", False))
                    data = (_chunk(chunk) + (b"" if more else b"0\r\n\r\n")) if chunked else chunk
                    if data:
                        conn.writer.write(data)
                        await asyncio.wait_for(conn.writer.drain(), self.write_timeout)
            while True:
                head = await conn.reader.readuntil(b"\r\n\r\n")
                status, resp_headers = _parse_head(head)
                if status >= 200 or status == 101:
                    break  # interim 1xx answers (100 Continue, 103) are not relayed
            framing = _framing(resp_headers)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            if retryable and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial):
                raise _Retryable from None
            raise UpstreamError(502, f"MCP server unreachable ({type(exc).__name__})") from None
        except TimeoutError:
            raise UpstreamError(504, "MCP server timed out") from None
        except asyncio.LimitOverrunError:
            raise UpstreamError(502, "MCP server sent an oversized response head") from None
        except ValueError:
            raise UpstreamError(502, "MCP server sent a malformed response") from None
        except OSError as exc:
            raise UpstreamError(502, f"MCP server unreachable ({type(exc).__name__})") from None
        return status, resp_headers, framing

    async def _relay(
        self,
        conn: _Conn,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        resp_headers: list[tuple[bytes, bytes]],
        framing: tuple[str, int],
    ) -> bool:
        """Relay the answer; True when the connection may be reused."""
        kind, length = framing
        if scope["method"] == "HEAD" or status in NO_BODY_STATUS or status < 200:
            kind, length = "length", 0
        keep = kind != "close" and not _says_close(resp_headers)
        await send({"type": "http.response.start", "status": status, "headers": filter_headers(resp_headers)})
        reader = conn.reader
        if kind == "length" and length <= READ_SIZE:  # the common case: one small JSON answer
            try:
                body = await reader.readexactly(length) if length else b""
            except (asyncio.IncompleteReadError, OSError) as exc:
                log.warning("upstream stream broke: %s", type(exc).__name__)
                body, keep = b"", False
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return keep
        complete = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope, lambda: complete)
            try:
                async for chunk in _body(reader, kind, length):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                complete = True
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError) as exc:
                log.warning("upstream stream broke: %s", type(exc).__name__)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()
        return keep and complete


async def _cancel_on_disconnect(
    receive: Receive, scope: anyio.CancelScope, complete: Callable[[], bool]
) -> None:
    """While a response streams to the client: cancel ``scope`` (closing the upstream stream)
    once the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not complete():
                log.debug("client disconnected; closing the upstream stream")
            scope.cancel()
            return


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise ValueError("not HTTP/1.x")
    status = int(rest[:3])
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise ValueError("malformed header line")
        headers.append((name.lower(), value.strip()))
    if version == b"HTTP/1.0" and not any(
        n == b"connection" and b"keep-alive" in v.lower() for n, v in headers
    ):
        headers.append((b"connection", b"close"))
    return status, headers


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[str, int]:
    """("chunked", 0), ("length", n) or ("close", 0) (body until the server closes)."""
    length = -1
    for name, value in headers:
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return "chunked", 0
        if name == b"content-length":
            n = int(value)
            if n < 0 or (length >= 0 and n != length):
                raise ValueError("bad content-length")
            length = n
    return ("length", length) if length >= 0 else ("close", 0)


def _says_close(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(n == b"connection" and b"close" in v.lower() for n, v in headers)


async def _body(reader: asyncio.StreamReader, kind: str, length: int) -> AsyncIterator[bytes]:
    if kind == "length":
        left = length
        while left > 0:
            chunk = await reader.read(min(left, READ_SIZE))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(chunk)
            yield chunk
    elif kind == "chunked":
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, dropped
                    pass
                return
            left = size
            while left > 0:
                chunk = await reader.read(min(left, READ_SIZE))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(chunk)
                yield chunk
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("bad chunk terminator")
    else:
        while chunk := await reader.read(READ_SIZE):
            yield chunk
