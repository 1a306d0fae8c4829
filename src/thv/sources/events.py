"""Events on thv's bus. An event only says *which key* to look at (and why)."""

from __future__ import annotations

from typing import Literal

import msgspec

MCPSERVER = "MCPServer"
TOOLCONFIG = "MCPToolConfig"
EXTAUTH = "MCPExternalAuthConfig"

Reason = Literal["ADDED", "MODIFIED", "DELETED", "RESYNC", "OWNED", "REFERENCE", "RETRY", "POD"]


class ObjectEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Something about ``kind`` ``key`` (``namespace/name``) may have changed.

    ``obj`` is the typed object as the watch delivered it (the last known state for a
    deletion), for tracing and debugging; subscribers always read the current state from
    the Store instead, so dropped, duplicated or reordered events cannot mislead them.
    """

    kind: str
    key: str
    reason: Reason
    obj: msgspec.Struct | None = None

    @property
    def bus_key(self) -> str:
        """The coalescing key: one pending delivery per kind and object."""
        return f"{self.kind}:{self.key}"


class ServerStatusEvent(ObjectEvent, frozen=True, kw_only=True):
    """An MCPServer key whose status may have changed (topic of the status writer: every
    :class:`ServerEvent` and every :class:`PodEvent`)."""


class ServerEvent(ServerStatusEvent, frozen=True, kw_only=True):
    """An MCPServer key (topic of the renderers, the status writer, the restarter and the
    server finalizer)."""


class PodEvent(ServerStatusEvent, frozen=True, kw_only=True):
    """A pod of an MCPServer changed: its proxy runner pod or the MCP server pod the runner
    created (``key`` is the MCPServer's). Only the status writer reacts: nothing is rendered
    from pods."""


class ConfigEvent(ObjectEvent, frozen=True, kw_only=True):
    """An MCPToolConfig or MCPExternalAuthConfig key (topic of the hasher and finalizer guard)."""
