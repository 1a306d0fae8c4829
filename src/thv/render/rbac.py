"""ServiceAccount, Role and RoleBinding of the proxy runner, and the MCP server's ServiceAccount."""

from __future__ import annotations

from typing import Final

from thv.api.crds import MCPServer
from thv.api.k8s import PolicyRule, Role, RoleBinding, RoleRef, ServiceAccount, Subject
from thv.render import names
from thv.render.common import object_meta, server_name, server_namespace

__all__ = [
    "PROXY_RUNNER_RULES",
    "mcp_service_account",
    "proxy_runner_role",
    "proxy_runner_role_binding",
    "proxy_runner_service_account",
]

_ALL: Final = ("get", "list", "watch", "create", "update", "patch", "delete")

#: upstream ``defaultRBACRules`` without the invalid ``apply`` verb (removed upstream in c75571336):
#: the runner creates the MCP StatefulSet and headless Service, and reads pods, logs, ConfigMaps
PROXY_RUNNER_RULES: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    ("apps", "statefulsets", _ALL),
    ("", "services", _ALL),
    ("", "pods", ("get", "list", "watch")),
    ("", "pods/log", ("get",)),
    ("", "pods/attach", ("create", "get")),
    ("", "configmaps", ("get", "list", "watch")),
)


def proxy_runner_service_account(server: MCPServer) -> ServiceAccount:
    """``<name>-proxy-runner``: the proxy pod's identity (no labels, as upstream)."""
    return ServiceAccount(metadata=object_meta(server, names.proxy_runner_name(server_name(server))))


def proxy_runner_role(server: MCPServer) -> Role:
    """``<name>-proxy-runner`` Role with :data:`PROXY_RUNNER_RULES`."""
    return Role(
        metadata=object_meta(server, names.proxy_runner_name(server_name(server))),
        rules=[
            PolicyRule(api_groups=[group], resources=[resource], verbs=list(verbs))
            for group, resource, verbs in PROXY_RUNNER_RULES
        ],
    )


def proxy_runner_role_binding(server: MCPServer) -> RoleBinding:
    """``<name>-proxy-runner`` RoleBinding: the Role to the ServiceAccount, same namespace."""
    name = names.proxy_runner_name(server_name(server))
    return RoleBinding(
        metadata=object_meta(server, name),
        role_ref=RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
        subjects=[Subject(kind="ServiceAccount", name=name, namespace=server_namespace(server))],
    )


def mcp_service_account(server: MCPServer) -> ServiceAccount | None:
    """``<name>-sa`` for the MCP server pod, only when ``spec.serviceAccount`` is unset."""
    if server.spec.service_account is not None:
        return None
    return ServiceAccount(metadata=object_meta(server, names.mcp_service_account_name(server_name(server))))
