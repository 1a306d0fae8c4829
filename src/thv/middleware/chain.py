"""The MCP-aware middleware chain, in upstream's order, around the proxy's forwarding.

Upstream's runner chain is ``auth → tokenexchange → tool-filter → tool-call-filter → mcp-parser →
telemetry → authorization → audit → MCP server``. ``auth`` and ``tokenexchange`` are
:class:`thv.proxy.app.ProxyApp` itself; :class:`McpChain` is everything after them, applied to one
HTTP request:

request path (client → server), per JSON-RPC message of the body (a batch message by message):

1. *tool-call-filter*: ``tools/call`` of a filtered tool → ``-32602 "tool not found"``, not
   forwarded; an overridden name is rewritten to the real one;
2. *mcp-parser*: method, id, resource (tool/prompt name, resource URI) of the rewritten message;
3. *telemetry*: a span per operation (caller's ``traceparent`` continued), metrics at the end;
4. *authorization*: Cedar decision — denied → ``403 "Unauthorized"`` JSON-RPC error (HTTP 403 for
   a single request, as upstream), not forwarded; list operations are marked for filtering;
5. *audit*: one event per operation once its answer is complete.

response path (server → client), for ``application/json`` bodies and ``text/event-stream`` events
(event by event, as they arrive): authorization filters list answers, then tool-filter renames and
filters ``tools/list`` answers. Answers are matched to requests by JSON-RPC id — for the legacy SSE
transport across the ``POST /messages`` and the ``GET /sse`` stream of the same session. Bodies
that are not JSON-RPC pass through unchanged, byte for byte.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Final
from urllib.parse import parse_qs, urlsplit

import anyio
from opentelemetry import trace

from thv.middleware.audit import Auditor, AuditRecord, load_audit_config, outcome_for_status
from thv.middleware.authz import LIST_FILTERS, CedarAuthorizer, load_authorizer
from thv.middleware.jsonrpc import (
    CODE_DENIED,
    CODE_INTERNAL_ERROR,
    CODE_INVALID_PARAMS,
    Body,
    JSONObject,
    McpRequest,
    SSEDecoder,
    SSEEvent,
    decode_body,
    encode_message,
    error_response,
    id_key,
    new_event,
    parse_request,
    render_event,
    response_id,
)
from thv.middleware.telemetry import METRICS_PATH, McpTelemetry
from thv.middleware.toolfilter import FILTERED_TOOL_MESSAGE, ToolFilter
from thv.proxy.asgi import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from thv.runner.config import Middleware

__all__ = ["ForwardFn", "McpChain", "build_chain", "chain_from_flags", "chain_from_runconfig"]

log = logging.getLogger("thv.middleware")

ForwardFn = Callable[[Scope, Receive, Send, list[tuple[bytes, bytes]]], Awaitable[int]]
Claims = Mapping[str, object] | None

MAX_BODY: Final = 8 * 1024 * 1024
#: JSON answers are buffered to be rewritten up to this size
MAX_ANSWER: Final = 32 * 1024 * 1024
#: how much of a streamed-through JSON answer is kept to spot a JSON-RPC error (audit, telemetry)
OBSERVE_BYTES: Final = 64 * 1024
DENIED_MESSAGE: Final = "Unauthorized"


@dataclass(slots=True)
class _Op:
    """One MCP message of the current HTTP request."""

    request: McpRequest
    started: float
    raw: bytes | None = None
    span: trace.Span | None = None
    #: decided by the chain itself (refused / denied); ``None`` = the server's answer decides
    outcome: str | None = None
    filter_list: bool = False
    answered_error: bool = False
    response_raw: bytes | None = None


@dataclass(slots=True)
class _Pending:
    method: str
    claims: Claims
    filter_list: bool
    op: _Op | None = None


@dataclass(slots=True)
class _Session:
    """A legacy-SSE ``GET /sse`` stream: where its session's answers (and thv's refusals) go."""

    send: Send
    lock: anyio.Lock
    pending: dict[str, _Pending] = field(default_factory=dict)

    async def inject(self, messages: list[JSONObject]) -> None:
        async with self.lock:
            for message in messages:
                body = new_event(encode_message(message))
                await self.send({"type": "http.response.body", "body": body, "more_body": True})


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for n, v in headers:
        if n.lower() == name:
            return v.decode("latin-1")
    return ""


def _mime(headers: list[tuple[bytes, bytes]]) -> str:
    return _header(headers, b"content-type").split(";")[0].strip().lower()


def _session_id(query: str) -> str:
    values = parse_qs(query)
    for key in ("session_id", "sessionId"):
        if values.get(key):
            return values[key][0]
    return ""


def _guess_list_method(message: JSONObject) -> str | None:
    result = message.get("result")
    if isinstance(result, dict):
        for method, (key, _item, _id) in LIST_FILTERS.items():
            if isinstance(result.get(key), list):
                return method
    return None


class McpChain:
    """tool-call-filter → parser → telemetry → authorization → audit, and the response rewriting."""

    def __init__(
        self,
        *,
        tool_filter: ToolFilter | None = None,
        authorizer: CedarAuthorizer | None = None,
        auditor: Auditor | None = None,
        telemetry: McpTelemetry | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.tool_filter = tool_filter if tool_filter is not None and tool_filter.active else None
        self.authorizer = authorizer
        self.auditor = auditor
        self.telemetry = telemetry
        self.max_body = max_body
        self.sessions: dict[str, _Session] = {}

    @property
    def rewrites_responses(self) -> bool:
        return self.tool_filter is not None or self.authorizer is not None

    def close(self) -> None:
        if self.auditor is not None:
            self.auditor.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()

    # --- unauthenticated endpoints --------------------------------------------------------------

    def serves(self, scope: Scope) -> bool:
        """``/metrics`` (when Prometheus is enabled) is answered before authentication."""
        return (
            self.telemetry is not None
            and self.telemetry.serves_metrics
            and scope["path"] == METRICS_PATH
            and scope["method"] in ("GET", "HEAD")
        )

    async def serve(self, scope: Scope, send: Send) -> int:
        assert self.telemetry is not None
        body, ctype = self.telemetry.metrics()
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return 200

    # --- one request ----------------------------------------------------------------------------

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        claims: Claims,
        forward: ForwardFn,
    ) -> int:
        if self.rewrites_responses:  # bodies must reach the rewriter uncompressed
            headers = [(n, v) for n, v in headers if n.lower() != b"accept-encoding"]
        if (
            scope["method"] != "POST"
            or _mime(headers) != "application/json"
            or scope["path"].endswith("/sse")
        ):
            if self.rewrites_responses:  # e.g. the legacy SSE stream carrying a session's answers
                send = _Responder(self, scope, send, {}, [], None).send
            return await self._plain(scope, receive, send, headers, claims, forward)
        body, more = await self._read(receive)
        decoded = None if more else decode_body(body)
        if decoded is None:
            return await self._plain(scope, _replay(body, more, receive), send, headers, claims, forward)
        return await self._handle_messages(scope, receive, send, headers, claims, forward, decoded, body)

    async def _plain(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        claims: Claims,
        forward: ForwardFn,
    ) -> int:
        """A request that is not an MCP message: forwarded as is; audited as upstream does
        (``sse_connection`` when a GET event stream opens, else ``http_request``)."""
        auditor = self.auditor
        if auditor is None:
            return await forward(scope, receive, send, headers)
        text = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in headers}
        stream = scope["method"] == "GET" and "text/event-stream" in text.get("accept", "").lower()
        started = time.monotonic()

        def log_event(status: int) -> None:
            auditor.log(
                AuditRecord(
                    method=scope["method"],
                    resource_id="",
                    endpoint=scope["path"],
                    outcome=outcome_for_status(status),
                    duration_ms=int((time.monotonic() - started) * 1000),
                    client_ip=_client_ip(text, scope.get("client")),
                    user_agent=text.get("user-agent", ""),
                    claims=claims,
                    event_type="sse_connection" if stream else "http_request",
                )
            )

        logged = False

        async def audited(message: Message) -> None:
            nonlocal logged
            if stream and not logged and message["type"] == "http.response.start":
                logged = True  # a stream is audited when it opens, not when it ends
                log_event(int(message["status"]))
            await send(message)

        status = 502
        try:
            status = await forward(scope, receive, audited, headers)
            return status
        finally:
            if not logged:
                log_event(status)

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        from thv.proxy.forward import ClientDisconnected

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk: bytes = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if not more or size > self.max_body:
                return b"".join(chunks), more

    async def _handle_messages(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        claims: Claims,
        forward: ForwardFn,
        decoded: Body,
        raw_body: bytes,
    ) -> int:
        text_headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in headers}
        ops: list[_Op] = []
        forwarded: list[JSONObject] = []
        local: list[JSONObject] = []
        pending: dict[str, _Pending] = {}
        denied_single = False
        modified = False  # forwarded bytes differ from the client's (renamed or removed messages)
        want_raw = self.auditor is not None and self.auditor.wants_request_data
        for message in decoded.messages:
            request = parse_request(message)
            if request is None:  # a client's answer to a server request, or not MCP at all
                forwarded.append(message)
                continue
            now = time.monotonic()
            if self.tool_filter is not None and request.method == "tools/call":
                decision = self.tool_filter.rewrite_call(message)
                if decision.action == "refuse":
                    ops.append(_Op(request, now, outcome="failure"))
                    if request.has_id:
                        local.append(error_response(request.id, CODE_INVALID_PARAMS, FILTERED_TOOL_MESSAGE))
                    continue
                if decision.action == "rename":
                    request = parse_request(message) or request
                    modified = True
            op = _Op(request, now, raw=encode_message(message) if want_raw else None)
            if self.telemetry is not None:
                op.span = self.telemetry.start_span(request, text_headers)
            ops.append(op)
            if self.authorizer is not None:
                check = self.authorizer.check(request)
                allowed = check.allowed
                if check.kind == "decide":
                    allowed = self.authorizer.authorize(
                        claims, request.method, request.resource_id, request.arguments
                    )
                if not allowed:
                    op.outcome = "denied"
                    log.info("mcp request denied method=%s", request.method)
                    if request.has_id:
                        local.append(error_response(request.id, CODE_DENIED, DENIED_MESSAGE))
                        denied_single = not decoded.batch
                    continue
                op.filter_list = check.kind == "filter"
            forwarded.append(message)
            if request.has_id:
                pending[id_key(request.id)] = _Pending(request.method, claims, op.filter_list, op)
        modified = modified or len(forwarded) != len(decoded.messages)
        session = self.sessions.get(_session_id(scope.get("query_string", b"").decode("latin-1")))
        status = 0
        try:
            if not forwarded:
                status = await self._answer_locally(send, local, decoded.batch, session, denied_single)
                return status
            if session is not None:
                session.pending.update(pending)
                if local:
                    await session.inject(local)
                    local = []
            if not modified:
                new_body = raw_body  # untouched: the client's bytes
            elif decoded.batch:
                new_body = Body(forwarded, batch=True).encode()
            else:
                new_body = encode_message(forwarded[0])
            new_headers = [
                (n, v) for n, v in headers if n.lower() not in (b"content-length", b"transfer-encoding")
            ]
            new_headers.append((b"content-length", str(len(new_body)).encode()))
            responder = _Responder(self, scope, send, pending, local, ops, batch=decoded.batch)
            status = 502
            status = await forward(scope, _replay(new_body, False, receive), responder.send, new_headers)
            status = responder.status or status
            if responder.capture is not None and len(ops) == 1:
                ops[0].response_raw = bytes(responder.capture)
            return status
        finally:
            self._finish(scope, text_headers, ops, status or 499, claims)

    async def _answer_locally(
        self,
        send: Send,
        local: list[JSONObject],
        batch: bool,
        session: _Session | None,
        denied_single: bool,
    ) -> int:
        if session is not None:
            await session.inject(local)
            await _send_bytes(send, 202, b"Accepted", b"text/plain; charset=utf-8")
            return 202
        if not local:  # only notifications, all refused
            await _send_bytes(send, 202, b"", b"application/json")
            return 202
        body = Body(local, batch=batch).encode() if batch else encode_message(local[0])
        status = 403 if denied_single else 200
        await _send_bytes(send, status, body, b"application/json")
        return status

    def _finish(
        self, scope: Scope, headers: Mapping[str, str], ops: list[_Op], status: int, claims: Claims
    ) -> None:
        end = time.monotonic()
        client = scope.get("client")
        for op in ops:
            outcome = op.outcome or outcome_for_status(status)
            if outcome == "success" and op.answered_error:
                outcome = "application_error"
            op_status = 403 if op.outcome == "denied" else status
            if self.telemetry is not None:
                self.telemetry.finish(
                    op.span,
                    op.request,
                    http_method=scope["method"],
                    status=op_status,
                    outcome=outcome,
                    duration=end - op.started,
                )
            if self.auditor is not None:
                self.auditor.log(
                    AuditRecord(
                        method=op.request.method,
                        resource_id=op.request.resource_id,
                        endpoint=scope["path"],
                        outcome=outcome,
                        duration_ms=int((end - op.started) * 1000),
                        client_ip=_client_ip(headers, client),
                        user_agent=headers.get("user-agent", ""),
                        claims=claims,
                        request_data=op.raw,
                        response_data=op.response_raw,
                    )
                )

    # --- responses ------------------------------------------------------------------------------

    def rewrite_message(self, message: JSONObject, entry: _Pending | None) -> bool:
        """Authorization list filtering, then the tool filter; ``True`` if ``message`` changed."""
        is_response, _ = response_id(message)
        if not is_response:
            return False
        method = entry.method if entry is not None else _guess_list_method(message)
        changed = False
        if (
            self.authorizer is not None
            and method is not None
            and method in LIST_FILTERS
            and (entry is None or entry.filter_list)
        ):
            changed = self.authorizer.filter_list(method, message, entry.claims if entry else None)
        if self.tool_filter is not None and method == "tools/list":
            changed = self.tool_filter.rewrite_list_result(message) or changed
        if entry is not None and entry.op is not None and "error" in message:
            entry.op.answered_error = True
        return changed


def _client_ip(headers: Mapping[str, str], client: object) -> str:
    forwarded = headers.get("x-forwarded-for", "")
    if forwarded:
        return forwarded.split(",")[0].strip()
    if isinstance(client, list | tuple) and client:
        return str(client[0])
    return ""


async def _send_bytes(send: Send, status: int, body: bytes, ctype: bytes) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """``receive`` that first yields ``body`` (already read), then the original messages."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


