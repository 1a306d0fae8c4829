"""Small writes on objects thv does not render: an annotation on an MCPServer (config hashes,
processed restarts), the deletion of proxy pods (immediate restarts) and of the objects the proxy
runner created without an owner (server finalizer)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec

from thv.kube.client import KubeClient
from thv.kube.resources import PODS, Resource

log = logging.getLogger("thv.writers")
_enc = msgspec.json.Encoder()


class _PodMeta(msgspec.Struct, rename="camel"):
    name: str = ""
    deletion_timestamp: str | None = None


class _Pod(msgspec.Struct):
    metadata: _PodMeta = msgspec.field(default_factory=_PodMeta)


class _ListMeta(msgspec.Struct, rename="camel"):
    continue_: str | None = msgspec.field(default=None, name="continue")


class _PodList(msgspec.Struct):
    items: list[_Pod] | None = None
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)


_pods = msgspec.json.Decoder(_PodList)


async def delete_pods(client: KubeClient, namespace: str, label_selector: str) -> list[str]:
    """Delete every pod in ``namespace`` matching ``label_selector`` that is not already
    terminating (their controller replaces them); the names deleted."""
    deleted: list[str] = []
    token: str | None = None
    while True:
        page = _pods.decode(
            await client.list(PODS, namespace, label_selector=label_selector, continue_token=token)
        )
        for pod in page.items or ():
            if pod.metadata.deletion_timestamp is None and pod.metadata.name:
                log.info("delete pod %s/%s (immediate restart)", namespace, pod.metadata.name)
                await client.delete(PODS, pod.metadata.name, namespace)
                deleted.append(pod.metadata.name)
        token = page.metadata.continue_
        if not token:
            return deleted


async def annotate(
    client: KubeClient,
    res: Resource,
    name: str,
    namespace: str,
    key: str,
    value: str,
    live: Mapping[str, str] | None,
) -> bool:
    """Set one annotation (a merge patch of that key only), unless ``live`` (the object's
    current annotations) already holds it."""
    if (live or {}).get(key) == value:
        return False
    patch = {"metadata": {"annotations": {key: value}}}
    log.info("annotate %s %s/%s %s", res.kind, namespace, name, key)
    await client.patch(res, name, _enc.encode(patch), namespace, patch_type="merge")
    return True


async def delete_if_exists(client: KubeClient, res: Resource, name: str, namespace: str) -> None:
    """Delete an object thv did not render (404 is fine: the goal is reached)."""
    log.info("delete %s %s/%s", res.kind, namespace, name)
    await client.delete(res, name, namespace)
