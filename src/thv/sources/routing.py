"""Watch event → bus events, from each kind's :class:`~thv.sources.kinds.Route` (pure)."""

from __future__ import annotations

import msgspec

from thv.api.crds import MCPServer
from thv.sources.events import MCPSERVER, ConfigEvent, ObjectEvent, PodEvent, Reason, ServerEvent
from thv.sources.informer import EventType
from thv.sources.kinds import CONFIGS, Kind, Route
from thv.sources.store import KubeObject
from thv.sources.stores import Stores, owner, pod_server, references


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
