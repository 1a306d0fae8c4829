"""The JSON-RPC rewriting on recorded MCP sessions (official SDK server: SSE and JSON answers):
every chunking of the answer, batches, notifications, and bodies that pass through unchanged."""

from __future__ import annotations

import json
from typing import TypedDict, cast

import pytest
from chainlib import RecordedRow, drive, recorded

from thv.api import runconfig as rc
from thv.middleware.chain import McpChain
from thv.middleware.jsonrpc import SSEDecoder, decode_body, parse_request
from thv.middleware.toolfilter import ToolFilter

pytestmark = pytest.mark.anyio


class _Tool(TypedDict, total=False):
    name: str
    description: str


class _Result(TypedDict, total=False):
    tools: list[_Tool]


class _Answer(TypedDict, total=False):
    """A JSON-RPC answer as decoded from an SSE event (the keys these tests read)."""

    jsonrpc: str
    id: int
    result: _Result
    error: dict[str, object]


def chain() -> McpChain:
    return McpChain(
        tool_filter=ToolFilter(["say", "add"], {"echo": rc.ToolOverride(name="say", description="Say.")})
    )


def _row(name: str, method: str) -> RecordedRow:
    return next(r for r in recorded(name) if json.loads(r["request"]).get("method") == method)


def _sse_messages(body: bytes) -> list[_Answer]:
    events = SSEDecoder().feed(body)
    return [cast(_Answer, json.loads(e.data)) for e in events if e.data is not None]


@pytest.mark.parametrize("chunk", [0, 1, 7, 64])
async def test_tools_list_sse(chunk: int) -> None:
    row = _row("streamable_sse.jsonl", "tools/list")
    ex = await drive(
        chain(),
        row["request"].encode(),
        content_type="text/event-stream",
        response=row["response"].encode(),
        chunk=chunk,
    )
    (message,) = _sse_messages(ex.body)
    assert [(t["name"], t["description"]) for t in message["result"]["tools"]] == [
        ("say", "Say."),
        ("add", "Add two numbers."),
    ]
    assert "content-length" not in ex.headers
    assert ex.body.startswith(b"event: message\r\ndata: ") and ex.body.endswith(b"\r\n\r\n")  # framing kept
    assert "accept-encoding" not in ex.forwarded_headers  # answers must come back uncompressed


async def test_tools_list_json() -> None:
    row = _row("streamable_json.jsonl", "tools/list")
    ex = await drive(chain(), row["request"].encode(), response=row["response"].encode(), chunk=5)
    assert [t["name"] for t in ex.json()["result"]["tools"]] == ["say", "add"]
    assert int(ex.headers["content-length"]) == len(ex.body)


@pytest.mark.parametrize("name", ["streamable_sse.jsonl", "streamable_json.jsonl"])
async def test_everything_else_passes_byte_for_byte(name: str) -> None:
    for row in recorded(name):
        request = json.loads(row["request"]) if row["request"].startswith('{"') else None
        if request is not None and request.get("method") in ("tools/list", "tools/call"):
            continue
        ex = await drive(
            chain(),
            row["request"].encode(),
            status=row["status"],
            content_type=row["content_type"],
            response=row["response"].encode(),
            chunk=3,
        )
        assert ex.forwarded == row["request"].encode() or json.loads(ex.forwarded or b"") == request
        assert ex.status == row["status"]
        assert ex.body == row["response"].encode(), row["request"]


async def test_call_renamed_and_refused() -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "say", "arguments": {"text": "hi"}},
    }
    ex = await drive(chain(), json.dumps(call).encode(), response=b'{"jsonrpc":"2.0","id":3,"result":{}}')
    assert json.loads(ex.forwarded or b"")["params"] == {"name": "echo", "arguments": {"text": "hi"}}
    assert int(ex.forwarded_headers["content-length"]) == len(ex.forwarded or b"")
    refused = {**call, "params": {"name": "secret"}}
    ex = await drive(chain(), json.dumps(refused).encode())
    assert ex.forwarded is None
    assert ex.json() == {"jsonrpc": "2.0", "id": 3, "error": {"code": -32602, "message": "tool not found"}}


