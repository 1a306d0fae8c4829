"""Precise finalizer edits: a JSON Patch guarded by a resourceVersion test.

Never PUT a whole finalizer list that may be stale: on a 409/422 (someone else changed
the object) the object is read afresh and the decision is made again.
"""

from __future__ import annotations

import msgspec

from thv.kube.client import KubeClient
from thv.kube.errors import Conflict, Invalid, NotFound
from thv.kube.resources import Resource


class _Meta(msgspec.Struct, rename="camel"):
    resource_version: str = ""
    finalizers: list[str] | None = None
    deletion_timestamp: str | None = None


class _Obj(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


_dec = msgspec.json.Decoder(_Obj)
_enc = msgspec.json.Encoder()


async def _edit(
    client: KubeClient, res: Resource, name: str, namespace: str | None, finalizer: str, add: bool
) -> bool:
    for _ in range(5):
        try:
            live = _dec.decode(await client.get(res, name, namespace)).metadata
        except NotFound:
            return False
        current = live.finalizers or []
        if add == (finalizer in current):
            return False
        if add and live.deletion_timestamp:
            return False  # finalizers cannot be added to an object being deleted
        test = {"op": "test", "path": "/metadata/resourceVersion", "value": live.resource_version}
        if add:
            op = (
                {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}
                if live.finalizers is not None
                else {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}
            )
        else:
            op = {"op": "remove", "path": f"/metadata/finalizers/{current.index(finalizer)}"}
        try:
            await client.patch(res, name, _enc.encode([test, op]), namespace, patch_type="json")
            return True
        except (Conflict, Invalid):
            continue  # changed under us: read again and decide again
        except NotFound:
            return False
    raise Conflict(409, "Conflict", f"finalizer edit on {res.kind} {namespace}/{name} kept conflicting")


async def add_finalizer(
    client: KubeClient, res: Resource, name: str, namespace: str | None, finalizer: str
) -> bool:
    """Add ``finalizer`` unless present. Returns True if it wrote."""
    return await _edit(client, res, name, namespace, finalizer, add=True)


async def remove_finalizer(
    client: KubeClient, res: Resource, name: str, namespace: str | None, finalizer: str
) -> bool:
    """Remove ``finalizer`` if present. Returns True if it wrote."""
    return await _edit(client, res, name, namespace, finalizer, add=False)
