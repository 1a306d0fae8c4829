"""The operator's way to desired state, without a cluster: its Store filled from manifests and
its API reads answered from them, then :func:`thv.subscribers.gather.resolve_server` per server —
for comparing with ``thv render`` (:func:`thv.render.manifests.render_docs`), whole objects."""

from __future__ import annotations

import json
from typing import Any

import anyio
import msgspec

from thv.kube.errors import NotFound
from thv.kube.resources import Resource
from thv.render.resolve import Unresolved
from thv.render.settings import OperatorSettings
from thv.sources.events import EXTAUTH, MCPSERVER, TOOLCONFIG
from thv.sources.kinds import BY_NAME
from thv.subscribers.context import Context
from thv.subscribers.gather import resolve_server


class ManifestReads:
    """The API reads the gatherer makes (Secrets, ConfigMaps), answered from manifests."""

    def __init__(self, docs: list[dict[str, Any]], namespace: str) -> None:
        self.docs = {
            (d["kind"], d["metadata"].get("namespace") or namespace, d["metadata"]["name"]): d for d in docs
        }

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> bytes:
        doc = self.docs.get((res.kind, namespace or "", name))
        if doc is None:
            raise NotFound(404, "NotFound", f"{res.plural} {name} not found")
        data = {**(doc.get("data") or {}), **(doc.get("stringData") or {})}
        return json.dumps({**doc, "data": data}).encode()


def operator_render(
    docs: list[dict[str, Any]], settings: OperatorSettings, namespace: str = "default"
) -> tuple[list[dict[str, Any]], list[str]]:
    """(objects, errors) as :func:`~thv.render.manifests.render_docs` reports them, computed the
    operator's way. A later manifest of the same object wins, in first-seen order."""

    async def publish(_: object) -> None:
        return None

    ctx = Context(ManifestReads(docs, namespace), settings, publish)  # type: ignore[arg-type]
    servers: dict[str, None] = {}
    for doc in docs:
        kind = BY_NAME.get(doc.get("kind", ""))
        if kind is None or kind.name not in (MCPSERVER, TOOLCONFIG, EXTAUTH):
            continue
        meta = {**doc["metadata"], "namespace": doc["metadata"].get("namespace") or namespace}
        ctx.stores.of(kind.name).upsert(msgspec.convert({**doc, "metadata": meta}, kind.type))
        if kind.name == MCPSERVER:
            servers[f"{meta['namespace']}/{meta['name']}"] = None

    async def run() -> tuple[list[dict[str, Any]], list[str]]:
        bodies: list[dict[str, Any]] = []
        errors: list[str] = []
        for key in servers:
            result = await resolve_server(ctx, key)
            if result is None:
                continue
            if isinstance(result, Unresolved):
                errors.append(f"MCPServer {key}: {result.reason}: {result.message}")
            else:
                bodies.extend(result.desired.bodies())
                errors.extend(f"MCPServer {key}: warning: {w}" for w in result.desired.warnings)
        return bodies, errors

    return anyio.run(run)
