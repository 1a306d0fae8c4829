"""The two config kinds an MCPServer references, described once (for the hasher and the
finalizer guard; where they are watched and stored is :mod:`thv.sources.kinds`)."""

from __future__ import annotations

from dataclasses import dataclass

from thv.kube.resources import MCPEXTERNALAUTHCONFIGS, MCPTOOLCONFIGS, Resource
from thv.render import names
from thv.sources.events import EXTAUTH, TOOLCONFIG
from thv.sources.kinds import HASH_ANNOTATIONS


@dataclass(frozen=True, slots=True)
class ConfigKind:
    """How one config kind is named, guarded and mirrored onto MCPServers."""

    kind: str
    resource: Resource
    finalizer: str
    annotation: str
    #: MCPToolConfig keeps upstream's status.referencingServers; the seed drops it for ext-auth
    lists_referencing_servers: bool
    #: whether the CRD status has conditions (MCPToolConfig's upstream status has none)
    has_conditions: bool


EXTAUTH_KIND = ConfigKind(
    EXTAUTH,
    MCPEXTERNALAUTHCONFIGS,
    names.FINALIZER_EXTAUTH,
    HASH_ANNOTATIONS[EXTAUTH],
    lists_referencing_servers=False,
    has_conditions=True,
)
TOOLCONFIG_KIND = ConfigKind(
    TOOLCONFIG,
    MCPTOOLCONFIGS,
    names.FINALIZER_TOOLCONFIG,
    HASH_ANNOTATIONS[TOOLCONFIG],
    lists_referencing_servers=True,
    has_conditions=False,
)
CONFIG_KINDS = {EXTAUTH: EXTAUTH_KIND, TOOLCONFIG: TOOLCONFIG_KIND}
