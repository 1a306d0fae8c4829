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

from bus import Bus, DeliveryReport, Requeue, RetryPolicy
from thv.kube.client import KubeClient
from thv.observability import metrics
from thv.operator.leader import LeaderElector
from thv.render.settings import OperatorSettings
from thv.sources.events import ObjectEvent
from thv.sources.informer import EventType, Informer
from thv.sources.kinds import BY_NAME, KINDS, Kind, Route
from thv.sources.routing import route
from thv.sources.store import KubeObject
from thv.subscribers.context import Context
from thv.subscribers.registry import SUBSCRIBERS

log = logging.getLogger("thv.operator")
_tracer = trace.get_tracer("thv.operator")


def _on_delivery(report: DeliveryReport) -> None:
    metrics.RECONCILES.labels(report.subscriber, str(report.outcome)).inc()
    metrics.RECONCILE_SECONDS.labels(report.subscriber).observe(report.handler_seconds)


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
    synced: anyio.Event = field(init=False, default_factory=anyio.Event)
    """Caches synced: what ``/readyz`` reports. A standby replica is ready (it can take over at
    once) although it does not write until it leads; ``ready`` means leading and reconciling."""
    elector: LeaderElector | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.bus = Bus(on_delivery=_on_delivery, drain_timeout=5.0)
        self.ctx = Context(self.client, self.settings, self.bus.publish)

    # -- routing: source events → bus events (declared per kind in thv.sources.kinds) --------
    def _router(
        self, kind: Kind
    ) -> Callable[[EventType, str, KubeObject, KubeObject | None], Awaitable[None]]:
        publish = self.bus.publish
        stores = self.ctx.stores

        async def on_event(type_: EventType, key: str, obj: KubeObject, old: KubeObject | None) -> None:
            with _tracer.start_as_current_span(f"watch {kind.name} {type_}") as span:
                span.set_attribute("k8s.kind", kind.name)
                span.set_attribute("k8s.key", key)
                for event in route(kind, type_, key, obj, old, stores):
                    await publish(event)

        return on_event

    def _subscribe(self) -> None:
        ctx = self.ctx
        for sub in SUBSCRIBERS:

            async def call(event: ObjectEvent, deliver: _Deliver = sub.deliver) -> Requeue | None:
                return await deliver(ctx, event)

            self.bus.subscribe(
                sub.topic,
                call,
                name=sub.name,
                key=_bus_key,
                workers=self.workers or sub.workers,
                maxsize=None,
                retry=RetryPolicy(),
            )

    def _build_informers(self) -> None:
        scopes: list[str | None] = list(self.namespaces) if self.namespaces else [None]
        for kind in KINDS:
            for ns in scopes:
                self.informers.append(
                    Informer(
                        self.client,
                        kind.resource,
                        kind.type,
                        self.ctx.stores.of(kind.name),
                        self._router(kind),
                        namespace=ns,
                        label_selector=kind.selector,
                    )
                )

    async def announce_all(self) -> None:
        """Announce every MCPServer and config key again (no API calls). Owned objects and pods
        are not announced: each would only name its MCPServer, which is announced itself."""
        for informer in self.informers:
            if BY_NAME[informer.store.kind].route in (Route.SERVER, Route.CONFIG):
                await informer.resync()
        metrics.RESYNCS.inc()

    async def resync_all(self) -> None:
        """The periodic resync: :meth:`announce_all` in a span of its own."""
        with _tracer.start_as_current_span("resync"):
            await self.announce_all()

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

    def is_synced(self) -> bool:
        return self.synced.is_set()

    async def run(self) -> None:
        """Run until cancelled (or until leadership is lost, which raises)."""
        self._build_informers()
        async with self.bus, anyio.create_task_group() as tg:
            if self.health_address is not None:
                from thv.observability.health import serve

                tg.start_soon(serve, self.is_synced, *self.health_address)
            for informer in self.informers:  # the first lists run concurrently
                tg.start_soon(informer.run)
            for informer in self.informers:
                await informer.synced.wait()
            log.info("caches synced: %s", ", ".join(f"{k}={n}" for k, n in self._store_sizes().items()))
            self.synced.set()
            if self.leader_election_namespace:
                self.elector = LeaderElector(self.client, self.leader_election_namespace)
                tg.start_soon(self._lead, tg.cancel_scope)
                await self.elector.elected.wait()
            self._subscribe()
            await self.announce_all()  # everything once the writers run
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
        return {kind.name: len(self.ctx.stores.of(kind.name)) for kind in KINDS}


_Deliver = Callable[[Context, ObjectEvent], Awaitable[Requeue | None]]


def _bus_key(event: ObjectEvent) -> str:
    return event.bus_key


__all__ = ["Operator"]
