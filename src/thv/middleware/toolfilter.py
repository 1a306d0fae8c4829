"""Tool filter and overrides (``MCPToolConfig``): upstream's ``tool-filter`` + ``tool-call-filter``.

* ``tools/list`` answers: each tool first gets its override (name and/or description), then is kept
  only if its (possibly overridden) name is in the filter — an empty filter keeps every tool;
* ``tools/call``: the name the client sends is checked against the filter (a filtered tool is
  refused with JSON-RPC ``-32602 "tool not found"`` and never reaches the server) and an
  overridden name is rewritten to the tool's real name.

One deliberate difference from upstream: a call to the *real* name of a renamed tool is refused
too (upstream lets it through when no filter is set), since that name is not in any list the
client sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from thv.api import runconfig as rc
from thv.middleware.jsonrpc import JSONObject

__all__ = ["FILTERED_TOOL_MESSAGE", "CallDecision", "ToolFilter"]

FILTERED_TOOL_MESSAGE: Final = "tool not found"


@dataclass(frozen=True, slots=True)
class CallDecision:
    action: Literal["pass", "refuse", "rename"]
    name: str = ""


class ToolFilter:
    """Filter (client-facing names) and overrides (real name → new name/description)."""

    def __init__(self, tools_filter: Sequence[str], overrides: Mapping[str, rc.ToolOverride]) -> None:
        self.allowed = frozenset(t for t in tools_filter if t)
        self.overrides = {real: o for real, o in overrides.items() if real and (o.name or o.description)}
        self.user_to_real = {o.name: real for real, o in self.overrides.items() if o.name}
        self.hidden_real_names = frozenset(
            real for real, o in self.overrides.items() if o.name and o.name != real
        ) - frozenset(self.user_to_real)

    @property
    def active(self) -> bool:
        return bool(self.allowed or self.overrides)

    def _listed(self, name: str) -> bool:
        return not self.allowed or name in self.allowed

    def check_call(self, name: object) -> CallDecision:
        """What to do with ``tools/call`` of ``name`` (the name the client sent)."""
        if not isinstance(name, str) or not name:
            return CallDecision("refuse")
        if not self._listed(name) or name in self.hidden_real_names:
            return CallDecision("refuse")
        real = self.user_to_real.get(name)
        if real is not None and real != name:
            return CallDecision("rename", real)
        return CallDecision("pass", name)

    def rewrite_call(self, message: JSONObject) -> CallDecision:
        """Apply :meth:`check_call` to a ``tools/call`` message, renaming in place."""
        params = message.get("params")
        decision = self.check_call(params.get("name") if isinstance(params, dict) else None)
        if decision.action == "rename" and isinstance(params, dict):
            message["params"] = {**params, "name": decision.name}
        return decision

    def rewrite_tools(self, tools: list[object]) -> list[object]:
        """A ``tools/list`` result's ``tools``: overridden, then filtered; order kept."""
        out: list[object] = []
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
                continue  # upstream refuses such lists outright; thv drops the malformed entry
            name: str = tool["name"]
            override = self.overrides.get(name)
            if override is not None:
                tool = dict(tool)
                if override.name:
                    tool["name"] = name = override.name
                if override.description:
                    tool["description"] = override.description
            if self._listed(name):
                out.append(tool)
        return out

    def rewrite_list_result(self, message: JSONObject) -> bool:
        """Rewrite ``result.tools`` of a response in place; ``True`` if it had one."""
        result = message.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return False
        tools = result["tools"]
        assert isinstance(tools, list)
        message["result"] = {**result, "tools": self.rewrite_tools(tools)}
        return True
