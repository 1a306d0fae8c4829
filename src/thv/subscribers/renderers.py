"""The two renderers: both render the MCPServer from current state and apply what differs.

* workload renderer (the "flag renderer" in flag mode): Deployment, Service, ServiceAccounts,
  Role, RoleBinding and the inline-authz ConfigMap; in flag mode the Deployment carries the
  runner flags (incl. ``--token-exchange-*``), in ConfigMap mode the runconfig volume and the
  ``runconfig-checksum`` pod annotation.
* ConfigMap renderer: the ``<name>-runconfig`` RunConfig ConfigMap in ConfigMap mode; in flag
  mode it removes one left from ConfigMap mode, so switching modes converges.

When a reference cannot be resolved they touch nothing (the status writer reports why).
"""

from __future__ import annotations

from bus import Requeue
from thv.operator.context import Context
from thv.operator.events import ServerEvent
from thv.rbac import WRITE, Need, declare
from thv.render.names import runconfig_configmap_name
from thv.subscribers.owned import RESOURCES, live
from thv.subscribers.resolve import Resolved, Unresolved, resolve

WORKLOAD = "workload-renderer"
CONFIGMAP = "configmap-renderer"
declare(
    WORKLOAD,
    Need("apps", ("deployments",), WRITE),
    Need("", ("services", "serviceaccounts", "configmaps"), WRITE),
    Need("rbac.authorization.k8s.io", ("roles", "rolebindings"), WRITE),
    Need(
        "toolhive.stacklok.dev",
        ("mcpservers/finalizers",),
        ("update",),
        "blockOwnerDeletion on owned objects",
    ),
    # thv may only grant what it holds (RBAC escalation rule): the proxy-runner Role's rules
    Need("apps", ("statefulsets",), WRITE, "proxy-runner Role"),
    Need("", ("pods",), ("get", "list", "watch"), "proxy-runner Role"),
    Need("", ("pods/log",), ("get",), "proxy-runner Role"),
    Need("", ("pods/attach",), ("create", "get"), "proxy-runner Role"),
)
declare(CONFIGMAP, Need("", ("configmaps",), WRITE))


def _wait(res: Unresolved | None) -> Requeue | None:
    """Nothing to apply: re-check later only for inputs thv does not watch."""
    return Requeue(res.retry_after) if res is not None and res.retry_after else None


async def render_workload(ctx: Context, event: ServerEvent) -> Requeue | None:
    """Apply the Deployment, Service, RBAC and authz ConfigMap of one MCPServer."""
    res = await resolve(ctx, event.key)
    if not isinstance(res, Resolved):
        return _wait(res)
    ns = res.server.metadata.namespace or ""
    for obj in res.desired.objects():
        if obj.kind == "ConfigMap" and obj is res.desired.runconfig_configmap:
            continue
        name = obj.metadata.name or ""
        await ctx.applier.apply(RESOURCES[obj.kind], obj, live(ctx.stores, obj.kind, ns, name))
    for kind, name in res.desired.unwanted:
        if kind == "ConfigMap" and name == runconfig_configmap_name(res.server.metadata.name or ""):
            continue
        await ctx.applier.delete(RESOURCES[kind], name, ns, live(ctx.stores, kind, ns, name))
    return None


async def render_configmap(ctx: Context, event: ServerEvent) -> Requeue | None:
    """Apply (ConfigMap mode) or remove (flag mode) the RunConfig ConfigMap."""
    res = await resolve(ctx, event.key)
    if not isinstance(res, Resolved):
        return _wait(res)
    ns = res.server.metadata.namespace or ""
    name = runconfig_configmap_name(res.server.metadata.name or "")
    current = live(ctx.stores, "ConfigMap", ns, name)
    cm = res.desired.runconfig_configmap
    if cm is not None:
        await ctx.applier.apply(RESOURCES["ConfigMap"], cm, current)
    else:
        await ctx.applier.delete(RESOURCES["ConfigMap"], name, ns, current)
    return None
