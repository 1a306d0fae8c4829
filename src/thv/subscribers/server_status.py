"""MCPServer status: phase, message, URL, mirrored config hashes, conditions, Events.

Computed from current state only: the Store's Deployment tells whether the proxy is
available and whether it already carries what the current configs render (only then are
``externalAuthConfigHash``/``toolConfigHash`` advanced — "the objects were re-rendered"); the
Store's pods tell what actually runs (:mod:`thv.subscribers.pod_health`): a proxy runner or MCP
server pod that cannot run makes the server ``Failed`` with the pod's reason, and ``Running``
needs the proxy available *and* the MCP server pod Ready (when the runner created one), so that
an MCP request can be served. Events are emitted when a condition changes, so a resync never
repeats them.
"""

from __future__ import annotations

import time
from typing import Any

from bus import Requeue
from thv.api.meta import CONDITION_FALSE, CONDITION_TRUE, Condition
from thv.kube.resources import MCPSERVERS
from thv.rbac import Need, declare
from thv.render.names import service_url
from thv.sources.events import PodEvent, ServerStatusEvent
from thv.subscribers.context import Context
from thv.subscribers.gather import Resolved, Unresolved, resolve_server
from thv.subscribers.pod_health import mcp_ready, problem
from thv.subscribers.renderers import apply_failure
from thv.writers.apply import to_builtins
from thv.writers.diff import is_subset
from thv.writers.status import condition_bodies

NAME = "status-writer"
declare(
    NAME,
    Need("toolhive.stacklok.dev", ("mcpservers/status",), ("get", "patch", "update")),
    Need("", ("events",), ("create", "patch")),
)
#: Ready reasons while the proxy is available but the MCP server pod is not
MCP_POD_NOT_READY = "MCPServerPodNotReady"
READY = "Ready"
TOKEN_EXCHANGE = "TokenExchangeEffective"
#: Ready reason when the API server refused an object rendered for the server
APPLY_REJECTED = "ApplyRejected"
#: longest status/condition message (user input and API server answers can be huge)
MAX_MESSAGE = 1024


def _condition(type_: str, true: bool, reason: str, message: str, generation: int | None) -> Condition:
    """A condition whose transition time the status writer keeps or sets."""
    return Condition(
        type=type_,
        status=CONDITION_TRUE if true else CONDITION_FALSE,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time="",
    )


def clip(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` cut to ``limit`` characters, saying how long it was."""
    if len(message) <= limit:
        return message
    tail = f"… ({len(message)} characters)"
    return message[: limit - len(tail)] + tail


def _deployment_state(ctx: Context, res: Resolved) -> tuple[bool, bool]:
    """(rendered: live Deployment equals what is desired now, available)."""
    ns = res.server.metadata.namespace or ""
    dep = ctx.stores.live_deployment(ns, res.desired.deployment.metadata.name or "")
    if dep is None:
        return False, False
    rendered = is_subset(to_builtins(res.desired.deployment), to_builtins(dep))
    # "available" as Kubernetes means it: some proxy Pod serves. A rolling update (after a
    # config change) keeps the old Pod until the new one is ready, so the server stays Running
    # throughout instead of flapping to Pending and back (two status writes per server saved).
    st = dep.status
    available = bool(st is not None and (st.available_replicas or 0) >= 1)
    return rendered, available


async def write_status(ctx: Context, event: ServerStatusEvent) -> Requeue | None:
    """Compute and write one MCPServer's status (only when it differs)."""
    server = ctx.stores.servers.get(event.key)
    if server is None or server.metadata.deletion_timestamp:
        ctx.inventory.server_warnings.pop(event.key, None)
        return None
    live_status: dict[str, Any] = to_builtins(server.status) or {}
    ns, name = server.metadata.namespace or "", server.metadata.name or ""
    gen = server.metadata.generation
    # a pod event changes nothing that is rendered: the last resolution is reused when the
    # watched inputs are unchanged (no Secret/ConfigMap read per pod event)
    res = await resolve_server(ctx, event.key, reuse=isinstance(event, PodEvent))
    conditions: list[Condition] = []
    desired: dict[str, Any] = {"observedGeneration": gen}
    requeue: Requeue | None = None
    warn: tuple[str, str] | None = None
    rejected = apply_failure(ctx, event.key) if isinstance(res, Resolved) else None
    if isinstance(res, Unresolved) or rejected is not None:
        if rejected is not None:
            reason = APPLY_REJECTED
            message = clip(
                f"{rejected.kind} {rejected.name} was rejected by the API server: {rejected.message}"
            )
        else:
            assert isinstance(res, Unresolved)
            reason, message = res.reason, clip(res.message)
            if res.retry_after:
                requeue = Requeue(res.retry_after)
        desired.update(phase="Failed", message=message)
        conditions.append(_condition(READY, False, reason, message, gen))
        warn = (reason, message)
    elif res is not None:
        rendered, available = _deployment_state(ctx, res)
        port = res.server.spec.effective_proxy_port()
        desired["url"] = service_url(name, ns, port)
        if rendered:
            desired["externalAuthConfigHash"] = res.extauth_hash
            desired["toolConfigHash"] = res.toolconfig_hash
        pods = ctx.stores.server_pods(ns, name)
        failing = problem(pods, time.time())
        mcp = mcp_ready(pods)
        if failing is not None:
            message = clip(failing.message)
            desired.update(phase="Failed", message=message)
            conditions.append(_condition(READY, False, failing.reason, message, gen))
            warn = (failing.reason, message)
            if failing.recheck_after is not None:
                requeue = Requeue(failing.recheck_after + 1.0)
        elif available and mcp is False:
            desired.update(phase="Pending", message="MCP server pod is not ready")
            conditions.append(
                _condition(READY, False, MCP_POD_NOT_READY, "the MCP server pod is not ready yet", gen)
            )
        elif available:
            desired.update(phase="Running", message="MCP server is running")
            conditions.append(
                _condition(READY, True, "DeploymentAvailable", "proxy Deployment is available", gen)
            )
        else:
            desired.update(phase="Pending", message="MCP server is starting")
            reason = "DeploymentNotAvailable" if rendered else "Rendering"
            conditions.append(_condition(READY, False, reason, "proxy Deployment is not available yet", gen))
        if res.external_auth is not None:
            if res.desired.warnings:
                msg = clip("; ".join(res.desired.warnings))
                conditions.append(_condition(TOKEN_EXCHANGE, False, "RunnerIgnoresFlags", msg, gen))
                warn = warn or ("RunnerIgnoresFlags", msg)
            else:
                message = "token exchange is configured for the proxy"
                conditions.append(_condition(TOKEN_EXCHANGE, True, "Configured", message, gen))
    else:
        return None
    desired["conditions"] = condition_bodies(conditions)
    old = {c.get("type"): (c.get("status"), c.get("reason")) for c in live_status.get("conditions") or []}
    wrote = await ctx.status.write(MCPSERVERS, name, ns, desired, live_status)
    announced = ctx.inventory.server_warnings
    if warn is None:
        announced.pop(event.key, None)
    if wrote and warn is not None:
        changed = any(
            old.get(c.type) != (c.status, c.reason) for c in conditions if c.status == CONDITION_FALSE
        )
        # the Store may not have echoed the previous status write yet: a second write of the same
        # condition must not announce it twice
        if changed and announced.get(event.key) != warn:
            announced[event.key] = warn
            await ctx.recorder.event(
                api_version=server.api_version,
                kind="MCPServer",
                name=name,
                namespace=ns,
                uid=server.metadata.uid,
                type_="Warning",
                reason=warn[0],
                message=warn[1],
            )
    return requeue
