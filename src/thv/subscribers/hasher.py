"""Hasher: a config's spec hash into its status, and onto every referencing MCPServer.

Level-triggered: from the current config and the reverse index it writes
``status.configHash``/``observedGeneration`` (and MCPToolConfig's ``referencingServers``)
when they differ, and the hash annotation on each referencing MCPServer whose annotation
differs. Nothing is written when everything already matches.
"""

from __future__ import annotations

from bus import Requeue
from thv.hashing import config_hash
from thv.kube.resources import MCPSERVERS
from thv.rbac import WRITE, Need, declare
from thv.sources.events import ConfigEvent
from thv.sources.store import split_key
from thv.subscribers.config_kinds import CONFIG_KINDS
from thv.subscribers.context import Context
from thv.writers.apply import to_builtins
from thv.writers.objects import annotate

NAME = "hasher"
NEEDS = declare(
    NAME,
    Need(
        "toolhive.stacklok.dev",
        ("mcpexternalauthconfigs/status", "mcptoolconfigs/status"),
        ("get", "patch", "update"),
    ),
    Need("toolhive.stacklok.dev", ("mcpservers",), WRITE, "hash annotation on referencing servers"),
)


async def reconcile_config_hash(ctx: Context, event: ConfigEvent) -> Requeue | None:
    """Bring one config's status hash and its servers' annotations up to date."""
    ck, key = CONFIG_KINDS[event.kind], event.key
    cfg = ctx.stores.of(ck.kind).get(key)
    if cfg is None:
        return None
    ns, name = split_key(key)
    digest = config_hash(cfg.spec)
    refs = ctx.stores.referencing(ck.kind, key)
    desired: dict[str, object] = {"configHash": digest, "observedGeneration": cfg.metadata.generation}
    if ck.lists_referencing_servers:
        desired["referencingServers"] = [split_key(k)[1] for k in refs]
    await ctx.status.write(ck.resource, name, ns, desired, to_builtins(cfg.status))
    for server_key in refs:
        server = ctx.stores.servers.get(server_key)
        if server is None or server.metadata.deletion_timestamp:
            continue
        s_ns, s_name = split_key(server_key)
        await annotate(
            ctx.client, MCPSERVERS, s_name, s_ns or "", ck.annotation, digest, server.metadata.annotations
        )
    return None
