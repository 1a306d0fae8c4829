"""Hasher: a config's spec hash into its status, and onto every referencing MCPServer.

Level-triggered: from the current config and the reverse index it writes
``status.configHash``/``observedGeneration`` (and MCPToolConfig's ``referencingServers``)
when they differ, and the hash annotation on each referencing MCPServer whose annotation
differs. Nothing is written when everything already matches.
"""

from __future__ import annotations

import msgspec

from thv.hashing import config_hash
from thv.kube.resources import MCPSERVERS
from thv.operator.context import Context
from thv.rbac import WRITE, Need, declare
from thv.sources.store import split_key
from thv.subscribers.config_kinds import ConfigKind
from thv.writers.apply import to_builtins

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
_enc = msgspec.json.Encoder()


async def reconcile_config_hash(ctx: Context, ck: ConfigKind, key: str) -> None:
    """Bring one config's status hash and its servers' annotations up to date."""
    cfg = ck.store(ctx.stores).get(key)
    if cfg is None:
        return
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
        if (server.metadata.annotations or {}).get(ck.annotation) == digest:
            continue
        s_ns, s_name = split_key(server_key)
        patch = {"metadata": {"annotations": {ck.annotation: digest}}}
        await ctx.client.patch(MCPSERVERS, s_name, _enc.encode(patch), s_ns, patch_type="merge")
