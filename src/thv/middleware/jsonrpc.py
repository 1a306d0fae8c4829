"""JSON-RPC 2.0 / MCP message parsing and rewriting, for JSON bodies and SSE streams.

Pure functions and small incremental parsers, no I/O:

* :func:`decode_body` — a request or response body → :class:`Body` (one message or a batch), or
  ``None`` when it is not JSON-RPC (then the caller passes the bytes through unchanged);
* :func:`parse_request` — one message → :class:`McpRequest` (method, id, resource id and arguments
  as upstream's ``pkg/mcp`` parser extracts them), ``None`` for responses;
* :class:`SSEDecoder` — incremental ``text/event-stream`` splitter that keeps every event's raw
  bytes, so events nobody rewrites reach the client byte for byte; :func:`render_event` writes an
  event again with new ``data``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

import msgspec

__all__ = [
    "CODE_DENIED",
    "CODE_INTERNAL_ERROR",
    "CODE_INVALID_PARAMS",
    "CODE_INVALID_REQUEST",
    "Body",
    "JSONObject",
    "McpRequest",
    "SSEDecoder",
    "SSEEvent",
    "decode_body",
    "encode_message",
    "error_response",
    "id_key",
    "new_event",
    "parse_request",
    "render_event",
    "response_id",
]

JSONObject = dict[str, object]

CODE_INVALID_REQUEST: Final = -32600
CODE_INVALID_PARAMS: Final = -32602
CODE_INTERNAL_ERROR: Final = -32603
#: upstream's application-space code for an authorization denial (``mcp.JSONRPCCodeDenied``)
CODE_DENIED: Final = 403

_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()


@dataclass(slots=True)
class Body:
    """A decoded JSON-RPC body: ``messages`` in order; ``batch`` when it was a JSON array."""

    messages: list[JSONObject]
    batch: bool = False

    def encode(self) -> bytes:
        if self.batch:
            return _encoder.encode(self.messages)
        return _encoder.encode(self.messages[0])


def decode_body(data: bytes) -> Body | None:
    """``data`` as JSON-RPC: an object, or a non-empty array of objects; else ``None``."""
    data = data.removeprefix(b"\xef\xbb\xbf").strip()
    if not data or data[:1] not in (b"{", b"["):
        return None
    try:
        doc = _decoder.decode(data)
    except msgspec.DecodeError:
        return None
    if isinstance(doc, dict):
        return Body([doc])
    if isinstance(doc, list) and doc and all(isinstance(m, dict) for m in doc):
        return Body([m for m in doc if isinstance(m, dict)], batch=True)
    return None


def encode_message(message: JSONObject) -> bytes:
    return _encoder.encode(message)


@dataclass(frozen=True, slots=True)
class McpRequest:
    """One JSON-RPC request or notification, as upstream's ``ParsedMCPRequest`` sees it."""

    method: str
    #: the JSON id (``None`` for a notification; ``has_id`` tells ``null`` apart)
    id: object = None
    has_id: bool = False
    #: tool or prompt name (``tools/call``, ``prompts/get``), resource URI (``resources/read``),
    #: client name (``initialize``), cursor (lists), …
    resource_id: str = ""
    arguments: JSONObject = field(default_factory=dict)
    client_name: str = ""
    client_version: str = ""
    protocol_version: str = ""

    @property
    def is_notification(self) -> bool:
        return not self.has_id


_STATIC_RESOURCE_IDS: Final = {
    "ping": "ping",
    "notifications/roots/list_changed": "roots",
    "notifications/initialized": "initialized",
    "notifications/prompts/list_changed": "prompts",
    "notifications/resources/list_changed": "resources",
    "notifications/resources/updated": "resources",
    "notifications/tools/list_changed": "tools",
}
_LISTS: Final = frozenset(
    {"tools/list", "prompts/list", "resources/list", "resources/templates/list", "roots/list", "tasks/list"}
)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _resource_and_arguments(method: str, params: JSONObject) -> tuple[str, JSONObject]:
    if method in ("tools/call", "prompts/get"):
        args = params.get("arguments")
        return _str(params.get("name")), args if isinstance(args, dict) else {}
    if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
        return _str(params.get("uri")), {}
    if method == "initialize":
        info = params.get("clientInfo")
        return (_str(info.get("name")) if isinstance(info, dict) else ""), {}
    if method in _LISTS:
        return _str(params.get("cursor")), {}
    if method == "notifications/message":
        return _str(params.get("method")), {}
    if method == "logging/setLevel":
        return _str(params.get("level")), {}
    if method == "completion/complete":
        ref = params.get("ref")
        if isinstance(ref, dict):
            return _str(ref.get("name")) or _str(ref.get("uri")), {}
        return "", {}
    return _STATIC_RESOURCE_IDS.get(method, ""), {}


