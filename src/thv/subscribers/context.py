"""What every subscriber gets: the stores, the writers, the settings, a way to notify, and the
per-operator state the subscribers keep between deliveries (an inventory owned by the operator
instance, never module globals: two operators in one process share nothing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiocache import SimpleMemoryCache

from thv.kube.client import KubeClient
from thv.render.resolve import Resolved, Unresolved
from thv.render.settings import OperatorSettings
from thv.sources.events import ObjectEvent
from thv.sources.stores import Stores
from thv.writers.apply import Applier
from thv.writers.events import Recorder
from thv.writers.status import StatusWriter

Publish = Callable[[ObjectEvent], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ApplyFailure:
    """The API server refused an object rendered for an MCPServer."""

    kind: str
    name: str
    message: str


@dataclass
class Inventory:
    """Per-operator memory of the subscribers (see each field's owner)."""

    #: renderers: the current API-server rejection, by (renderer, MCPServer key)
    apply_failures: dict[tuple[str, str], ApplyFailure] = field(default_factory=dict)
    #: status writer: the last Warning (reason, message) announced, by MCPServer key
    server_warnings: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: finalizer guard: the last DeletionBlocked message announced, by config key
    blocked_configs: dict[str, str] = field(default_factory=dict)
    #: resolver: short-lived reads of Secrets' keys and user ConfigMaps shared by one reconcile
    reads: SimpleMemoryCache = field(default_factory=SimpleMemoryCache)
    #: resolver: the last result per MCPServer key, with the versions of its inputs
    resolved: dict[str, tuple[tuple[object, ...], Resolved | Unresolved]] = field(default_factory=dict)


@dataclass
class Context:
    """Shared by all subscribers of one operator process."""

    client: KubeClient
    settings: OperatorSettings
    publish: Publish
    stores: Stores = field(default_factory=Stores)
    inventory: Inventory = field(default_factory=Inventory)
    applier: Applier = field(init=False)
    status: StatusWriter = field(init=False)
    recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        self.applier = Applier(self.client)
        self.status = StatusWriter(self.client)
        self.recorder = Recorder(self.client)