class _Responder:
    """Wraps ``send`` for one forwarded request: rewrites JSON-RPC answers (JSON or SSE)."""

    def __init__(
        self,
        chain: McpChain,
        scope: Scope,
        send: Send,
        pending: dict[str, _Pending],
        local: list[JSONObject],
        ops: list[_Op] | None,
        *,
        batch: bool = False,
    ) -> None:
        self.chain = chain
        self.scope = scope
        self._send = send
        self.pending = pending
        self.local = local
        self.ops = ops or []
        self.batch = batch
        self.status = 0
        self.mode = "pass"
        self.start: Message | None = None
        self.buffer: list[bytes] = []
        self.size = 0
        self.decoder = SSEDecoder()
        self.lock = anyio.Lock()
        self.session_id = ""
        want = chain.auditor is not None and chain.auditor.wants_response_data
        self.capture = bytearray() if want else None

    def _lookup(self, request_id: object) -> _Pending | None:
        key = id_key(request_id)
        entry = self.pending.pop(key, None)
        if entry is None and self.session_id:
            session = self.chain.sessions.get(self.session_id)
            if session is not None:
                entry = session.pending.pop(key, None)
        return entry

    def _capture(self, data: bytes) -> None:
        auditor = self.chain.auditor
        if (
            self.capture is not None
            and auditor is not None
            and len(self.capture) + len(data) <= auditor.max_data_size
        ):
            self.capture += data

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body":
            await self._body(message.get("body", b""), bool(message.get("more_body", False)))
        else:
            await self._send(message)

    async def _start(self, message: Message) -> None:
        self.status = int(message["status"])
        headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
        mime = _mime(headers)
        encoding = _header(headers, b"content-encoding").strip().lower()
        if mime == "text/event-stream" and encoding in ("", "identity"):
            self.mode = "sse"
            headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
            await self._send({**message, "headers": headers})
            if self.local:
                await self._send(
                    {
                        "type": "http.response.body",
                        "body": b"".join(new_event(encode_message(m)) for m in self.local),
                        "more_body": True,
                    }
                )
                self.local = []
        elif (
            self.local and (mime == "application/json" or self.status == 202) and encoding in ("", "identity")
        ) or (mime == "application/json" and encoding in ("", "identity") and self.chain.rewrites_responses):
            self.mode = "json"
            self.start = {**message, "headers": headers}
        elif mime == "application/json" and self.pending:
            self.mode = "observe"  # nothing to rewrite: stream it, keep the start to spot errors
            await self._send(message)
        else:
            self.mode = "pass"
            await self._send(message)

    async def _body(self, chunk: bytes, more: bool) -> None:
        if self.mode == "drop":
            return
        if self.mode == "pass":
            self._capture(chunk)
            await self._send({"type": "http.response.body", "body": chunk, "more_body": more})
        elif self.mode == "observe":
            self._capture(chunk)
            if self.size < OBSERVE_BYTES:
                self.buffer.append(chunk)
                self.size += len(chunk)
            await self._send({"type": "http.response.body", "body": chunk, "more_body": more})
            if not more:
                decoded = decode_body(b"".join(self.buffer))
                for msg in decoded.messages if decoded is not None else []:
                    is_response, rid = response_id(msg)
                    entry = self._lookup(rid) if is_response else None
                    if entry is not None and entry.op is not None and "error" in msg:
                        entry.op.answered_error = True
        elif self.mode == "json":
            self.buffer.append(chunk)
            self.size += len(chunk)
            if self.size > MAX_ANSWER:
                await self._too_big(more)
            elif not more:
                await self._flush_json()
        else:
            out = b"".join([self._event(event) for event in self.decoder.feed(chunk)])
            if not more:
                out += self.decoder.flush()
                if self.session_id:
                    self.chain.sessions.pop(self.session_id, None)
            if out or not more:
                self._capture(out)
                async with self.lock:
                    await self._send({"type": "http.response.body", "body": out, "more_body": more})

    async def _too_big(self, more: bool) -> None:
        """An answer too big to rewrite: through unchanged, unless it had to be filtered."""
        assert self.start is not None
        if any(e.filter_list or e.method == "tools/list" for e in self.pending.values()) or self.local:
            log.warning("mcp answer over %d bytes could not be filtered; refused", MAX_ANSWER)
            body = encode_message(error_response(None, CODE_INTERNAL_ERROR, "answer too large to filter"))
            await _send_bytes(self._send, 502, body, b"application/json")
            self.status = 502
            self.mode = "drop"
            return
        self.mode = "pass"
        headers = [(n, v) for n, v in self.start["headers"] if n.lower() != b"content-length"]
        await self._send({**self.start, "headers": headers})
        await self._send({"type": "http.response.body", "body": b"".join(self.buffer), "more_body": more})
        self.buffer = []

    def _event(self, event: SSEEvent) -> bytes:
        if event.data is None:
            return event.raw
        if b"event: endpoint" in event.other_lines or b"event:endpoint" in event.other_lines:
            self._register(event.data)
            return event.raw
        decoded = decode_body(event.data)
        if decoded is None:
            return event.raw
        changed = False
        for msg in decoded.messages:
            _, rid = response_id(msg)
            changed = self.chain.rewrite_message(msg, self._lookup(rid) if "id" in msg else None) or changed
        return render_event(event, decoded.encode()) if changed else event.raw

    def _register(self, data: bytes) -> None:
        """The legacy SSE ``endpoint`` event names the session this stream answers for."""
        session_id = _session_id(urlsplit(data.decode("utf-8", "replace").strip()).query)
        if session_id and self.scope["method"] == "GET":
            self.session_id = session_id
            self.chain.sessions[session_id] = _Session(self._send, self.lock)

    async def _flush_json(self) -> None:
        assert self.start is not None
        raw = b"".join(self.buffer)
        decoded = decode_body(raw) if raw.strip() else None
        out = raw
        start = self.start
        if decoded is not None:
            changed = False
            for msg in decoded.messages:
                _, rid = response_id(msg)
                changed = (
                    self.chain.rewrite_message(msg, self._lookup(rid) if "id" in msg else None) or changed
                )
            if self.local:
                decoded = Body(decoded.messages + self.local, batch=True)
                changed = True
            if changed:
                out = decoded.encode()
        elif self.local:  # 202 (only notifications forwarded) but thv has answers to give
            out = Body(self.local, batch=True).encode() if self.batch else encode_message(self.local[0])
            start = {**start, "status": 200}
            start["headers"] = [(b"content-type", b"application/json")]
        if out is not raw:
            headers = [(n, v) for n, v in start["headers"] if n.lower() != b"content-length"]
            start = {**start, "headers": [*headers, (b"content-length", str(len(out)).encode())]}
        self._capture(out)
        await self._send(start)
        await self._send({"type": "http.response.body", "body": out, "more_body": False})


