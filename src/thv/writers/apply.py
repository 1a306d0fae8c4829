"""Server-side apply of owned objects, only when the live object differs."""

from __future__ import annotations

import enum
import hashlib
import logging
import time
from typing import Any

import msgspec

from thv.kube.client import KubeClient
from thv.kube.resources import Resource
from thv.writers.diff import is_subset

log = logging.getLogger("thv.writers")
_enc = msgspec.json.Encoder()


class _RV(msgspec.Struct, rename="camel"):
    resource_version: str = ""


class _Answer(msgspec.Struct):
    metadata: _RV = msgspec.field(default_factory=_RV)


_meta_dec = msgspec.json.Decoder(_Answer)


def to_builtins(obj: Any) -> Any:
    """A Struct (or builtins) as plain JSON-like builtins, omitting unset fields."""
    return msgspec.to_builtins(obj) if obj is not None else None


class Applied(enum.Enum):
    """What :meth:`Applier.apply` did."""

    SAME = "same"
    """the live object already holds the desired fields: nothing sent"""
    WROTE = "wrote"
    """an apply was sent"""
    HELD = "held"
    """not sent: the identical body was just applied and the Store has not caught up yet; the
    caller must look again after :attr:`Applier.consistency_timeout` (the live object might
    also be a newer, drifted one — only a later look from current state can tell)"""


class _Sent(msgspec.Struct):
    digest: bytes
    resource_version: str
    at: float


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


class Applier:
    """Applies desired objects with field manager ``thv`` when they differ from live state.

    Consistency tracking (as kopf does): after an apply, the Store may still hold the older
    object until the watch echoes the write. While the Store has not yet seen the
    resourceVersion the apply returned, re-sending the *identical* body is skipped, for at most
    ``consistency_timeout`` seconds; any other body, or after the window, is compared as usual.
    Only a digest of each body is kept, and only while it can matter: an entry goes once the
    live object holds the desired fields, and entries older than the window are swept.
    """

    def __init__(self, client: KubeClient, consistency_timeout: float = 5.0) -> None:
        self.client = client
        self.consistency_timeout = consistency_timeout
        #: applies sent (for tests and benchmarks)
        self.writes = 0
        self._sent: dict[tuple[str, str | None, str], _Sent] = {}
        self._swept = time.monotonic()

    def _in_flight(self, key: tuple[str, str | None, str], body: bytes, live: msgspec.Struct | None) -> bool:
        sent = self._sent.get(key)
        if sent is None:
            return False
        live_rv = getattr(getattr(live, "metadata", None), "resource_version", None)
        if live_rv == sent.resource_version or time.monotonic() - sent.at > self.consistency_timeout:
            del self._sent[key]
            return False
        return sent.digest == _digest(body)

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept < self.consistency_timeout:
            return
        self._swept = now
        for key in [k for k, sent in self._sent.items() if now - sent.at > self.consistency_timeout]:
            del self._sent[key]

    async def apply(self, res: Resource, desired: msgspec.Struct, live: msgspec.Struct | None) -> Applied:
        """Apply ``desired`` unless ``live`` already holds it (see :class:`Applied`).

        ``desired`` is a Struct or dict holding only thv's fields (apiVersion, kind,
        metadata.name/namespace/labels/annotations/ownerReferences, spec …), sent exactly as
        given: the renderers put the label ``app.kubernetes.io/managed-by=thv`` on every object,
        so what ``thv render`` prints is what is written.
        """
        body = to_builtins(desired)
        meta = body["metadata"]
        name, ns = meta["name"], meta.get("namespace")
        key = (str(res), ns, name)
        self._sweep()
        if live is not None and is_subset(body, to_builtins(live)):
            self._sent.pop(key, None)
            return Applied.SAME
        encoded = _enc.encode(body)
        if self._in_flight(key, encoded, live):
            return Applied.HELD
        log.info("apply %s %s/%s", res.kind, ns, name)
        answer = _meta_dec.decode(await self.client.apply(res, name, encoded, ns))
        self._sent[key] = _Sent(_digest(encoded), answer.metadata.resource_version, time.monotonic())
        self.writes += 1
        return Applied.WROTE

    async def delete(
        self, res: Resource, name: str, namespace: str | None, live: msgspec.Struct | None
    ) -> bool:
        """Delete an object thv no longer wants (only if it exists in the store)."""
        if live is None:
            return False
        log.info("delete %s %s/%s", res.kind, namespace, name)
        await self.client.delete(res, name, namespace)
        self.writes += 1
        return True
