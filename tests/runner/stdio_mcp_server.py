"""A stdio MCP server on the official SDK, for the bridge tests: ``whoami`` reports the token the
bridge handed over in ``_meta`` and the process id (a new process after a reattach)."""

from __future__ import annotations

import os

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("bridge-test")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool()
def whoami(ctx: Context) -> str:
    """The authorization the runner passed in _meta, and this process's id."""
    meta = ctx.request_context.meta  # a TypedDict (mcp 2.x)
    extra = dict(meta or {})
    return f"pid={os.getpid()} authorization={extra.get('dev.thv/authorization')}"


if __name__ == "__main__":
    server.run("stdio")
