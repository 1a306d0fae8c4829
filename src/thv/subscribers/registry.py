"""Every subscriber, declared once: its name, the event type it reacts to, its handler and its
workers. Importing this module registers every subscriber's RBAC needs (:mod:`thv.rbac`).

A new subscriber is a module here with ``NAME``, a ``declare(...)`` of what it needs and one
handler ``async def (ctx: Context, event: <Topic>) -> Requeue | None``, plus one row below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bus import Requeue
from thv.sources.events import ConfigEvent, ObjectEvent, ServerEvent, ServerStatusEvent
from thv.subscribers import finalizer_guard, hasher, renderers, restarter, server_finalizer, server_status
from thv.subscribers.context import Context

E = TypeVar("E", bound=ObjectEvent)
Handler = Callable[[Context, E], Awaitable[Requeue | None]]


@dataclass(frozen=True, slots=True)
class Subscriber(Generic[E]):
    name: str
    topic: type[E]
    handler: Handler[E]
    workers: int = 4

    async def deliver(self, ctx: Context, event: ObjectEvent) -> Requeue | None:
        """Hand ``event`` (delivered on :attr:`topic`) to the handler."""
        assert isinstance(event, self.topic)
        return await self.handler(ctx, event)


SUBSCRIBERS: tuple[Subscriber[ConfigEvent] | Subscriber[ServerEvent] | Subscriber[ServerStatusEvent], ...] = (
    Subscriber(hasher.NAME, ConfigEvent, hasher.reconcile_config_hash),
    Subscriber(finalizer_guard.NAME, ConfigEvent, finalizer_guard.guard_config),
    Subscriber(server_finalizer.NAME, ServerEvent, server_finalizer.finalize_server),
    # the workload renderer makes six sequential API calls per server (RBAC, Deployment,
    # Service): with 4 workers it created only 3-4 Deployments/s on a 1,000-server cold start
    # while the apiserver had room; more workers keep the apiserver, not thv, the limit
    Subscriber(renderers.WORKLOAD, ServerEvent, renderers.render_workload, workers=16),
    # as many: in ConfigMap mode the workload renderer holds a Deployment until its RunConfig
    # ConfigMap is written
    Subscriber(renderers.CONFIGMAP, ServerEvent, renderers.render_configmap, workers=16),
    Subscriber(server_status.NAME, ServerStatusEvent, server_status.write_status, workers=8),
    Subscriber(restarter.NAME, ServerEvent, restarter.restart),
)
