"""stdio MCP server ↔ HTTP clients: JSON-RPC over one replaceable stdio channel.

The MCP server reads newline-delimited JSON-RPC on stdin and writes it on stdout. The runner
attaches to that stdio (``pods/attach``) and serves it to HTTP clients in the transport the
MCPServer's ``proxyMode`` names:

* ``streamable-http`` (MCP 2025-03-26): ``POST /mcp`` with one JSON-RPC message; a request is
  answered with ``application/json`` (its response), a notification or a response with 202;
  ``GET /mcp`` is 405 (no server-initiated stream; the spec allows it); ``DELETE /mcp`` is 204;
* ``sse`` (MCP 2024-11-05): ``GET /sse`` opens an event stream whose first event ``endpoint`` names
  ``/messages?session_id=<id>``; ``POST`` there answers 202 and the response arrives as an
  ``event: message`` on that session's stream; server notifications go to every stream.

Request ids are rewritten (``thv-<n>``) so that clients reusing ids never see each other's
answers, and restored on the way back. The channel can be replaced (the MCP server pod was
replaced): requests in flight fail with a JSON-RPC error, and the client's last ``initialize`` is
replayed to the new process (answer swallowed, then ``notifications/initialized``), so sessions
survive a pod replacement. Requests that arrive while no channel is attached wait for one (up to
``attach_wait`` seconds, then 503).

The (exchanged) token the data plane put on the request reaches the stdio server in
``params._meta["dev.thv/authorization"]`` (stdio has no headers); nothing else from the HTTP
request is passed on.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Final, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from thv.proxy.asgi import Receive, Scope, Send, send_json

__all__ = ["META_AUTHORIZATION", "BridgeApp", "StdioBridge", "StdioChannel"]

log = logging.getLogger("thv.runner.bridge")

META_AUTHORIZATION: Final = "dev.thv/authorization"
MAX_BODY: Final = 4 * 1024 * 1024
MAX_LINE: Final = 16 * 1024 * 1024
JSONObj = dict[str, object]


class StdioChannel(Protocol):
    """The MCP server's stdio: ``write`` stdin bytes, ``read`` stdout chunks (raises at the end)."""

    async def write(self, data: bytes) -> None: ...

    async def read(self) -> bytes: ...


@dataclass(eq=False)
class _Session:
    """An SSE client stream (streamable-HTTP requests have none)."""

    id: str
    send: MemoryObjectSendStream[JSONObj]
    receive: MemoryObjectReceiveStream[JSONObj]


@dataclass(eq=False)
class _Pending:
    original_id: object
    event: anyio.Event = field(default_factory=anyio.Event)
    answer: JSONObj | None = None
    session: _Session | None = None


