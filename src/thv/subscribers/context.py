"""What every subscriber gets: the stores, the writers, the settings and a way to notify."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.api.k8s import ConfigMap, Deployment, Role, RoleBinding, Service, ServiceAccount
from thv.kube.client import KubeClient
from thv.operator.events import EXTAUTH, TOOLCONFIG, ObjectEvent
from thv.render.settings import OperatorSettings
from thv.sources.store import Store
from thv.writers.apply import Applier
from thv.writers.events import Recorder
from thv.writers.status import StatusWriter

#: index on the MCPServer store: "namespace/config-name" of the referenced MCPExternalAuthConfig
BY_EXTAUTH = "extauth"
#: index on the MCPServer store: "namespace/config-name" of the referenced MCPToolConfig
BY_TOOLCONFIG = "toolconfig"
#: index on owned-object stores: "namespace/server-name" of the owning MCPServer
BY_OWNER = "owner"

Publish = Callable[[ObjectEvent], Awaitable[Any]]


def _extauth_refs(server: MCPServer) -> list[str]:
    ref = server.spec.external_auth_config_ref
    return [f"{server.metadata.namespace}/{ref.name}"] if ref is not None and ref.name else []


def _toolconfig_refs(server: MCPServer) -> list[str]:
    ref = server.spec.tool_config_ref
    return [f"{server.metadata.namespace}/{ref.name}"] if ref is not None and ref.name else []


def _owner(obj: Any) -> list[str]:
    for ref in obj.metadata.owner_references or ():
        if ref.kind == "MCPServer" and ref.api_version.startswith("toolhive.stacklok.dev/"):
            return [f"{obj.metadata.namespace}/{ref.name}"]
    return []


@dataclass
class Stores:
    """The local caches, one per watched kind, with the reverse indexes."""

    servers: Store[MCPServer] = field(default_factory=lambda: Store("MCPServer"))
    toolconfigs: Store[MCPToolConfig] = field(default_factory=lambda: Store("MCPToolConfig"))
    extauths: Store[MCPExternalAuthConfig] = field(default_factory=lambda: Store("MCPExternalAuthConfig"))
    deployments: Store[Deployment] = field(default_factory=lambda: Store("Deployment"))
    services: Store[Service] = field(default_factory=lambda: Store("Service"))
    configmaps: Store[ConfigMap] = field(default_factory=lambda: Store("ConfigMap"))
    serviceaccounts: Store[ServiceAccount] = field(default_factory=lambda: Store("ServiceAccount"))
    roles: Store[Role] = field(default_factory=lambda: Store("Role"))
    rolebindings: Store[RoleBinding] = field(default_factory=lambda: Store("RoleBinding"))

    def __post_init__(self) -> None:
        self.servers.add_index(BY_EXTAUTH, _extauth_refs)
        self.servers.add_index(BY_TOOLCONFIG, _toolconfig_refs)
        for store in self.owned():
            store.add_index(BY_OWNER, _owner)

    def owned(self) -> list[Store[Any]]:
        """Stores of the kinds thv creates for an MCPServer."""
        return [
            self.deployments,
            self.services,
            self.configmaps,
            self.serviceaccounts,
            self.roles,
            self.rolebindings,
        ]

    def referencing(self, config_kind: str, config_key: str) -> list[str]:
        """Sorted keys of MCPServers whose ref names the config ``config_key``."""
        index = {EXTAUTH: BY_EXTAUTH, TOOLCONFIG: BY_TOOLCONFIG}[config_kind]
        return self.servers.keys_by_index(index, config_key)


@dataclass
class Context:
    """Shared by all subscribers of one operator process."""

    client: KubeClient
    settings: OperatorSettings
    publish: Publish
    stores: Stores = field(default_factory=Stores)
    applier: Applier = field(init=False)
    status: StatusWriter = field(init=False)
    recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        self.applier = Applier(self.client)
        self.status = StatusWriter(self.client)
        self.recorder = Recorder(self.client)