async def test_batch() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "secret"}},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "say", "arguments": {"text": "x"}},
        },
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "secret"}},  # a refused notification
    ]
    tools: list[dict[str, object]] = [{"name": n, "inputSchema": {}} for n in ("echo", "add", "secret")]
    answer = [
        {"jsonrpc": "2.0", "id": 2, "result": {"content": []}},
        {"jsonrpc": "2.0", "id": 3, "result": {"tools": tools}},
    ]
    ex = await drive(chain(), json.dumps(batch).encode(), response=json.dumps(answer).encode())
    forwarded = json.loads(ex.forwarded or b"")
    assert [m.get("id") for m in forwarded] == [2, None, 3]
    assert forwarded[0]["params"]["name"] == "echo"
    body = ex.json()
    assert [m["id"] for m in body] == [2, 3, 1]
    assert [t["name"] for t in body[1]["result"]["tools"]] == ["say", "add"]
    assert body[2]["error"]["code"] == -32602
    # the same batch answered as SSE: the refusal comes first as its own event
    sse = b"".join(b"event: message\ndata: " + json.dumps(m).encode() + b"\n\n" for m in answer)
    ex = await drive(
        chain(), json.dumps(batch).encode(), content_type="text/event-stream", response=sse, chunk=2
    )
    messages = _sse_messages(ex.body)
    assert [m["id"] for m in messages] == [1, 2, 3]
    assert [t["name"] for t in messages[2]["result"]["tools"]] == ["say", "add"]


async def test_batch_all_refused_and_only_notifications_left() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "secret"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    ex = await drive(chain(), json.dumps(batch).encode(), status=202, response=b"")
    assert [m.get("method") for m in json.loads(ex.forwarded or b"")] == ["notifications/initialized"]
    assert ex.status == 200
    assert ex.json() == [{"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "tool not found"}}]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b"[1, 2]",
        b'"text"',
        b"",
        b"\xff\xfe",
        b'{"jsonrpc":"2.0","result":{"tools":[{"name":"secret"}]},"id":9}',
    ],
)
async def test_unparseable_or_not_a_request_passes_unchanged(body: bytes) -> None:
    ex = await drive(chain(), body, status=400, response=b"server says no")
    assert ex.forwarded == body
    assert (ex.status, ex.body) == (400, b"server says no")


async def test_non_json_content_type_and_get_pass_through() -> None:
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}'
    ex = await drive(chain(), call, request_content_type="text/plain", response=b"ok")
    assert ex.forwarded == call  # upstream parses application/json only
    ex = await drive(chain(), b"", method="GET", content_type="text/event-stream", response=b": ping\n\n")
    assert ex.body == b": ping\n\n"


def test_parser_on_recorded_requests() -> None:
    rows = recorded("streamable_json.jsonl")
    bodies = [decode_body(r["request"].encode()) for r in rows]
    parsed = [parse_request(body.messages[0]) for body in bodies if body]
    summary = [(p.method, p.resource_id, p.has_id) for p in parsed if p is not None]
    assert summary == [
        ("initialize", "rec", True),
        ("notifications/initialized", "initialized", False),
        ("tools/list", "", True),
        ("tools/call", "echo", True),
        ("prompts/list", "", True),
        ("resources/list", "", True),
    ]
    assert parsed[3] is not None and parsed[3].arguments == {"text": "hi"}


def test_sse_decoder_terminators_and_split_points() -> None:
    stream = b"event: a\r\ndata: 1\r\n\r\n: comment\n\ndata: x\rdata: y\r\r" + b"id: 7\ndata: {}\n\n"
    for cut in range(len(stream) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert b"".join(e.raw for e in events) == stream
        assert [e.data for e in events if e.data is not None] == [b"1", b"x\ny", b"{}"]


async def test_an_answer_too_big_to_filter_is_refused_else_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    import thv.middleware.chain as chain_module

    monkeypatch.setattr(chain_module, "MAX_ANSWER", 64)
    big = json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": f"t{i}"} for i in range(20)]}})
    ex = await drive(
        chain(), b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}', response=big.encode(), chunk=16
    )
    assert ex.status == 502 and b"secret" not in ex.body and b"t19" not in ex.body
    other = json.dumps({"jsonrpc": "2.0", "id": 4, "result": {"prompts": [{"name": "p" * 200}]}}).encode()
    ex = await drive(chain(), b'{"jsonrpc":"2.0","id":4,"method":"prompts/list"}', response=other, chunk=16)
    assert (ex.status, ex.body) == (200, other)
