"""Drive :class:`McpChain` in process: a recorded request in, a recorded answer out (no network)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, cast

from thv.middleware.chain import McpChain
from thv.proxy.asgi import Message, Receive, Scope, Send

RECORDED = Path(__file__).with_name("recorded")


class RecordedRow(TypedDict):
    """One line of a recording: the request body sent, and the server's answer to it."""

    request: str
    status: int
    content_type: str
    response: str


def recorded(name: str) -> list[RecordedRow]:
    return [
        cast(RecordedRow, json.loads(line)) for line in (RECORDED / name).read_text().splitlines() if line
    ]


@dataclass
class Exchange:
    forwarded: bytes | None = None  # what reached the server (None: nothing)
    forwarded_headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


async def drive(
    chain: McpChain,
    request: bytes,
    *,
    status: int = 200,
    content_type: str = "application/json",
    response: bytes = b"",
    chunk: int = 0,
    claims: Mapping[str, object] | None = None,
    method: str = "POST",
    path: str = "/mcp",
    query: bytes = b"",
    request_content_type: str = "application/json",
) -> Exchange:
    out = Exchange()
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": request, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            out.status = message["status"]
            out.headers = {n.decode(): v.decode() for n, v in message["headers"]}
        else:
            out.chunks.append(message.get("body", b""))
            out.body += message.get("body", b"")

    async def forward(scope: Scope, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]) -> int:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        out.forwarded = body
        out.forwarded_headers = {n.decode(): v.decode() for n, v in headers}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(response)).encode()),
                ],
            }
        )
        step = chunk or max(len(response), 1)
        for i in range(0, len(response), step):
            await send({"type": "http.response.body", "body": response[i : i + step], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return status

    headers = [
        (b"content-type", request_content_type.encode()),
        (b"content-length", str(len(request)).encode()),
        (b"accept-encoding", b"gzip"),
    ]
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": headers,
        "client": ("10.0.0.7", 5555),
    }
    await chain.handle(scope, receive, send, headers, claims, forward)
    return out
