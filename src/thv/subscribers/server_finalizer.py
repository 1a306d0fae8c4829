"""MCPServer finalizer (upstream's ``mcpserver.toolhive.stacklok.dev/finalizer``).

The proxy runner creates a StatefulSet ``<name>`` and a Service ``mcp-<name>-headless``
without ownerReferences; on deletion thv removes them (and the RunConfig ConfigMap), sets
phase Terminating, then releases the finalizer. Owned objects go by garbage collection.
"""

from __future__ import annotations

from bus import Requeue
from thv.kube.resources import CONFIGMAPS, MCPSERVERS, SERVICES, Resource
from thv.rbac import Need, declare
from thv.render.names import (
    FINALIZER_MCPSERVER,
    headless_service_name,
    runconfig_configmap_name,
    statefulset_name,
)
from thv.sources.events import ServerEvent
from thv.subscribers.context import Context
from thv.writers.apply import to_builtins
from thv.writers.finalizers import add_finalizer, remove_finalizer
from thv.writers.objects import delete_if_exists

NAME = "server-finalizer"
FINALIZER = FINALIZER_MCPSERVER
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
declare(
    NAME,
    Need("toolhive.stacklok.dev", ("mcpservers",), ("get", "list", "watch", "patch", "update")),
    Need("toolhive.stacklok.dev", ("mcpservers/finalizers",), ("update",)),
    Need("apps", ("statefulsets",), ("delete",)),
    Need("", ("services", "configmaps"), ("delete",)),
)


async def finalize_server(ctx: Context, event: ServerEvent) -> Requeue | None:
    """Add the finalizer to live servers; clean up and release it on deletion."""
    server = ctx.stores.servers.get(event.key)
    if server is None:
        return None
    ns, name = server.metadata.namespace or "", server.metadata.name or ""
    finalizers = server.metadata.finalizers or []
    if not server.metadata.deletion_timestamp:
        if FINALIZER not in finalizers:
            await add_finalizer(ctx.client, MCPSERVERS, name, ns, FINALIZER)
        return None
    if FINALIZER not in finalizers:
        return None
    await ctx.status.write(
        MCPSERVERS,
        name,
        ns,
        {"phase": "Terminating", "message": "MCP server is being terminated"},
        to_builtins(server.status),
    )
    await delete_if_exists(ctx.client, STATEFULSETS, statefulset_name(name), ns)
    await delete_if_exists(ctx.client, SERVICES, headless_service_name(name), ns)
    await delete_if_exists(ctx.client, CONFIGMAPS, runconfig_configmap_name(name), ns)
    await remove_finalizer(ctx.client, MCPSERVERS, name, ns, FINALIZER)
    return None
