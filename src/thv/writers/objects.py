"""Writes of a restart request: delete an MCPServer's proxy pods, record the processed request."""

from __future__ import annotations

import logging

import msgspec

from thv.kube.client import KubeClient
from thv.kube.resources import MCPSERVERS, PODS

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


async def annotate_server(
    client: KubeClient, name: str, namespace: str, key: str, value: str, live: dict[str, str] | None
) -> bool:
    """Set one annotation on an MCPServer (a merge patch of that key only), unless ``live``
    (its current annotations) already holds it."""
    if (live or {}).get(key) == value:
        return False
    patch = {"metadata": {"annotations": {key: value}}}
    await client.patch(MCPSERVERS, name, _enc.encode(patch), namespace, patch_type="merge")
    return True