def parse_request(message: JSONObject) -> McpRequest | None:
    """A request or notification (``method`` is a string); ``None`` for anything else."""
    method = message.get("method")
    if not isinstance(method, str) or not method:
        return None
    params = message.get("params")
    params = params if isinstance(params, dict) else {}
    resource_id, arguments = _resource_and_arguments(method, params)
    client_name = client_version = protocol_version = ""
    if method == "initialize":
        info = params.get("clientInfo")
        if isinstance(info, dict):
            client_name, client_version = _str(info.get("name")), _str(info.get("version"))
        protocol_version = _str(params.get("protocolVersion"))
    return McpRequest(
        method=method,
        id=message.get("id"),
        has_id="id" in message,
        resource_id=resource_id,
        arguments=arguments,
        client_name=client_name,
        client_version=client_version,
        protocol_version=protocol_version,
    )


def response_id(message: JSONObject) -> tuple[bool, object]:
    """``(True, id)`` for a JSON-RPC response (``result`` or ``error``, no ``method``)."""
    if "method" in message or ("result" not in message and "error" not in message):
        return False, None
    return True, message.get("id")


def error_response(request_id: object, code: int, message: str) -> JSONObject:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def id_key(request_id: object) -> str:
    """A hashable key for a JSON-RPC id (``1`` and ``"1"`` differ, as in JSON)."""
    return _encoder.encode(request_id).decode()


# --- Server-Sent Events -------------------------------------------------------------------------

_LINE: Final = re.compile(rb"\r\n|\n|\r")


@dataclass(slots=True)
class SSEEvent:
    """One event: its raw bytes (terminating blank line included) and its parsed fields."""

    raw: bytes
    #: the ``data`` lines joined with ``\\n`` (``None`` when the event has no data line)
    data: bytes | None = None
    #: every line except ``data`` lines, in order, without terminators
    other_lines: list[bytes] = field(default_factory=list)
    newline: bytes = b"\n"


class SSEDecoder:
    """Splits a ``text/event-stream`` body into events as bytes arrive (any line terminator)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        start = 0  # start of the current event in the buffer
        pos = 0
        lines: list[bytes] = []
        newline = b"\n"
        buffer = self._buffer
        while True:
            match = _LINE.search(buffer, pos)
            if match is None:
                break
            if match.group() == b"\r" and match.end() == len(buffer):
                break  # maybe the first half of \r\n: wait for the next byte
            line = buffer[pos : match.start()]
            pos = match.end()
            if line:
                if not lines:
                    newline = match.group()
                lines.append(line)
                continue
            if lines:
                events.append(_event(buffer[start:pos], lines, newline))
            else:
                events.append(SSEEvent(raw=buffer[start:pos], other_lines=[], newline=match.group()))
            lines = []
            start = pos
        self._buffer = buffer[start:]
        return events

    def flush(self) -> bytes:
        """What is left (an unterminated last event), raw."""
        rest, self._buffer = self._buffer, b""
        return rest


def _event(raw: bytes, lines: list[bytes], newline: bytes) -> SSEEvent:
    data: list[bytes] = []
    other: list[bytes] = []
    for line in lines:
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        else:
            other.append(line)
    return SSEEvent(raw=raw, data=b"\n".join(data) if data else None, other_lines=other, newline=newline)


def render_event(event: SSEEvent, data: bytes) -> bytes:
    """``event`` with its data replaced by ``data`` (one line: compact JSON has no newline)."""
    nl = event.newline
    out = b"".join(line + nl for line in event.other_lines)
    return out + b"data: " + data + nl + nl


def new_event(data: bytes, *, event: str = "message") -> bytes:
    """A fresh SSE event carrying ``data`` (a message thv itself adds to a stream)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
