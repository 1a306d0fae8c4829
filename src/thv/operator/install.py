"""Install thv's CRDs (server-side apply) and wait until the API server serves them."""

from __future__ import annotations

import anyio
import msgspec

from thv.kube.client import KubeClient
from thv.kube.resources import CRDS


class _Cond(msgspec.Struct):
    type: str
    status: str


class _Status(msgspec.Struct):
    conditions: list[_Cond] | None = None


class _CRD(msgspec.Struct):
    status: _Status | None = None


_dec = msgspec.json.Decoder(_CRD)
_enc = msgspec.json.Encoder()


async def install_crds(client: KubeClient, timeout: float = 60.0) -> None:
    """Apply every CRD from :func:`thv.crdgen.crd_objects` and wait for Established."""
    from thv.crdgen import crd_objects

    objs = crd_objects()
    for obj in objs:
        await client.apply(CRDS, obj["metadata"]["name"], _enc.encode(obj), field_manager="thv-crds")
    with anyio.fail_after(timeout):
        for obj in objs:
            while True:
                crd = _dec.decode(await client.get(CRDS, obj["metadata"]["name"]))
                conds = {c.type: c.status for c in (crd.status.conditions if crd.status else None) or ()}
                if conds.get("Established") == "True":
                    if conds.get("NonStructuralSchema") == "True":
                        raise RuntimeError(f"CRD {obj['metadata']['name']} is not structural")
                    break
                await anyio.sleep(0.2)
