"""Watch event → bus events, from each kind's :class:`~thv.sources.kinds.Route` (pure)."""

from __future__ import annotations

import msgspec

from thv.api.crds import MCPServer
from thv.sources.events import MCPSERVER, ConfigEvent, ObjectEvent, PodEvent, Reason, ServerEvent
from thv.sources.informer import EventType
from thv.sources.kinds import CONFIGS, HASH_ANNOTATIONS, Kind, Route
from thv.sources.store import KubeObject
from thv.sources.stores import Stores, owner, pod_server, references


def _concerns_config(type_: EventType, config: str, server: MCPServer, old: MCPServer | None) -> bool:
    """Whether a server's event can change what the config's subscribers (hasher, finalizer
    guard) do: the server appeared or went; its reference changed; or the config's hash
    annotation on it changed or is missing (drift, or the hasher's own write echoing back
    once). A server's other changes (its status, finalizer, spec) are not the config's
    business, and neither is a server's resync (the config is resynced itself): announcing
    them made every server event cost the hasher a pass over every referencing server,
    O(N^2) for N servers on a cold start and on every resync."""
    if type_ == "RESYNC":
        return False
    if type_ != "MODIFIED" or old is None:
        return True
    if references(server, config) != references(old, config):
        return True
    annotation = HASH_ANNOTATIONS[config]
    now = (server.metadata.annotations or {}).get(annotation)
    return now is None or now != (old.metadata.annotations or {}).get(annotation)


def route(
    kind: Kind, type_: EventType, key: str, obj: KubeObject, old: KubeObject | None, stores: Stores
) -> list[ObjectEvent]:
    """The bus events one watch event of ``kind`` stands for.

    Called after the Store holds the new state (so the reverse index is current) and with the
    previous object, so a reference that was just removed still reaches its old config."""
    if kind.route is Route.OWNED:
        return [ServerEvent(kind=MCPSERVER, key=server, reason="OWNED") for server in owner(obj)]
    if kind.route is Route.POD:
        return [PodEvent(kind=MCPSERVER, key=server, reason="POD") for server in pod_server(obj)]
    reason: Reason = type_
    if kind.route is Route.SERVER:
        assert isinstance(obj, MCPServer) and (old is None or isinstance(old, MCPServer))
        events: list[ObjectEvent] = [ServerEvent(kind=kind.name, key=key, reason=reason, obj=obj)]
        events.extend(
            ConfigEvent(kind=config, key=ref, reason="REFERENCE")
            for config in CONFIGS
            if _concerns_config(type_, config, obj, old)
            for ref in sorted(set(references(obj, config)) | set(references(old, config)))
        )
        return events
    struct = obj if isinstance(obj, msgspec.Struct) else None
    events = [ConfigEvent(kind=kind.name, key=key, reason=reason, obj=struct)]
    if type_ != "RESYNC":
        events += [
            ServerEvent(kind=MCPSERVER, key=server, reason="REFERENCE")
            for server in stores.referencing(kind.name, key)
        ]
    return events
