"""The demo MCP server sees the token thv's runner hands over where the Authorization header is
not the place: the custom-header strategy (``DEMO_MCP_TOKEN_HEADER``) and stdio (``_meta``)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import httpx2
import pytest
import uvicorn
from mcp import StdioServerParameters
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import RequestParamsMeta
from test_demo_mcp import AUDIENCE, ISSUER, SERVER, Keys, free_port, load_server
from test_demo_mcp import jwks_url as jwks_url  # the fixtures
from test_demo_mcp import keys as keys

pytestmark = pytest.mark.anyio
HEADER = "X-Upstream-Token"


def _authorization(token: str) -> RequestParamsMeta:
    """``_meta`` with the runner's authorization key: an extra key of the open TypedDict (its
    ``extra_items``, PEP 728, which mypy does not know yet)."""
    return cast(RequestParamsMeta, {"dev.thv/authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def custom_header_url(jwks_url: str) -> Iterator[str]:
    demo = load_server()
    app = demo.TokenHeader(
        demo.http_app(demo.build_server(jwks_url=jwks_url, audience=AUDIENCE, issuer=ISSUER)), HEADER
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "demo-mcp did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(10)


async def _whoami(url: str, headers: dict[str, str]) -> Any:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        return (await session.call_tool("whoami", {})).structured_content


async def test_the_custom_header_token_is_the_one_verified(custom_header_url: str, keys: Keys) -> None:
    user = keys.token(sub="the-user", aud="mcp-client")  # wrong audience: must not be the one verified
    exchanged = keys.token(sub="the-user", azp="mcp-proxy")
    seen = await _whoami(
        custom_header_url, {"Authorization": f"Bearer {user}", HEADER: f"Bearer {exchanged}"}
    )
    assert seen["token_seen"] is True and seen["azp"] == "mcp-proxy" and AUDIENCE in seen["aud"]


async def test_without_the_custom_header_the_request_is_refused(custom_header_url: str, keys: Keys) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        r = await http.post(
            custom_header_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={
                "Authorization": f"Bearer {keys.token()}",
                "Accept": "application/json, text/event-stream",
            },
        )
    assert r.status_code == 401


async def test_stdio_verifies_the_token_handed_over_in_meta(jwks_url: str, keys: Keys) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(SERVER), "--transport", "stdio", "--jwks-url", jwks_url, "--audience", AUDIENCE],
    )
    async with stdio_client(params) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        good = await session.call_tool("whoami", {}, meta=_authorization(keys.token(sub="over-stdio")))
        assert good.structured_content is not None
        assert good.structured_content["sub"] == "over-stdio" and good.structured_content["token_seen"]
        bad = await session.call_tool("whoami", {}, meta=_authorization("not-a-jwt"))
        assert bad.structured_content == {"token_seen": True, "token_valid": False}
        none = await session.call_tool("whoami", {})
        assert none.structured_content == {"token_seen": False}