class StdioBridge:
    """JSON-RPC multiplexing over a stdio channel that may be replaced at any time."""

    def __init__(self, *, attach_wait: float = 30.0) -> None:
        self.attach_wait = attach_wait
        self._channel: StdioChannel | None = None
        self._connected = anyio.Event()
        self._write_lock = anyio.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._sessions: dict[str, _Session] = {}
        self._initialize: JSONObj | None = None
        self.attaches = 0

    @property
    def connected(self) -> bool:
        return self._channel is not None

    # --- the channel side ---------------------------------------------------------------------

    async def serve_channel(self, channel: StdioChannel) -> None:
        """Use ``channel`` until it ends (returns then); replays ``initialize`` on a reattach."""
        self._channel = channel
        self.attaches += 1
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_loop, channel, tg.cancel_scope)
                if self._initialize is not None:
                    await self._replay_initialize()
                self._connected.set()
            # the read loop ended: the channel is gone
        finally:
            self._channel = None
            self._connected = anyio.Event()
            self._fail_pending("the MCP server's stdio ended (pod replaced or exited); retry")

    async def run(
        self,
        connect: Callable[[], AbstractAsyncContextManager[StdioChannel]],
        *,
        backoff: float = 0.5,
        max_backoff: float = 5.0,
    ) -> None:
        """Attach with ``connect()`` again and again (with backoff) until cancelled."""
        delay = backoff
        while True:
            try:
                async with connect() as channel:
                    log.info("stdio attached (attach #%d)", self.attaches + 1)
                    delay = backoff
                    await self.serve_channel(channel)
                log.warning("stdio detached; reattaching")
            except Exception as exc:  # any failure to attach is retried
                log.warning("stdio attach failed: %s: %s", type(exc).__name__, exc)
            await anyio.sleep(delay)
            delay = min(delay * 2, max_backoff)

    async def _read_loop(self, channel: StdioChannel, scope: anyio.CancelScope) -> None:
        buffer = b""
        try:
            while True:
                chunk = await channel.read()
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        await self._dispatch(line)
                if len(buffer) > MAX_LINE:
                    log.warning("stdio line longer than %d bytes dropped", MAX_LINE)
                    buffer = b""
        except Exception as exc:
            log.info("stdio read ended: %s", exc)
        finally:
            scope.cancel()

    async def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.debug("non-JSON line on the MCP server's stdout ignored")
            return
        if not isinstance(message, dict):
            return
        if "method" not in message and ("result" in message or "error" in message):
            pending = self._pending.pop(str(message.get("id")), None)
            if pending is None:
                return
            message["id"] = pending.original_id
            if pending.session is not None:
                await self._to_session(pending.session, message)
            pending.answer = message
            pending.event.set()
            return
        # a server notification or a server-to-client request: to every SSE stream
        for session in list(self._sessions.values()):
            await self._to_session(session, message)

    async def _to_session(self, session: _Session, message: JSONObj) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
            session.send.send_nowait(message)

    def _fail_pending(self, reason: str) -> None:
        for key, pending in list(self._pending.items()):
            if key.startswith("thv-init-"):
                continue
            pending.answer = {
                "jsonrpc": "2.0",
                "id": pending.original_id,
                "error": {"code": -32000, "message": reason},
            }
            if pending.session is not None:
                with contextlib.suppress(
                    anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock
                ):
                    pending.session.send.send_nowait(pending.answer)
            pending.event.set()
        self._pending.clear()

    async def _write(self, message: JSONObj) -> None:
        channel = self._channel
        if channel is None:
            raise ConnectionError("no stdio attached")
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        async with self._write_lock:
            await channel.write(data)

    async def _replay_initialize(self) -> None:
        assert self._initialize is not None
        key = f"thv-init-{next(self._ids)}"
        pending = _Pending(original_id=key)
        self._pending[key] = pending
        await self._write({"jsonrpc": "2.0", "id": key, "method": "initialize", "params": self._initialize})
        with anyio.move_on_after(30):
            await pending.event.wait()
        await self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})
        log.info("initialize replayed to the new MCP server process")

    # --- the client side ----------------------------------------------------------------------

    async def _wait_connected(self) -> bool:
        with anyio.move_on_after(self.attach_wait):
            await self._connected.wait()
            return True
        return False

    async def submit(
        self, message: JSONObj, *, session: _Session | None = None, token: str | None = None
    ) -> JSONObj | None:
        """Send one client message; for a request, wait for and return its response (or a JSON-RPC
        error). Raises :class:`ConnectionError` if no stdio is attached within ``attach_wait``."""
        if token is not None and "method" in message:
            params = message.get("params")
            params = dict(params) if isinstance(params, dict) else {}
            meta = params.get("_meta")
            meta = dict(meta) if isinstance(meta, dict) else {}
            meta[META_AUTHORIZATION] = token
            params["_meta"] = meta
            message = {**message, "params": params}
        init_params = message.get("params")
        if message.get("method") == "initialize" and isinstance(init_params, dict):
            remembered = dict(init_params)
            init_meta = remembered.get("_meta")
            if isinstance(init_meta, dict):  # never replay a token
                remembered["_meta"] = {k: v for k, v in init_meta.items() if k != META_AUTHORIZATION}
            self._initialize = remembered
        if not await self._wait_connected():
            raise ConnectionError("the MCP server's stdio is not attached")
        is_request = "method" in message and "id" in message
        if not is_request:
            await self._write(message)
            return None
        key = f"thv-{next(self._ids)}"
        pending = _Pending(original_id=message["id"], session=session)
        self._pending[key] = pending
        try:
            await self._write({**message, "id": key})
        except Exception:
            self._pending.pop(key, None)
            raise
        await pending.event.wait()
        return pending.answer

    @contextlib.asynccontextmanager
    async def open_session(self) -> AsyncIterator[_Session]:
        send, receive = anyio.create_memory_object_stream[JSONObj](1000)
        session = _Session(id=secrets.token_hex(16), send=send, receive=receive)
        self._sessions[session.id] = session
        try:
            yield session
        finally:
            self._sessions.pop(session.id, None)
            send.close()
            receive.close()

    def session(self, session_id: str) -> _Session | None:
        return self._sessions.get(session_id)


