"""The demo MCP server (tools/images/demo-mcp/server.py), driven by the MCP SDK's own client.

Streamable HTTP: the server runs in-process (uvicorn on a thread, a free port) and verifies tokens
signed by a locally generated RSA key whose JWKS a tiny HTTP server publishes. stdio: the server
runs as a subprocess, as a container would run it.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

SERVER = Path(__file__).resolve().parents[2] / "tools" / "images" / "demo-mcp" / "server.py"
AUDIENCE = "demo-mcp"
ISSUER = "https://issuer.test/realms/thv"
pytestmark = pytest.mark.anyio


def load_server() -> ModuleType:
    """The server's module (registered in ``sys.modules``: pydantic resolves its types there)."""
    if "demo_mcp_server" in sys.modules:
        return sys.modules["demo_mcp_server"]
    spec = importlib.util.spec_from_file_location("demo_mcp_server", SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Keys:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    def token(self, *, key: Any = None, kid: str = "k1", **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "user-123",
            "aud": [AUDIENCE, "other"],
            "azp": "thv-proxy",
            "scope": "openid tools:read",
            "exp": now + 300,
            "iat": now,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key or self.private, algorithm="RS256", headers={"kid": kid})


def serve_forever(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def other_keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def jwks_url(keys: Keys) -> Iterator[str]:
    body = json.dumps(keys.jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/jwks" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = serve_forever(server)
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    server.shutdown()
    server.server_close()
    thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mcp_url(jwks_url: str) -> Iterator[str]:
    demo = load_server()
    app = demo.http_app(demo.build_server(jwks_url=jwks_url, audience=AUDIENCE, issuer=ISSUER))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "demo-mcp did not start"
        assert thread.is_alive(), "demo-mcp exited"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(10)


async def call(url: str, token: str | None, tool: str, arguments: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        result = await session.call_tool(tool, arguments or {})
        assert not result.is_error, result
        return result.structured_content


async def status_of(url: str, token: str | None) -> int:
    """The HTTP status of an MCP initialize POST carrying ``token``."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(timeout=10) as http:
        return (await http.post(url, json=body, headers=headers)).status_code


async def test_whoami_reports_the_verified_claims_and_never_the_token(mcp_url: str, keys: Keys) -> None:
    token = keys.token()
    seen = await call(mcp_url, token, "whoami")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert seen == {
        "token_seen": True,
        **{k: claims[k] for k in ("iss", "sub", "aud", "azp", "scope", "exp")},
    }
    assert token not in json.dumps(seen)


async def test_echo(mcp_url: str, keys: Keys) -> None:
    assert await call(mcp_url, keys.token(), "echo", {"message": "héllo"}) == {"result": "héllo"}


@pytest.mark.parametrize(
    "case",
    ["missing", "garbage", "wrong-audience", "wrong-issuer", "expired", "no-exp", "wrong-key", "unknown-kid"],
)
async def test_bad_or_missing_token_is_401(mcp_url: str, keys: Keys, other_keys: Keys, case: str) -> None:
    token = {
        "missing": None,
        "garbage": "not-a-jwt",
        "wrong-audience": keys.token(aud="someone-else"),
        "wrong-issuer": keys.token(iss="https://evil.test"),
        "expired": keys.token(exp=int(time.time()) - 3600),
        "no-exp": keys.token(exp=None),
        "wrong-key": other_keys.token(),  # same kid, another key
        "unknown-kid": keys.token(kid="nope"),
    }[case]
    assert await status_of(mcp_url, token) == 401


async def test_good_token_passes_the_raw_status_check(mcp_url: str, keys: Keys) -> None:
    assert await status_of(mcp_url, keys.token()) == 200


async def test_stdio_sees_no_token() -> None:
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER), "--transport", "stdio"])
    async with stdio_client(params) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"whoami", "echo"} <= names
        whoami = await session.call_tool("whoami", {})
        assert whoami.structured_content == {"token_seen": False}
        echo = await session.call_tool("echo", {"message": "over stdio"})
        assert echo.structured_content == {"result": "over stdio"}


def test_http_without_auth_settings_is_refused() -> None:
    demo = load_server()
    with pytest.raises(SystemExit):
        demo.parse_args(["--transport", "streamable-http"])
    assert demo.parse_args(["--transport", "streamable-http", "--no-auth"]).no_auth
