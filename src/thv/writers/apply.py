"""Server-side apply of owned objects, only when the live object differs."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from thv.kube.client import KubeClient
from thv.kube.resources import Resource
from thv.writers.diff import is_subset

log = logging.getLogger("thv.writers")
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "thv"
_enc = msgspec.json.Encoder()


def to_builtins(obj: Any) -> Any:
    """A Struct (or builtins) as plain JSON-like builtins, omitting unset fields."""
    return msgspec.to_builtins(obj) if obj is not None else None


class Applier:
    """Applies desired objects with field manager ``thv`` when they differ from live state."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        #: applies sent (for tests and benchmarks)
        self.writes = 0

    async def apply(self, res: Resource, desired: Any, live: Any | None) -> bool:
        """Apply ``desired`` unless ``live`` already holds it. Returns True if it wrote.

        ``desired`` is a Struct or dict holding only thv's fields (apiVersion, kind,
        metadata.name/namespace/labels/annotations/ownerReferences, spec …); the label
        ``app.kubernetes.io/managed-by=thv`` is added so thv's watches select it.
        """
        body = to_builtins(desired)
        meta = body.setdefault("metadata", {})
        meta.setdefault("labels", {})[MANAGED_BY_LABEL] = MANAGED_BY
        if live is not None and is_subset(body, to_builtins(live)):
            return False
        name, ns = meta["name"], meta.get("namespace")
        log.info("apply %s %s/%s", res.kind, ns, name)
        await self.client.apply(res, name, _enc.encode(body), ns)
        self.writes += 1
        return True

    async def delete(self, res: Resource, name: str, namespace: str | None, live: Any | None) -> bool:
        """Delete an object thv no longer wants (only if it exists in the store)."""
        if live is None:
            return False
        log.info("delete %s %s/%s", res.kind, namespace, name)
        await self.client.delete(res, name, namespace)
        self.writes += 1
        return True
