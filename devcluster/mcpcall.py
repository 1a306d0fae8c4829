"""Call one tool of an MCP server with the official MCP SDK client, as a user would.

``python -m devcluster.mcpcall URL TOOL [--token T] [--arg k=v ...]`` initializes a session
over streamable HTTP (``URL`` ends in ``/mcp``) with ``Authorization: Bearer T``, lists the
tools, calls ``TOOL`` and prints its result as JSON. The demo uses the same function.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


class CallResult:
    def __init__(self, tools: list[str], result: dict[str, Any], is_error: bool) -> None:
        self.tools = tools
        self.result = result
        self.is_error = is_error


async def call_tool(
    url: str, tool: str, *, token: str | None = None, arguments: dict[str, Any] | None = None
) -> CallResult:
    """Initialize, list the tools, call ``tool``; its structured (or JSON text) result."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        answer = await session.call_tool(tool, arguments or {})
        data: Any = answer.structured_content
        if data is None:
            texts = [getattr(c, "text", "") for c in answer.content]
            try:
                data = json.loads(texts[0]) if texts else {}
            except json.JSONDecodeError:
                data = {"text": "\n".join(texts)}
        if isinstance(data, dict) and set(data) == {"result"} and isinstance(data["result"], dict):
            data = data["result"]
        return CallResult(tools, data if isinstance(data, dict) else {"result": data}, bool(answer.is_error))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.mcpcall", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the MCP endpoint, e.g. http://10.96.12.34:8080/mcp")
    parser.add_argument("tool")
    parser.add_argument("--token", help="bearer token (default: none)")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="a string argument")
    args = parser.parse_args(argv)
    arguments = dict(a.split("=", 1) for a in args.arg)
    try:
        out = anyio.run(lambda: call_tool(args.url, args.tool, token=args.token, arguments=arguments))
    except Exception as exc:  # one line for the user
        print(f"mcpcall: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"tools": out.tools, "result": out.result, "isError": out.is_error}, indent=2))
    return 1 if out.is_error else 0


if __name__ == "__main__":
    sys.exit(main())
