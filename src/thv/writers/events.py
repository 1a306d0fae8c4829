"""Kubernetes Events (core/v1), emitted when a condition changes."""

from __future__ import annotations

import logging

import msgspec

from thv.kube.client import KubeClient
from thv.kube.errors import ApiError
from thv.kube.resources import EVENTS
from thv.writers.status import now

log = logging.getLogger("thv.writers")
_enc = msgspec.json.Encoder()


class Recorder:
    """Posts Events about objects; failures are logged, never raised."""

    def __init__(self, client: KubeClient, component: str = "thv-operator") -> None:
        self.client = client
        self.component = component

    async def event(
        self,
        *,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        uid: str | None,
        type_: str,
        reason: str,
        message: str,
    ) -> None:
        """Emit one Event (``type_`` is ``Normal`` or ``Warning``)."""
        ts = now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": api_version,
                "kind": kind,
                "name": name,
                "namespace": namespace,
                **({"uid": uid} if uid else {}),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        try:
            await self.client.create(EVENTS, _enc.encode(body), namespace)
        except ApiError as exc:
            log.warning("could not record event %s on %s %s/%s: %s", reason, kind, namespace, name, exc)
