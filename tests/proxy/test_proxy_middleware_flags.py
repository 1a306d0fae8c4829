"""``thv proxy`` takes the MCP middleware from flags spelled as ``thv-runner run``'s flag mode
(``--tools``, ``--tools-override``, ``--authz-config``, ``--enable-audit``, ``--otel-*``): the
real ``python -m thv proxy`` process in front of the demo MCP server (official MCP SDK, as in the
pods), met by the official MCP SDK client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tools" / "images" / "demo-mcp" / "server.py"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(argv: list[str], health: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                httpx.get(health, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"{argv[:3]} did not start"
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def demo_mcp() -> Iterator[str]:
    port = _port()
    argv = [sys.executable, str(DEMO), "--transport", "streamable-http", "--no-auth", "--port", str(port)]
    argv += ["--host", "127.0.0.1"]
    with _process(argv, f"http://127.0.0.1:{port}/mcp"):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.anyio
async def test_middleware_flags_take_effect_in_thv_proxy(demo_mcp: str) -> None:
    port = _port()
    argv = [sys.executable, "-m", "thv", "proxy", "--target", demo_mcp, "--port", str(port), "--name", "demo"]
    argv += ["--tools", "say", "--tools-override", '{"echo": {"name": "say", "description": "Say."}}']
    argv += ["--enable-audit", "--otel-enabled=false"]
    with _process(argv, f"http://127.0.0.1:{port}/health") as proc:
        async with (
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, *_),
            ClientSession(read, write) as s,
        ):
            await s.initialize()
            tools = {t.name: t.description for t in (await s.list_tools()).tools}
            assert tools == {"say": "Say."}, tools  # filtered and renamed
            said = await s.call_tool("say", {"message": "hi"})  # reaches the server as echo
            assert not said.is_error and isinstance(said.content[0], TextContent), said
            assert said.content[0].text == "hi", said
            with pytest.raises(MCPError):
                await s.call_tool("whoami", {})  # filtered: never reaches the server
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    audit = [json.loads(line) for line in output.splitlines() if '"mcp_tool_call"' in line]
    assert ("echo", "success") in [(e["target"].get("name"), e["outcome"]) for e in audit], output[-3000:]


def test_an_authz_config_flag_with_a_policy_that_does_not_parse_stops_the_start(tmp_path: Path) -> None:
    authz = tmp_path / "authz.json"
    authz.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": ["permit(x"]}}))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "thv",
            "proxy",
            "--target",
            "http://127.0.0.1:9",
            "--authz-config",
            str(authz),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Cedar policy 0 does not parse" in done.stderr, done.stderr


def test_middleware_flags_are_refused_with_a_runconfig(tmp_path: Path) -> None:
    runconfig = tmp_path / "runconfig.json"
    runconfig.write_text(json.dumps({"name": "demo", "transport": "streamable-http", "target_port": 9}))
    done = subprocess.run(
        [sys.executable, "-m", "thv", "proxy", "--runconfig", str(runconfig), "--tools", "echo"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "thv proxy: error: --tools cannot be combined with --runconfig" in done.stderr
