"""A demo MCP server (official SDK) behind ``thv proxy`` with the middleware chain, on loopback."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

import httpx2
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ReadResourceResult, TextContent, TextResourceContents
from proxy_testlib import ServerThread

from thv.middleware.chain import McpChain
from thv.proxy.app import build_app
from thv.proxy.config import OIDCSettings, ProxyConfig
from thv.proxy.oidc import InvalidToken

ISSUER = "https://idp.example/realms/mcp"
TOKENS: Mapping[str, Mapping[str, object]] = {
    "alice-token": {"sub": "alice", "preferred_username": "alice", "groups": ["eng"], "iss": ISSUER},
    "bob-token": {"sub": "bob", "email": "bob@example.com", "iss": ISSUER},
}


class FakeValidator:
    """Stands for OIDC validation: a known token gives its claims."""

    async def validate(self, token: str) -> Mapping[str, Any]:
        if token not in TOKENS:
            raise InvalidToken("token not accepted")
        return TOKENS[token]

    async def aclose(self) -> None:
        return None


def demo_server() -> MCPServer:
    server = MCPServer("demo")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two numbers."""
        return str(a + b)

    @server.tool()
    def secret() -> str:
        """A tool nobody should see."""
        return "the secret"

    @server.prompt()
    def greet(name: str) -> str:
        """A greeting."""
        return f"Hello {name}"

    @server.prompt()
    def internal() -> str:
        """Internal prompt."""
        return "internal"

    @server.resource("res://public")
    def public() -> str:
        return "public data"

    @server.resource("res://private")
    def private() -> str:
        return "private data"

    return server


Transport = Literal["streamable-http", "streamable-http-json", "sse"]


def first_text(result: CallToolResult | ReadResourceResult) -> str:
    """The text of a tool result's or a read resource's first content block (a text block)."""
    block = result.content[0] if isinstance(result, CallToolResult) else result.contents[0]
    assert isinstance(block, TextContent | TextResourceContents), block
    return block.text


@contextlib.contextmanager
def running(
    transport: Transport, chain: McpChain | None, *, resource_url: str | None = "https://mcp.example/mcp"
) -> Iterator[str]:
    """The demo server and a proxy in front of it; yields the proxy's base URL."""
    server = demo_server()
    if transport == "sse":
        backend_app: Any = server.sse_app()
    else:
        backend_app = server.streamable_http_app(json_response=transport == "streamable-http-json")
    with ServerThread(backend_app) as backend:
        config = ProxyConfig(
            target_url=backend.url,
            name="demo",
            oidc=OIDCSettings(issuer=ISSUER, resource_url=resource_url),
        )
        app = build_app(config, validator=FakeValidator(), mcp=chain)
        with ServerThread(app) as proxy:
            yield proxy.url


@contextlib.asynccontextmanager
async def session(url: str, transport: Transport, token: str = "alice-token") -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    if transport == "sse":
        async with (
            sse_client(f"{url}/sse", headers=headers) as (read, write),
            ClientSession(read, write) as s,
        ):
            await s.initialize()
            yield s
    else:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as s,
        ):
            await s.initialize()
            yield s


def audit_sink() -> io.StringIO:
    return io.StringIO()
