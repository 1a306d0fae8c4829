"""The local caches, one :class:`~thv.sources.store.Store` per watched kind, and the reverse
indexes that route a config's change to the MCPServers referencing it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.api.k8s import ConfigMap, Deployment, Pod, Role, RoleBinding, Service, ServiceAccount
from thv.render.names import LABEL_TOOLHIVE_NAME
from thv.sources.events import EXTAUTH, MCPSERVER, TOOLCONFIG
from thv.sources.kinds import BY_NAME, OWNED
from thv.sources.store import KubeObject, Store

#: index on the MCPServer store: "namespace/config-name" of the referenced MCPExternalAuthConfig
BY_EXTAUTH = "extauth"
#: index on the MCPServer store: "namespace/config-name" of the referenced MCPToolConfig
BY_TOOLCONFIG = "toolconfig"
#: index on owned-object stores: "namespace/server-name" of the owning MCPServer
BY_OWNER = "owner"
#: index on the pod store: "namespace/server-name" of the MCPServer the pod runs for
BY_SERVER = "server"
_INDEX_OF_CONFIG = {EXTAUTH: BY_EXTAUTH, TOOLCONFIG: BY_TOOLCONFIG}


def references(server: MCPServer | None, config_kind: str) -> list[str]:
    """``["namespace/name"]`` of the config of ``config_kind`` that ``server`` references
    (empty when it references none): the one place reference extraction is written."""
    if server is None:
        return []
    spec = server.spec
    ref = spec.external_auth_config_ref if config_kind == EXTAUTH else spec.tool_config_ref
    return [f"{server.metadata.namespace}/{ref.name}"] if ref is not None and ref.name else []


def owner(obj: KubeObject) -> list[str]:
    """``["namespace/name"]`` of the MCPServer controlling ``obj`` (empty when none)."""
    meta: Any = obj.metadata
    for ref in meta.owner_references or ():
        if ref.kind == MCPSERVER and ref.api_version.startswith("toolhive.stacklok.dev/"):
            return [f"{meta.namespace}/{ref.name}"]
    return []


def pod_server(obj: KubeObject) -> list[str]:
    """``["namespace/name"]`` of the MCPServer a pod runs for, from its ``toolhive-name`` label
    (upstream's, on the proxy runner pods and on the MCP server pods alike)."""
    meta: Any = obj.metadata
    name = (meta.labels or {}).get(LABEL_TOOLHIVE_NAME)
    return [f"{meta.namespace}/{name}"] if name else []


@dataclass
class Stores:
    """The local caches, one per watched kind (:data:`~thv.sources.kinds.KINDS`), with the
    reverse indexes. The owned kinds and pods are kept packed (one per server each, read
    only when that server reconciles); MCPServers and configs are kept decoded."""

    servers: Store[MCPServer] = field(default_factory=lambda: Store(MCPSERVER))
    toolconfigs: Store[MCPToolConfig] = field(default_factory=lambda: Store(TOOLCONFIG))
    extauths: Store[MCPExternalAuthConfig] = field(default_factory=lambda: Store(EXTAUTH))
    deployments: Store[Deployment] = field(default_factory=lambda: Store("Deployment", packed=Deployment))
    services: Store[Service] = field(default_factory=lambda: Store("Service", packed=Service))
    configmaps: Store[ConfigMap] = field(default_factory=lambda: Store("ConfigMap", packed=ConfigMap))
    serviceaccounts: Store[ServiceAccount] = field(
        default_factory=lambda: Store("ServiceAccount", packed=ServiceAccount)
    )
    roles: Store[Role] = field(default_factory=lambda: Store("Role", packed=Role))
    rolebindings: Store[RoleBinding] = field(default_factory=lambda: Store("RoleBinding", packed=RoleBinding))
    pods: Store[Pod] = field(default_factory=lambda: Store("Pod", packed=Pod))

    def __post_init__(self) -> None:
        self.servers.add_index(BY_EXTAUTH, lambda s: references(s, EXTAUTH))
        self.servers.add_index(BY_TOOLCONFIG, lambda s: references(s, TOOLCONFIG))
        for store in self.owned():
            store.add_index(BY_OWNER, owner)
        self.pods.add_index(BY_SERVER, pod_server)

    def of(self, kind: str) -> Store[Any]:
        """The store of ``kind`` (a kind name of the table)."""
        store: Store[Any] = getattr(self, BY_NAME[kind].store)
        return store

    def owned(self) -> list[Store[Any]]:
        """Stores of the kinds thv creates for an MCPServer."""
        return [self.of(kind) for kind in OWNED]

    def live(self, kind: str, namespace: str, name: str) -> msgspec.Struct | None:
        """The cached object ``kind`` ``namespace/name``, if any."""
        obj = self.of(kind).get(f"{namespace}/{name}")
        assert obj is None or isinstance(obj, msgspec.Struct)
        return obj

    def live_deployment(self, namespace: str, name: str) -> Deployment | None:
        return self.deployments.get(f"{namespace}/{name}")

    def server_pods(self, namespace: str, name: str) -> list[Pod]:
        """The pods running for MCPServer ``namespace/name`` (proxy runner and MCP server)."""
        return self.pods.by_index(BY_SERVER, f"{namespace}/{name}")

    def referencing(self, config_kind: str, config_key: str) -> list[str]:
        """Sorted keys of MCPServers whose ref names the config ``config_key``."""
        return self.servers.keys_by_index(_INDEX_OF_CONFIG[config_kind], config_key)