def build_chain(
    middleware: Middleware,
    *,
    server_name: str = "",
    transport: str = "",
    audit_out: IO[str] | None = None,
) -> McpChain | None:
    """The chain for the RunConfig's middleware settings; ``None`` when none applies.

    Raises :class:`thv.middleware.authz.AuthzError` for unusable authorization settings and
    :class:`thv.middleware.audit.AuditConfigError` for an unreadable audit config (so the pod's
    start fails with the reason)."""
    tool_filter = ToolFilter(middleware.tools_filter, middleware.tools_override)
    authorizer = load_authorizer(middleware.authz_config, middleware.authz_config_path, server_name)
    audit_config = middleware.audit_config
    if audit_config is None and middleware.audit_config_path:
        audit_config = load_audit_config(middleware.audit_config_path)
    auditor = None
    if audit_config is not None:
        # upstream's runner passes the audit config's own component (default "toolhive-api")
        auditor = Auditor(audit_config, transport=transport, out=audit_out)
    telemetry = None
    if middleware.telemetry is not None:
        telemetry = McpTelemetry(middleware.telemetry, server_name=server_name, transport=transport)
    if not tool_filter.active and authorizer is None and auditor is None and telemetry is None:
        return None
    return McpChain(tool_filter=tool_filter, authorizer=authorizer, auditor=auditor, telemetry=telemetry)


def chain_from_runconfig(path: str) -> McpChain | None:
    """``thv proxy --runconfig FILE``: the chain for the file's middleware settings, read by the
    runner's own parser (one reading of the RunConfig for both commands)."""
    from thv.proxy.config import ConfigError
    from thv.runner.config import runner_config_from_runconfig

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"--runconfig: cannot read {path}: {exc.strerror}") from None
    config = runner_config_from_runconfig(data, image="-", env={})
    w = config.workload
    return build_chain(
        config.middleware,
        server_name=w.name,
        transport=w.proxy_mode if w.transport == "stdio" else w.transport,
    )


def chain_from_flags(
    values: Mapping[str, str | bool | tuple[str, ...]], *, server_name: str = "", transport: str = ""
) -> McpChain | None:
    """``thv proxy --tools … --authz-config …``: the chain for middleware flags, read by the
    runner's own flag reading (one reading of the flags for both commands)."""
    from thv.runner.config import middleware_from_flags

    return build_chain(
        middleware_from_flags(values, server_name), server_name=server_name, transport=transport
    )
