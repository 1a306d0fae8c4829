"""The one table of the kinds thv watches: where each lives, its type, its store, how it is
selected, and how its watch events are routed onto the bus (declared as data, as
controller-runtime's ``For``/``Owns``/``Watches``):

* ``SERVER`` (``For``): the MCPServer's own key, and a config event for every config it
  references now or referenced before the change (so a config's reverse index follows);
* ``CONFIG`` (``Watches`` + mapping): the config's key, and every MCPServer referencing it;
* ``OWNED`` (``Owns``): the owning MCPServer's key (controller ownerReference), selected by
  thv's ``app.kubernetes.io/managed-by`` label;
* ``POD`` (``Watches`` + mapping): pods labelled ``toolhive=true`` -- the proxy runner pods and
  the MCP server pods the runner creates -- to the MCPServer named by ``toolhive-name``, for
  the status writer only (the status tells what actually runs).

A new CRD kind is one row here (plus its Store attribute in :class:`~thv.sources.stores.Stores`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import msgspec

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.api.k8s import ConfigMap, Deployment, Pod, Role, RoleBinding, Service, ServiceAccount
from thv.kube.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    MCPEXTERNALAUTHCONFIGS,
    MCPSERVERS,
    MCPTOOLCONFIGS,
    PODS,
    ROLEBINDINGS,
    ROLES,
    SERVICEACCOUNTS,
    SERVICES,
    Resource,
)
from thv.rbac import READ, Need, declare
from thv.render.names import (
    ANNOTATION_EXTAUTH_HASH,
    ANNOTATION_TOOLCONFIG_HASH,
    LABEL_APP_MANAGED_BY,
    LABEL_TOOLHIVE,
    MANAGED_BY_THV,
)
from thv.sources.events import EXTAUTH, MCPSERVER, TOOLCONFIG

#: the label selector of every owned kind's watch
OWNED_SELECTOR: Final = f"{LABEL_APP_MANAGED_BY}={MANAGED_BY_THV}"
#: the label selector of the pod watch: proxy runner pods and MCP server pods (upstream's labels)
POD_SELECTOR: Final = f"{LABEL_TOOLHIVE}=true"


class Route(enum.Enum):
    """How a watch event of a kind becomes bus events (see the module docstring)."""

    SERVER = "server"
    CONFIG = "config"
    OWNED = "owned"
    POD = "pod"


@dataclass(frozen=True, slots=True)
class Kind:
    """One watched kind."""

    name: str
    resource: Resource
    type: type[msgspec.Struct]
    #: attribute of :class:`~thv.sources.stores.Stores` holding its objects
    store: str
    route: Route
    selector: str | None = None


KINDS: Final[tuple[Kind, ...]] = (
    Kind(MCPSERVER, MCPSERVERS, MCPServer, "servers", Route.SERVER),
    Kind(TOOLCONFIG, MCPTOOLCONFIGS, MCPToolConfig, "toolconfigs", Route.CONFIG),
    Kind(EXTAUTH, MCPEXTERNALAUTHCONFIGS, MCPExternalAuthConfig, "extauths", Route.CONFIG),
    Kind("Deployment", DEPLOYMENTS, Deployment, "deployments", Route.OWNED, OWNED_SELECTOR),
    Kind("Service", SERVICES, Service, "services", Route.OWNED, OWNED_SELECTOR),
    Kind("ConfigMap", CONFIGMAPS, ConfigMap, "configmaps", Route.OWNED, OWNED_SELECTOR),
    Kind("ServiceAccount", SERVICEACCOUNTS, ServiceAccount, "serviceaccounts", Route.OWNED, OWNED_SELECTOR),
    Kind("Role", ROLES, Role, "roles", Route.OWNED, OWNED_SELECTOR),
    Kind("RoleBinding", ROLEBINDINGS, RoleBinding, "rolebindings", Route.OWNED, OWNED_SELECTOR),
    Kind("Pod", PODS, Pod, "pods", Route.POD, POD_SELECTOR),
)
BY_NAME: Final = {k.name: k for k in KINDS}
#: the kinds thv creates for an MCPServer, by kind name
OWNED: Final = {k.name: k for k in KINDS if k.route is Route.OWNED}
#: the resource of each owned kind, by kind name
OWNED_RESOURCES: Final = {name: k.resource for name, k in OWNED.items()}
#: the config kinds an MCPServer references
CONFIGS: Final = {k.name: k for k in KINDS if k.route is Route.CONFIG}
#: the annotation on a referencing MCPServer that mirrors each config kind's hash
HASH_ANNOTATIONS: Final = {EXTAUTH: ANNOTATION_EXTAUTH_HASH, TOOLCONFIG: ANNOTATION_TOOLCONFIG_HASH}

declare("watch-sources", *(Need(k.resource.group, (k.resource.plural,), READ) for k in KINDS))
