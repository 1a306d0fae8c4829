"""The one place that writes status subresources, and only when the content differs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec

from thv.api.meta import Condition
from thv.kube.client import KubeClient
from thv.kube.resources import Resource
from thv.writers.diff import is_subset

log = logging.getLogger("thv.writers")
_enc = msgspec.json.Encoder()


def now() -> str:
    """RFC 3339 UTC timestamp with second precision, as Kubernetes writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    live: list[dict[str, Any]] | None, desired: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Desired conditions, keeping ``lastTransitionTime`` unless the status flipped."""
    by_type = {c.get("type"): c for c in live or []}
    out = []
    for cond in desired:
        old = by_type.get(cond["type"])
        c = dict(cond)
        if old is not None and old.get("status") == c.get("status") and old.get("lastTransitionTime"):
            c["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            c.setdefault("lastTransitionTime", now())
        out.append(c)
    return out


def condition_bodies(conditions: list[Condition]) -> list[dict[str, Any]]:
    """Typed conditions as status JSON; an empty ``lastTransitionTime`` is left for
    :func:`merge_conditions` to keep or set."""
    out: list[dict[str, Any]] = []
    for cond in conditions:
        body: dict[str, Any] = msgspec.to_builtins(cond)
        if not body.get("lastTransitionTime"):
            body.pop("lastTransitionTime", None)
        out.append(body)
    return out


class StatusWriter:
    """Merge-patches ``/status`` with the fields thv owns when they differ from live."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        #: status writes sent (for tests and benchmarks)
        self.writes = 0

    async def write(
        self,
        res: Resource,
        name: str,
        namespace: str | None,
        desired: dict[str, Any],
        live: dict[str, Any] | None,
    ) -> bool:
        """Write ``desired`` (a partial status) unless ``live`` already holds it.

        ``conditions`` in ``desired`` replace the live list, keeping transition times.
        A ``None`` value removes that field. Returns True if it wrote.
        """
        live = live or {}
        want = dict(desired)
        if "conditions" in want:
            want["conditions"] = merge_conditions(live.get("conditions"), want["conditions"])
        removals = {k for k, v in want.items() if v is None and k in live}
        present = {k: v for k, v in want.items() if v is not None}
        if not removals and is_subset(present, live):
            return False
        patch = {"status": {**present, **dict.fromkeys(removals)}}
        log.info("status %s %s/%s", res.kind, namespace, name)
        await self.client.patch(
            res, name, _enc.encode(patch), namespace, patch_type="merge", subresource="status"
        )
        self.writes += 1
        return True
