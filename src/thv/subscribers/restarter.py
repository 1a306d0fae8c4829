"""Restarter: carries out an MCPServer's restart request (upstream's annotations).

From current state only: a request is pending while the server's ``restarted-at`` is newer than
its ``last-processed-restart`` (:mod:`thv.render.restart`).

* ``rolling`` (default): the renderers put ``restarted-at`` on the Deployment's pod template,
  so the Deployment rolls; once the Store's Deployment carries it, the request is recorded.
* ``immediate``: the proxy pods (the Deployment's selector) are deleted, then the request is
  recorded. The pod template does not change.

Recording writes ``last-processed-restart`` = the request's value, which a script can wait for.
"""

from __future__ import annotations

import logging

from bus import Requeue
from thv.api.k8s import Deployment
from thv.kube.resources import MCPSERVERS
from thv.rbac import Need, declare
from thv.render import names
from thv.render.restart import STRATEGY_IMMEDIATE, pending, strategy
from thv.sources.events import ServerEvent
from thv.subscribers.context import Context
from thv.writers.objects import annotate, delete_pods

NAME = "restarter"
NEEDS = declare(
    NAME,
    Need("", ("pods",), ("delete", "list"), "restart-strategy immediate deletes the proxy pods"),
    Need("toolhive.stacklok.dev", ("mcpservers",), ("patch",), "last-processed-restart annotation"),
)
log = logging.getLogger("thv.restarter")


def _template_annotations(ctx: Context, ns: str, name: str) -> dict[str, str]:
    dep: Deployment | None = ctx.stores.live_deployment(ns, name)
    template = dep.spec.template if dep is not None and dep.spec is not None else None
    meta = template.metadata if template is not None else None
    return (meta.annotations if meta is not None else None) or {}


async def restart(ctx: Context, event: ServerEvent) -> Requeue | None:
    """Carry out the pending restart request of one MCPServer, if any."""
    server = ctx.stores.servers.get(event.key)
    if server is None or server.metadata.deletion_timestamp:
        return None
    request = pending(server)
    if request is None:
        return None
    ns, name = server.metadata.namespace or "", server.metadata.name or ""
    if strategy(server) == STRATEGY_IMMEDIATE:
        selector = ",".join(f"{k}={v}" for k, v in names.labels_for_server(name).items())
        deleted = await delete_pods(ctx.client, ns, selector)
        log.info("immediate restart of %s/%s: %d proxy pods deleted", ns, name, len(deleted))
    else:
        if _template_annotations(ctx, ns, name).get(names.ANNOTATION_RESTARTED_AT) != request:
            return None  # the renderers have not applied it yet: the Deployment's event brings us back
    last = names.ANNOTATION_LAST_PROCESSED_RESTART
    await annotate(ctx.client, MCPSERVERS, name, ns, last, request, server.metadata.annotations)
    return None
