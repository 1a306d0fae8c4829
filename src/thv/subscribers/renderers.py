"""The two renderers: both render the MCPServer from current state and apply what differs.

* workload renderer (the "flag renderer" in flag mode): Deployment, Service, ServiceAccounts,
  Role, RoleBinding and the inline-authz ConfigMap; in flag mode the Deployment carries the
  runner flags (incl. ``--token-exchange-*``), in ConfigMap mode the runconfig volume and the
  ``runconfig-checksum`` pod annotation.
* ConfigMap renderer: the ``<name>-runconfig`` RunConfig ConfigMap in ConfigMap mode; in flag
  mode it removes one left from ConfigMap mode, so switching modes converges.

When a reference cannot be resolved they touch nothing (the status writer reports why).

When the API server rejects an object thv renders (422 Invalid, 400, 413: e.g. a RunConfig
ConfigMap over 1 MiB, an invalid resource quantity or label override) the same body would be
rejected again, so the renderer records the failure (:func:`apply_failure`), tells the status
writer once, and re-checks only after :data:`REJECTED_RETRY` seconds or on the next change —
instead of retrying in a loop while the MCPServer looks healthy.
"""

from __future__ import annotations

import anyio

from bus import Requeue
from thv.api.k8s import ConfigMap
from thv.kube.errors import ApiError
from thv.rbac import WRITE, Need, declare
from thv.render.desired import DesiredObject
from thv.render.names import runconfig_configmap_name
from thv.sources.events import MCPSERVER, ServerEvent
from thv.sources.kinds import OWNED_RESOURCES as RESOURCES
from thv.subscribers.context import ApplyFailure, Context
from thv.subscribers.gather import Resolved, Unresolved, resolve_server
from thv.writers.apply import Applied, to_builtins
from thv.writers.diff import is_subset

#: ConfigMap mode: re-check after this many seconds when the Deployment waits for its RunConfig
RUNCONFIG_WAIT = 2.0
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

#: answers that mean "this body will never be accepted" (not worth an immediate retry)
REJECTED_CODES = frozenset({400, 413, 422})
#: re-check a rejected object after this many seconds (something outside thv may change)
REJECTED_RETRY = 300.0


def apply_failure(ctx: Context, key: str) -> ApplyFailure | None:
    """The current rejection of one of the MCPServer's objects, if any (for the status writer)."""
    failures = ctx.inventory.apply_failures
    return failures.get((WORKLOAD, key)) or failures.get((CONFIGMAP, key))


async def _notify(ctx: Context, key: str) -> None:
    await ctx.publish(ServerEvent(kind=MCPSERVER, key=key, reason="RETRY"))


async def _rejected(ctx: Context, renderer: str, key: str, failure: ApplyFailure) -> Requeue:
    failures = ctx.inventory.apply_failures
    if failures.get((renderer, key)) != failure:
        failures[(renderer, key)] = failure
        await _notify(ctx, key)  # once per distinct failure: no loop through the other renderer
    return Requeue(REJECTED_RETRY)


async def _accepted(ctx: Context, renderer: str, key: str) -> None:
    if ctx.inventory.apply_failures.pop((renderer, key), None) is not None:
        await _notify(ctx, key)


def _wait(ctx: Context, renderer: str, key: str, res: Unresolved | None) -> Requeue | None:
    """Nothing to apply: re-check later only for inputs thv does not watch."""
    ctx.inventory.apply_failures.pop((renderer, key), None)  # gone, or not renderable now
    return Requeue(res.retry_after) if res is not None and res.retry_after else None


