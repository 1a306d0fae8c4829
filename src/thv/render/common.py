"""Small helpers shared by the renderers: ownership, metadata, map merging, Go-compatible JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from thv.api.crds import MCPServer
from thv.api.meta import ObjectMeta, OwnerReference
from thv.render import names

#: the namespace used when a manifest carries none (offline rendering)
DEFAULT_NAMESPACE: Final = "default"

_deterministic = msgspec.json.Encoder(order="deterministic")
# Go's encoding/json escapes these inside strings (they can occur nowhere else in JSON)
_GO_ESCAPES: Final = (
    ("&", "\\u0026"),
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def server_name(server: MCPServer) -> str:
    """``metadata.name``; an MCPServer without one cannot be rendered."""
    if not server.metadata.name:
        raise ValueError("MCPServer has no metadata.name")
    return server.metadata.name


def server_namespace(server: MCPServer) -> str:
    """``metadata.namespace``, or ``default`` for a namespace-less manifest."""
    return server.metadata.namespace or DEFAULT_NAMESPACE


def owner_reference(server: MCPServer) -> OwnerReference:
    """The controller reference every rendered object carries (GC follows the MCPServer)."""
    return OwnerReference(
        api_version=server.api_version,
        kind=server.kind,
        name=server_name(server),
        uid=server.metadata.uid or "",
        controller=True,
        block_owner_deletion=True,
    )


def object_meta(
    server: MCPServer,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> ObjectMeta:
    """Metadata of an owned object: name, the server's namespace, ``labels`` plus
    ``app.kubernetes.io/managed-by=thv`` (thv's value wins: its watches select by it),
    annotations when non-empty, and the controller ownerReference. Nothing the server owns
    (no resourceVersion)."""
    return ObjectMeta(
        name=name,
        namespace=server_namespace(server),
        labels={**(labels or {}), names.LABEL_APP_MANAGED_BY: names.MANAGED_BY_THV},
        annotations=dict(annotations) if annotations else None,
        owner_references=[owner_reference(server)],
    )


def merge_operator_wins(operator: Mapping[str, str], user: Mapping[str, str] | None) -> dict[str, str]:
    """Upstream ``MergeStringMaps``: the user's entries, overwritten by the operator's."""
    return {**(user or {}), **operator}


def go_escape(text: str) -> str:
    """Escape ``& < > U+2028 U+2029`` as Go's ``encoding/json`` does (valid JSON either way)."""
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def go_json(value: Any) -> str:
    """Compact JSON with sorted map keys and Go's HTML escaping (``json.Marshal`` of a map)."""
    return go_escape(_deterministic.encode(value).decode())


def go_json_indent(value: Any) -> str:
    """``json.MarshalIndent(v, "", "  ")``: Struct fields in declaration order, map keys sorted,
    2-space indent, no trailing newline, Go's HTML escaping."""
    return go_escape(msgspec.json.format(_deterministic.encode(value), indent=2).decode())
