"""The proxy Service ``mcp-<name>-proxy``."""

from __future__ import annotations

from thv.api.crds import MCPServer
from thv.api.k8s import Service, ServicePort, ServiceSpec
from thv.render import names
from thv.render.common import merge_operator_wins, object_meta, server_name

__all__ = ["service"]


def service(server: MCPServer) -> Service:
    """ClusterIP Service selecting the proxy pods, port ``http`` = target port = the proxy port.

    Labels: the common labels over ``resourceOverrides.proxyService.labels`` (operator wins);
    annotations: ``proxyService.annotations``.
    """
    name = server_name(server)
    common = names.labels_for_server(name)
    overrides = server.spec.resource_overrides
    svc = overrides.proxy_service if overrides is not None else None
    port = server.spec.effective_proxy_port()
    return Service(
        metadata=object_meta(
            server,
            names.service_name(name),
            labels=merge_operator_wins(common, svc.labels if svc is not None else None),
            annotations=svc.annotations if svc is not None else None,
        ),
        spec=ServiceSpec(
            selector=common,
            ports=[ServicePort(name=names.PROXY_PORT_NAME, port=port, target_port=port, protocol="TCP")],
        ),
    )