async def render_workload(ctx: Context, event: ServerEvent) -> Requeue | None:
    """Apply the Deployment, Service, RBAC and authz ConfigMap of one MCPServer.

    Applied in three concurrent batches: the ServiceAccounts, Role, Service and authz
    ConfigMap; then the RoleBinding (binding a Role thv may not ``bind`` is checked against the
    Role, which must exist); then the Deployment (its pods need both)."""
    res = await resolve_server(ctx, event.key)
    if not isinstance(res, Resolved):
        return _wait(ctx, WORKLOAD, event.key, res)
    ns = res.server.metadata.namespace or ""
    runconfig = res.desired.runconfig_configmap
    objs = [o for o in res.desired.objects() if not (o.kind == "ConfigMap" and o is runconfig)]
    first = [o for o in objs if o.kind not in ("RoleBinding", "Deployment")]
    bindings = [o for o in objs if o.kind == "RoleBinding"]
    deployments = [o for o in objs if o.kind == "Deployment"]
    waiting = runconfig is not None and not _runconfig_current(ctx, ns, runconfig)
    if waiting:
        # ConfigMap mode: the runner reads runconfig.json once, at start, so a pod rolled by a
        # new checksum before the ConfigMap renderer wrote the new RunConfig could start with
        # the old one. The Deployment waits for it (the ConfigMap's watch event, or the requeue,
        # brings this renderer back): upstream writes the two in this order too.
        deployments = []
    held = False
    for batch in (first, bindings, deployments):
        outcomes = await _apply_all(ctx, ns, batch)
        for obj, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, ApiError):
                if outcome.code not in REJECTED_CODES:
                    raise outcome
                failure = ApplyFailure(obj.kind, obj.metadata.name or "", outcome.message)
                return await _rejected(ctx, WORKLOAD, event.key, failure)
            held |= outcome is Applied.HELD
    await _accepted(ctx, WORKLOAD, event.key)
    for kind, name in res.desired.unwanted:
        if kind == "ConfigMap" and name == runconfig_configmap_name(res.server.metadata.name or ""):
            continue
        await ctx.applier.delete(RESOURCES[kind], name, ns, ctx.stores.live(kind, ns, name))
    if waiting:
        return Requeue(RUNCONFIG_WAIT)
    return _recheck(ctx) if held else None


async def _apply_all(ctx: Context, ns: str, objs: list[DesiredObject]) -> list[Applied | ApiError]:
    """Apply ``objs`` concurrently; each one's outcome, or the API error it met (in order)."""
    outcomes: list[Applied | ApiError] = [Applied.SAME] * len(objs)

    async def one(i: int) -> None:
        obj = objs[i]
        name = obj.metadata.name or ""
        try:
            outcomes[i] = await ctx.applier.apply(
                RESOURCES[obj.kind], obj, ctx.stores.live(obj.kind, ns, name)
            )
        except ApiError as err:
            outcomes[i] = err

    if len(objs) <= 1:
        for i in range(len(objs)):
            await one(i)
        return outcomes
    async with anyio.create_task_group() as tg:
        for i in range(len(objs)):
            tg.start_soon(one, i)
    return outcomes


def _runconfig_current(ctx: Context, ns: str, desired: ConfigMap) -> bool:
    """Whether the live RunConfig ConfigMap carries what is desired now."""
    live = ctx.stores.live("ConfigMap", ns, desired.metadata.name or "")
    return live is not None and is_subset(to_builtins(desired.data), to_builtins(getattr(live, "data", None)))


def _recheck(ctx: Context) -> Requeue:
    """An apply was held back because the Store had not caught up with thv's own last write:
    look again from current state once that window has passed, so an edit that landed on top
    of the write (drift) is never left in place."""
    return Requeue(ctx.applier.consistency_timeout + 0.1)


async def render_configmap(ctx: Context, event: ServerEvent) -> Requeue | None:
    """Apply (ConfigMap mode) or remove (flag mode) the RunConfig ConfigMap."""
    res = await resolve_server(ctx, event.key)
    if not isinstance(res, Resolved):
        return _wait(ctx, CONFIGMAP, event.key, res)
    ns = res.server.metadata.namespace or ""
    name = runconfig_configmap_name(res.server.metadata.name or "")
    current = ctx.stores.live("ConfigMap", ns, name)
    cm = res.desired.runconfig_configmap
    if cm is not None:
        try:
            outcome = await ctx.applier.apply(RESOURCES["ConfigMap"], cm, current)
        except ApiError as err:
            if err.code not in REJECTED_CODES:
                raise
            return await _rejected(ctx, CONFIGMAP, event.key, ApplyFailure("ConfigMap", name, err.message))
        await _accepted(ctx, CONFIGMAP, event.key)
        if outcome is Applied.HELD:
            return _recheck(ctx)
    else:
        ctx.inventory.apply_failures.pop((CONFIGMAP, event.key), None)
        await ctx.applier.delete(RESOURCES["ConfigMap"], name, ns, current)
    return None
