"""What every subscriber gets: the stores, the writers, the settings, a way to notify, and the
per-operator state the subscribers keep between deliveries (an inventory owned by the operator
instance, never module globals: two operators in one process share nothing)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
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


_Remembered = tuple[tuple[object, ...], Resolved | Unresolved]


class Recent:
    """The resolver's last results, by MCPServer key, with the versions of their inputs: the
    most recently used ``capacity`` only (a result is ~14 KB; 10,000 remembered servers would
    be most of the operator's memory, and a server that has not changed is not asked about)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, _Remembered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> _Remembered | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def __setitem__(self, key: str, item: _Remembered) -> None:
        self._items[key] = item
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def pop(self, key: str, default: None = None) -> _Remembered | None:
        return self._items.pop(key, default)


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
    #: resolver: the reads of ``reads`` under way (single flight), by cache key
    inflight: dict[str, anyio.Event] = field(default_factory=dict)
    #: resolver: the last result per recently resolved MCPServer key, with its inputs' versions
    resolved: Recent = field(default_factory=Recent)


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
