"""Finalizer guard: a config cannot go away while an MCPServer in its namespace uses it.

The finalizer is added to every live config. Once the config is being deleted, the
referencing servers are computed on demand from the reverse index (not stored): while
there are any, the finalizer stays, a ``DeletionBlocked`` condition (MCPExternalAuthConfig)
and a Warning Event name them; as soon as the last reference goes — the server is
deleted or its ref changes, both of which announce this config again — the finalizer
is removed. No retry loop spins while blocked: only a reference change re-runs this.
"""

from __future__ import annotations

from bus import Requeue
from thv.api.meta import CONDITION_TRUE, Condition
from thv.rbac import Need, declare
from thv.sources.events import ConfigEvent
from thv.sources.store import split_key
from thv.subscribers.config_kinds import CONFIG_KINDS
from thv.subscribers.context import Context
from thv.writers.apply import to_builtins
from thv.writers.finalizers import add_finalizer, remove_finalizer
from thv.writers.status import condition_bodies

NAME = "finalizer-guard"
NEEDS = declare(
    NAME,
    Need(
        "toolhive.stacklok.dev",
        ("mcpexternalauthconfigs", "mcptoolconfigs"),
        ("get", "list", "watch", "patch", "update"),
    ),
    Need(
        "toolhive.stacklok.dev",
        ("mcpexternalauthconfigs/finalizers", "mcptoolconfigs/finalizers"),
        ("update",),
    ),
    Need("toolhive.stacklok.dev", ("mcpexternalauthconfigs/status",), ("get", "patch", "update")),
    Need("", ("events",), ("create", "patch"), "DeletionBlocked events"),
)
BLOCKED = "DeletionBlocked"


async def guard_config(ctx: Context, event: ConfigEvent) -> Requeue | None:
    """Add, keep or release one config's finalizer from current state."""
    ck, key, announced = CONFIG_KINDS[event.kind], event.key, ctx.inventory.blocked_configs
    cfg = ctx.stores.of(ck.kind).get(key)
    if cfg is None:
        announced.pop(key, None)
        return None
    ns, name = split_key(key)
    finalizers = cfg.metadata.finalizers or []
    if not cfg.metadata.deletion_timestamp:
        if ck.finalizer not in finalizers:
            await add_finalizer(ctx.client, ck.resource, name, ns, ck.finalizer)
        return None
    if ck.finalizer not in finalizers:
        return None
    refs = [split_key(k)[1] for k in ctx.stores.referencing(ck.kind, key)]
    if not refs:
        await remove_finalizer(ctx.client, ck.resource, name, ns, ck.finalizer)
        announced.pop(key, None)
        return None
    message = f"{ck.kind} {name} is still referenced by MCPServers: {', '.join(refs)}"
    if ck.has_conditions:
        cond = Condition(
            type=BLOCKED,
            status=CONDITION_TRUE,
            reason="ReferencedByMCPServers",
            message=message,
            observed_generation=cfg.metadata.generation,
            last_transition_time="",
        )
        conditions = condition_bodies([cond])
        await ctx.status.write(ck.resource, name, ns, {"conditions": conditions}, to_builtins(cfg.status))
    if announced.get(key) != message:
        announced[key] = message
        await ctx.recorder.event(
            api_version=ck.resource.api_version,
            kind=ck.kind,
            name=name,
            namespace=ns or "",
            uid=cfg.metadata.uid,
            type_="Warning",
            reason=BLOCKED,
            message=message,
        )
    return None
