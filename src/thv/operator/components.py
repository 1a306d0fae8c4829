"""Every part of the operator, declared once: watch sources and bus subscriptions.

Importing this module registers all RBAC declarations (see :mod:`thv.rbac`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bus import Requeue
from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.api.k8s import ConfigMap, Deployment, Role, RoleBinding, Service, ServiceAccount
from thv.kube.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    MCPEXTERNALAUTHCONFIGS,
    MCPSERVERS,
    MCPTOOLCONFIGS,
    ROLEBINDINGS,
    ROLES,
    SERVICEACCOUNTS,
    SERVICES,
    Resource,
)
from thv.operator.context import Context, Stores
from thv.operator.events import ConfigEvent, ObjectEvent, ServerEvent
from thv.rbac import READ, Need, declare
from thv.render.names import LABEL_APP_MANAGED_BY, MANAGED_BY_THV
from thv.sources.store import Store
from thv.subscribers import finalizer_guard, hasher, renderers, restarter, server_finalizer, server_status
from thv.subscribers.config_kinds import CONFIG_KINDS

OWNED_SELECTOR = f"{LABEL_APP_MANAGED_BY}={MANAGED_BY_THV}"


@dataclass(frozen=True, slots=True)
class Source:
    """One watched kind: where it lives, its type, its store, and its label selector."""

    resource: Resource
    type: type
    store: Callable[[Stores], Store[Any]]
    selector: str | None = None
    owned: bool = False


SOURCES = (
    Source(MCPSERVERS, MCPServer, lambda s: s.servers),
    Source(MCPTOOLCONFIGS, MCPToolConfig, lambda s: s.toolconfigs),
    Source(MCPEXTERNALAUTHCONFIGS, MCPExternalAuthConfig, lambda s: s.extauths),
    Source(DEPLOYMENTS, Deployment, lambda s: s.deployments, OWNED_SELECTOR, True),
    Source(SERVICES, Service, lambda s: s.services, OWNED_SELECTOR, True),
    Source(CONFIGMAPS, ConfigMap, lambda s: s.configmaps, OWNED_SELECTOR, True),
    Source(SERVICEACCOUNTS, ServiceAccount, lambda s: s.serviceaccounts, OWNED_SELECTOR, True),
    Source(ROLES, Role, lambda s: s.roles, OWNED_SELECTOR, True),
    Source(ROLEBINDINGS, RoleBinding, lambda s: s.rolebindings, OWNED_SELECTOR, True),
)
declare("watch-sources", *(Need(s.resource.group, (s.resource.plural,), READ) for s in SOURCES))

Handler = Callable[[Context, Any], Awaitable[Requeue | None]]


@dataclass(frozen=True, slots=True)
class Subscriber:
    name: str
    topic: type[ObjectEvent]
    handler: Handler
    workers: int = 4


async def _hash(ctx: Context, ev: ConfigEvent) -> Requeue | None:
    await hasher.reconcile_config_hash(ctx, CONFIG_KINDS[ev.kind], ev.key)
    return None


_announced: dict[str, str] = {}


async def _guard(ctx: Context, ev: ConfigEvent) -> Requeue | None:
    await finalizer_guard.guard_config(ctx, CONFIG_KINDS[ev.kind], ev.key, _announced)
    return None


async def _finalize(ctx: Context, ev: ServerEvent) -> Requeue | None:
    await server_finalizer.finalize_server(ctx, ev)
    return None


SUBSCRIBERS = (
    Subscriber(hasher.NAME, ConfigEvent, _hash),
    Subscriber(finalizer_guard.NAME, ConfigEvent, _guard),
    Subscriber(server_finalizer.NAME, ServerEvent, _finalize),
    # the workload renderer makes six sequential API calls per server (RBAC, Deployment,
    # Service): with 4 workers it created only 3-4 Deployments/s on a 1,000-server cold start
    # while the apiserver had room; more workers keep the apiserver, not thv, the limit
    Subscriber(renderers.WORKLOAD, ServerEvent, renderers.render_workload, workers=16),
    Subscriber(renderers.CONFIGMAP, ServerEvent, renderers.render_configmap, workers=8),
    Subscriber(server_status.NAME, ServerEvent, server_status.write_status, workers=8),
    Subscriber(restarter.NAME, ServerEvent, restarter.restart),
)
