"""Tool filter and overrides end to end: the official MCP SDK client → thv proxy (chain) → the
official SDK server, over streamable-HTTP (SSE answers and JSON answers) and legacy SSE."""

from __future__ import annotations

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mw_testlib import Transport, running, session

from thv.api import runconfig as rc
from thv.middleware.chain import McpChain
from thv.middleware.toolfilter import ToolFilter

pytestmark = pytest.mark.anyio
TRANSPORTS: list[Transport] = ["streamable-http", "streamable-http-json", "sse"]


def _chain() -> McpChain:
    return McpChain(
        tool_filter=ToolFilter(
            ["say", "add"], {"echo": rc.ToolOverride(name="say", description="Say it back.")}
        )
    )


def _text(result: object) -> str:
    return "".join(getattr(c, "text", "") for c in getattr(result, "content", []))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_filtered_and_renamed(transport: Transport) -> None:
    with running(transport, _chain()) as url:
        async with session(url, transport) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert set(tools) == {"say", "add"}
            assert tools["say"].description == "Say it back."
            assert tools["say"].input_schema["properties"]["text"]["type"] == "string"
            assert _text(await s.call_tool("say", {"text": "hi"})) == "hi"  # reached as "echo"
            assert _text(await s.call_tool("add", {"a": 2, "b": 3})) == "5"
            for hidden in ("secret", "echo"):  # filtered; the real name of a renamed tool
                with pytest.raises(MCPError) as err:
                    await s.call_tool(hidden, {})
                assert err.value.error.code == -32602
                assert err.value.error.message == "tool not found"
            # other methods are untouched
            assert {p.name for p in (await s.list_prompts()).prompts} == {"greet", "internal"}


async def test_raw_batches_notifications_and_garbage() -> None:
    """Batches are filtered message by message; notifications and bodies that are not JSON-RPC
    pass through unchanged (the server answers them itself)."""
    with running("streamable-http-json", _chain()) as url:
        headers = {
            "Authorization": "Bearer alice-token",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            init = await http.post(
                "/mcp",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "raw", "version": "1"},
                    },
                },
            )
            assert init.status_code == 200, init.text
            sid = init.headers["mcp-session-id"]
            http.headers["mcp-session-id"] = sid
            http.headers["mcp-protocol-version"] = "2025-06-18"
            note = await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"})
            assert note.status_code == 202
            listed = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            assert [t["name"] for t in listed.json()["result"]["tools"]] == ["say", "add"]
            assert int(listed.headers["content-length"]) == len(listed.content)
            # a refused call alone never reaches the server: thv answers
            refused = await http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": {"name": "secret"}},
            )
            assert refused.status_code == 200
            assert refused.json() == {
                "jsonrpc": "2.0",
                "id": "x",
                "error": {"code": -32602, "message": "tool not found"},
            }
            # garbage passes through to the server unchanged (the server's own 400)
            garbage = await http.post("/mcp", content=b"{not json")
            assert garbage.status_code == 400
            assert garbage.json()["error"]["code"] == -32700  # the SDK server's parse error
            # a tools/call refused inside a request that is answered: only that id is refused
            ok = await http.post(
                "/mcp",
                json={
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {"name": "say", "arguments": {"text": "yo"}},
                },
            )
            assert ok.json()["result"]["content"][0]["text"] == "yo"


async def test_sdk_client_rejects_nothing_when_no_filter() -> None:
    """An override without filter: every tool listed (one renamed)."""
    chain = McpChain(tool_filter=ToolFilter([], {"secret": rc.ToolOverride(description="Not so secret.")}))
    with running("streamable-http", chain) as url:
        async with session(url, "streamable-http") as s:
            tools = {t.name: t.description for t in (await s.list_tools()).tools}
            assert tools == {
                "echo": "Echo the text back.",
                "add": "Add two numbers.",
                "secret": "Not so secret.",
            }
