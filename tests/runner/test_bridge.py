"""The stdio bridge, with a real stdio MCP server (official SDK) in a subprocess standing in for the
attached pod, and the official MCP SDK client over streamable-HTTP and SSE (legacy handshake)."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import httpx2
import pytest
import uvicorn
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from thv.runner.bridge import BridgeApp, StdioBridge

SERVER = Path(__file__).with_name("stdio_mcp_server.py")
pytestmark = pytest.mark.anyio


class ProcessChannel:
    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process

    async def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(data)

    async def read(self) -> bytes:
        assert self.process.stdout is not None
        return await self.process.stdout.receive()


class Spawner:
    """``connect()`` for the bridge: a new server process each time (like a replaced pod)."""

    def __init__(self) -> None:
        self.current: anyio.abc.Process | None = None

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[ProcessChannel]:
        async with await anyio.open_process([sys.executable, str(SERVER)], stderr=None) as process:
            self.current = process
            try:
                yield ProcessChannel(process)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def running_bridge(
    proxy_mode: str, token_header: str | None = "authorization"
) -> AsyncIterator[tuple[str, Spawner, StdioBridge]]:
    bridge = StdioBridge(attach_wait=20)
    spawner = Spawner()
    port = free_port()
    app = BridgeApp(bridge, proxy_mode, token_header=token_header)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge.run, spawner.connect)
        tg.start_soon(server.serve)
        while not server.started:
            await anyio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}", spawner, bridge
        finally:
            server.should_exit = True
            tg.cancel_scope.cancel()


def _text(result: object) -> str:
    content = result.content  # type: ignore[attr-defined]
    return str(content[0].text)


async def _exercise(session: ClientSession, spawner: Spawner, bridge: StdioBridge) -> None:
    await session.initialize()
    tools = {t.name for t in (await session.list_tools()).tools}
    assert {"echo", "whoami"} <= tools
    assert _text(await session.call_tool("echo", {"text": "hello"})) == "hello"
    first = _text(await session.call_tool("whoami", {}))
    assert first.endswith("authorization=Bearer user-token"), first
    # the MCP server "pod" is replaced mid-session: the same session keeps working
    assert spawner.current is not None
    spawner.current.kill()
    with anyio.fail_after(20):
        while True:
            try:
                again = _text(await session.call_tool("whoami", {}))
            except Exception:  # the request in flight when the process died
                await anyio.sleep(0.2)
                continue
            if again != first:
                break
            await anyio.sleep(0.1)
    assert again.split()[0] != first.split()[0]  # a new process answered
    assert bridge.attaches >= 2


async def test_streamable_http_through_the_bridge() -> None:
    async with running_bridge("streamable-http") as (url, spawner, bridge):
        http = httpx2.AsyncClient(headers={"Authorization": "Bearer user-token"}, timeout=30)
        async with (
            http,
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await _exercise(session, spawner, bridge)


async def test_sse_through_the_bridge() -> None:
    async with (
        running_bridge("sse") as (url, spawner, bridge),
        sse_client(f"{url}/sse", headers={"Authorization": "Bearer user-token"}) as (read, write),
        ClientSession(read, write) as session,
    ):
        await _exercise(session, spawner, bridge)


async def test_custom_header_is_what_the_server_gets() -> None:
    async with running_bridge("streamable-http", token_header="X-Upstream-Token") as (url, _spawner, _bridge):
        http = httpx2.AsyncClient(
            headers={"Authorization": "Bearer user-token", "X-Upstream-Token": "Bearer exchanged"}, timeout=30
        )
        async with (
            http,
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            who = _text(await session.call_tool("whoami", {}))
            assert who.endswith("authorization=Bearer exchanged") and "user-token" not in who


async def test_health_and_unknown_paths() -> None:
    async with (
        running_bridge("streamable-http") as (url, _spawner, bridge),
        httpx2.AsyncClient(timeout=10) as http,
    ):
        with anyio.fail_after(20):
            while not bridge.connected:
                await anyio.sleep(0.05)
        assert (await http.get(f"{url}/health")).status_code == 200
        assert (await http.get(f"{url}/mcp")).status_code == 405
        assert (await http.post(f"{url}/nope", content=b"{}")).status_code == 404
        assert (await http.post(f"{url}/mcp", content=b"not json")).status_code == 400
