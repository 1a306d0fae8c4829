"""The single local cache every subscriber reads: latest object per key, plus indexes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar


class _Meta(Protocol):
    @property
    def name(self) -> str | None: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def resource_version(self) -> str | None: ...


class KubeObject(Protocol):
    """Anything with Kubernetes object metadata."""

    @property
    def metadata(self) -> _Meta: ...


T = TypeVar("T", bound=KubeObject)
Indexer = Callable[[T], Iterable[str]]


def object_key(obj: KubeObject) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects)."""
    ns, name = obj.metadata.namespace, obj.metadata.name or ""
    return f"{ns}/{name}" if ns else name


def split_key(key: str) -> tuple[str | None, str]:
    """The inverse of :func:`object_key`."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


class Store(Generic[T]):
    """Latest object per key, with secondary indexes kept in step with every change.

    Indexes map an index value (for instance ``"ns/config-name"``) to the keys of the
    objects that produce it, so "which MCPServers reference config X" is a dictionary
    lookup, never a scan.
    """

    def __init__(self, kind: str) -> None:
        #: the kind this store holds, for logs and metrics
        self.kind = kind
        self._items: dict[str, T] = {}
        self._indexers: dict[str, Indexer[T]] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> T | None:
        """The latest object for ``key``, or ``None``."""
        return self._items.get(key)

    def keys(self, namespace: str | None = None) -> list[str]:
        """Keys, optionally only those of one namespace."""
        if namespace is None:
            return list(self._items)
        prefix = f"{namespace}/"
        return [k for k in self._items if k.startswith(prefix)]

    def values(self) -> Iterator[T]:
        """All objects (a snapshot is not taken: do not await while iterating)."""
        return iter(list(self._items.values()))

    def add_index(self, name: str, indexer: Indexer[T]) -> None:
        """Register an index; existing objects are indexed at once."""
        self._indexers[name] = indexer
        idx: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in indexer(obj):
                idx.setdefault(value, set()).add(key)
        self._indexes[name] = idx

    def keys_by_index(self, name: str, value: str) -> list[str]:
        """Sorted keys of the objects whose indexer produced ``value``."""
        return sorted(self._indexes[name].get(value, ()))

    def by_index(self, name: str, value: str) -> list[T]:
        """The objects whose indexer produced ``value``, sorted by key."""
        return [self._items[k] for k in self.keys_by_index(name, value)]

    def upsert(self, obj: T) -> T | None:
        """Insert or replace; returns the previous object."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, indexer in self._indexers.items():
            for value in indexer(obj):
                self._indexes[name].setdefault(value, set()).add(key)
        return old

    def delete(self, key: str) -> T | None:
        """Remove ``key``; returns the removed object."""
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: T) -> None:
        for name, indexer in self._indexers.items():
            idx = self._indexes[name]
            for value in indexer(obj):
                keys = idx.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del idx[value]
