"""The two config kinds an MCPServer references, described once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thv.kube.resources import MCPEXTERNALAUTHCONFIGS, MCPTOOLCONFIGS, Resource
from thv.operator.context import Stores
from thv.operator.events import EXTAUTH, TOOLCONFIG
from thv.sources.store import Store

EXTAUTH_FINALIZER = "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer"
TOOLCONFIG_FINALIZER = "toolhive.stacklok.dev/toolconfig-finalizer"
EXTAUTH_HASH_ANNOTATION = "toolhive.stacklok.dev/externalauthconfig-hash"
TOOLCONFIG_HASH_ANNOTATION = "toolhive.stacklok.dev/toolconfig-hash"


@dataclass(frozen=True, slots=True)
class ConfigKind:
    """How one config kind is named, stored, guarded and mirrored onto MCPServers."""

    kind: str
    resource: Resource
    finalizer: str
    annotation: str
    store: Callable[[Stores], Store[Any]]
    #: MCPToolConfig keeps upstream's status.referencingServers; the seed drops it for ext-auth
    lists_referencing_servers: bool
    #: whether the CRD status has conditions (MCPToolConfig's upstream status has none)
    has_conditions: bool


EXTAUTH_KIND = ConfigKind(
    EXTAUTH,
    MCPEXTERNALAUTHCONFIGS,
    EXTAUTH_FINALIZER,
    EXTAUTH_HASH_ANNOTATION,
    lambda s: s.extauths,
    lists_referencing_servers=False,
    has_conditions=True,
)
TOOLCONFIG_KIND = ConfigKind(
    TOOLCONFIG,
    MCPTOOLCONFIGS,
    TOOLCONFIG_FINALIZER,
    TOOLCONFIG_HASH_ANNOTATION,
    lambda s: s.toolconfigs,
    lists_referencing_servers=True,
    has_conditions=False,
)
CONFIG_KINDS = {EXTAUTH: EXTAUTH_KIND, TOOLCONFIG: TOOLCONFIG_KIND}
