"""The operator process: watch sources feed the Store and the bus; subscribers reconcile.

One trace per change: every watch event opens a span (``watch <Kind> <TYPE>``) in which the
key is published; the bus runs each delivery as its child, and each API call inside is a
child of that — so a config change, the N servers it re-renders and every write they make
form one trace.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from opentelemetry import trace

from bus import Bus, DeliveryReport, RetryPolicy
from thv.kube.client import KubeClient
from thv.observability import metrics
from thv.operator.components import SOURCES, SUBSCRIBERS, Source
from thv.operator.context import Context
from thv.operator.events import EXTAUTH, MCPSERVER, TOOLCONFIG, ConfigEvent, ObjectEvent, ServerEvent
from thv.operator.leader import LeaderElector
from thv.render.settings import OperatorSettings
from thv.sources.informer import EventType, Informer
from thv.subscribers.config_kinds import CONFIG_KINDS

log = logging.getLogger("thv.operator")
_tracer = trace.get_tracer("thv.operator")


def _on_delivery(report: DeliveryReport) -> None:
    metrics.RECONCILES.labels(report.subscriber, str(report.outcome)).inc()
    metrics.RECONCILE_SECONDS.labels(report.subscriber).observe(report.handler_seconds)


def _refs(obj: Any, kind: str) -> list[str]:
    if obj is None:
        return []
    ref = obj.spec.external_auth_config_ref if kind == EXTAUTH else obj.spec.tool_config_ref
    return [f"{obj.metadata.namespace}/{ref.name}"] if ref is not None else []


@dataclass
class Operator:
    """Everything one operator process runs. ``await run()`` until cancelled."""

    client: KubeClient
    settings: OperatorSettings
    namespaces: list[str] | None = None
    resync_period: float = 300.0
    leader_election_namespace: str | None = None
    health_address: tuple[str, int] | None = None
    workers: int | None = None
    """workers per subscriber (``None``: each subscriber's own number, see ``components``)"""
    bus: Bus = field(init=False)
    ctx: Context = field(init=False)
    informers: list[Informer[Any]] = field(init=False, default_factory=list)
    ready: anyio.Event = field(init=False, default_factory=anyio.Event)
    elector: LeaderElector | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.bus = Bus(on_delivery=_on_delivery, drain_timeout=5.0)
        self.ctx = Context(self.client, self.settings, self.bus.publish)

    # -- routing: source events → bus events -------------------------------------------------
    def _router(self, source: Source) -> Callable[[EventType, str, Any, Any], Awaitable[None]]:
        kind = source.resource.kind
        publish = self.bus.publish
        stores = self.ctx.stores

        async def on_event(type_: EventType, key: str, obj: Any, old: Any) -> None:
            with _tracer.start_as_current_span(f"watch {kind} {type_}") as span:
                span.set_attribute("k8s.kind", kind)
                span.set_attribute("k8s.key", key)
                if source.owned:
                    for ref in obj.metadata.owner_references or ():
                        if ref.kind == MCPSERVER:
                            ns = obj.metadata.namespace
                            await publish(ServerEvent(kind=MCPSERVER, key=f"{ns}/{ref.name}", reason="OWNED"))
                    return
                if kind == MCPSERVER:
                    await publish(ServerEvent(kind=kind, key=key, reason=type_, obj=obj))
                    for ck in (EXTAUTH, TOOLCONFIG):
                        for ref in sorted(set(_refs(obj, ck)) | set(_refs(old, ck))):
                            await publish(ConfigEvent(kind=ck, key=ref, reason="REFERENCE"))
                    return
                await publish(ConfigEvent(kind=kind, key=key, reason=type_, obj=obj))
                if type_ != "RESYNC":
                    for server_key in stores.referencing(kind, key):
                        await publish(ServerEvent(kind=MCPSERVER, key=server_key, reason="REFERENCE"))

        return on_event

    def _subscribe(self) -> None:
        ctx = self.ctx
        for sub in SUBSCRIBERS:

            async def call(event: ObjectEvent, handler: Any = sub.handler) -> Any:
                return await handler(ctx, event)

            self.bus.subscribe(
                sub.topic,
                call,
                name=sub.name,
                key=lambda e: e.bus_key,
                workers=self.workers or sub.workers,
                maxsize=None,
                retry=RetryPolicy(),
            )

    def _build_informers(self) -> None:
        scopes: list[str | None] = list(self.namespaces) if self.namespaces else [None]
        for source in SOURCES:
            for ns in scopes:
                self.informers.append(
                    Informer(
                        self.client,
                        source.resource,
                        source.type,
                        source.store(self.ctx.stores),
                        self._router(source),
                        namespace=ns,
                        label_selector=source.selector,
                    )
                )

    async def resync_all(self) -> None:
        """Re-announce every key of every source (no API calls)."""
        with _tracer.start_as_current_span("resync"):
            for informer in self.informers:
                await informer.resync()

    async def _resync(self) -> None:
        while True:
            await anyio.sleep(self.resync_period * random.uniform(0.9, 1.1))
            await self.resync_all()

    async def _queue_gauges(self) -> None:
        while True:
            for name, st in self.bus.stats().items():
                metrics.QUEUE_DEPTH.labels(name).set(st.queued + st.delayed)
            await anyio.sleep(5)

    def is_ready(self) -> bool:
        return self.ready.is_set()

    async def run(self) -> None:
        """Run until cancelled (or until leadership is lost, which raises)."""
        self._build_informers()
        async with self.bus, anyio.create_task_group() as tg:
            if self.health_address is not None:
                from thv.observability.health import serve

                tg.start_soon(serve, self.is_ready, *self.health_address)
            for informer in self.informers:
                await tg.start(informer.run)
            log.info("caches synced: %s", ", ".join(f"{k}={n}" for k, n in self._store_sizes().items()))
            if self.leader_election_namespace:
                self.elector = LeaderElector(self.client, self.leader_election_namespace)
                tg.start_soon(self._lead, tg.cancel_scope)
                await self.elector.elected.wait()
            self._subscribe()
            for informer in self.informers:
                await informer.resync()  # announce everything once the writers run
            self.ready.set()
            tg.start_soon(self._resync)
            tg.start_soon(self._queue_gauges)
            try:
                await anyio.sleep_forever()
            finally:
                if self.elector is not None and self.elector.is_leader:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        await self.elector.release()

    async def _lead(self, scope: anyio.CancelScope) -> None:
        assert self.elector is not None
        await self.elector.run()
        log.error("leadership lost: stopping every writer")
        scope.cancel()
        raise RuntimeError("leadership lost")

    def _store_sizes(self) -> dict[str, int]:
        s = self.ctx.stores
        return {
            "MCPServer": len(s.servers),
            "MCPToolConfig": len(s.toolconfigs),
            "MCPExternalAuthConfig": len(s.extauths),
            "Deployment": len(s.deployments),
        }


__all__ = ["CONFIG_KINDS", "Operator"]