async def _read_body(receive: Receive) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += bytes(message.get("body", b""))
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return body


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class BridgeApp:
    """The ASGI face of a :class:`StdioBridge` (``proxy_mode`` ``sse`` or ``streamable-http``).

    ``token_header`` names the header whose bearer token is handed to the server in ``_meta``
    (``authorization`` with the replace strategy, the custom header otherwise; ``None``: none).
    """

    def __init__(self, bridge: StdioBridge, proxy_mode: str, *, token_header: str | None = None) -> None:
        self.bridge = bridge
        self.proxy_mode = proxy_mode
        self.token_header = token_header.lower().encode() if token_header else None

    def _token(self, scope: Scope) -> str | None:
        if self.token_header is None:
            return None
        return _header(scope, self.token_header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/health":
            await send_json(
                send,
                200 if self.bridge.connected else 503,
                {"status": "ok" if self.bridge.connected else "detached"},
            )
        elif self.proxy_mode == "streamable-http" and path.rstrip("/") == "/mcp":
            await self._streamable(scope, receive, send, method)
        elif self.proxy_mode == "sse" and path.rstrip("/") == "/sse" and method == "GET":
            await self._sse_stream(scope, receive, send)
        elif self.proxy_mode == "sse" and path.rstrip("/") == "/messages" and method == "POST":
            await self._sse_post(scope, receive, send)
        else:
            await send_json(send, 404, {"error": "not_found"})

    async def _parse(self, receive: Receive, send: Send) -> JSONObj | None:
        body = await _read_body(receive)
        if body is None:
            await send_json(send, 413, {"error": "request body too large or aborted"})
            return None
        try:
            message = json.loads(body)
        except ValueError:
            await send_json(send, 400, {"error": "parse error: not JSON"})
            return None
        if not isinstance(message, dict):
            # JSON-RPC batches are not supported (removed from MCP in 2025-06-18)
            await send_json(send, 400, {"error": "one JSON-RPC message per request"})
            return None
        return message

    async def _streamable(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        if method == "GET":
            await send_json(send, 405, {"error": "no server-initiated stream"}, [(b"allow", b"POST, DELETE")])
            return
        if method == "DELETE":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if method != "POST":
            await send_json(send, 405, {"error": "method not allowed"}, [(b"allow", b"POST, DELETE")])
            return
        message = await self._parse(receive, send)
        if message is None:
            return
        try:
            answer = await self.bridge.submit(message, token=self._token(scope))
        except ConnectionError:
            await send_json(send, 503, {"error": "temporarily_unavailable"}, [(b"retry-after", b"2")])
            return
        if answer is None:
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        payload = json.dumps(answer, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        if message.get("method") == "initialize":
            headers.append((b"mcp-session-id", secrets.token_hex(16).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _sse_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.bridge.open_session() as session:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            root = scope.get("root_path", "")
            endpoint = f"{root}/messages?session_id={session.id}"
            await send(
                {
                    "type": "http.response.body",
                    "body": f"event: endpoint\ndata: {endpoint}\n\n".encode(),
                    "more_body": True,
                }
            )

            async def watch_disconnect(cancel: anyio.CancelScope) -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                cancel.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_disconnect, tg.cancel_scope)
                while True:
                    with anyio.move_on_after(15) as timeout:
                        message = await session.receive.receive()
                    if timeout.cancelled_caught:
                        await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                        continue
                    data = json.dumps(message, separators=(",", ":"))
                    await send(
                        {
                            "type": "http.response.body",
                            "body": f"event: message\ndata: {data}\n\n".encode(),
                            "more_body": True,
                        }
                    )

    async def _sse_post(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        session_id = next((p.split("=", 1)[1] for p in query.split("&") if p.startswith("session_id=")), "")
        session = self.bridge.session(session_id)
        if session is None:
            await send_json(send, 404, {"error": "unknown session"})
            return
        message = await self._parse(receive, send)
        if message is None:
            return
        if not await self.bridge._wait_connected():
            await send_json(send, 503, {"error": "temporarily_unavailable"}, [(b"retry-after", b"2")])
            return
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"Accepted"})
        token = self._token(scope)

        async def forward() -> None:
            with contextlib.suppress(ConnectionError):
                await self.bridge.submit(message, session=session, token=token)

        # the answer travels on the session's stream; the POST is already answered
        await forward()
