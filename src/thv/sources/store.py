"""The single local cache every subscriber reads: latest object per key, plus indexes.

A store either keeps its objects as decoded Structs (the kinds read on every reconcile:
MCPServers and their configs) or *packed*: the Struct re-encoded as JSON (only the fields the
type declares) and zlib-compressed, decoded again on each read. Packing costs tens of
microseconds per read and keeps an owned object in 0.3-1.2 KB instead of 1.2-8 KB of Python
objects, which is what lets one operator cache 10,000 servers' objects
(``docs/benchmarks.md``, "10,000 servers"). Either way the store hands out objects and must be
treated as read-only.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

import msgspec


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
    lookup, never a scan. ``packed``: keep the objects of this type packed (see the module
    docstring); the index values and resource versions are kept beside them, so indexing,
    unindexing and a relist's version check decode nothing.
    """

    def __init__(self, kind: str, *, packed: type[T] | None = None) -> None:
        #: the kind this store holds, for logs and metrics
        self.kind = kind
        self._items: dict[str, T] = {}
        self._packed: dict[str, tuple[str | None, bytes]] = {}
        self._decoder: msgspec.json.Decoder[T] | None = (
            msgspec.json.Decoder(packed) if packed is not None else None
        )
        self._encoder = msgspec.json.Encoder()
        self._indexers: dict[str, Indexer[T]] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}
        #: packed stores: the index values each key was filed under, by index name
        self._filed: dict[str, tuple[tuple[str, ...], ...]] = {}

    @property
    def packed(self) -> bool:
        return self._decoder is not None

    def _unpack(self, entry: tuple[str | None, bytes]) -> T:
        assert self._decoder is not None
        return self._decoder.decode(zlib.decompress(entry[1]))

    def __len__(self) -> int:
        return len(self._packed) if self.packed else len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in (self._packed if self.packed else self._items)

    def get(self, key: str) -> T | None:
        """The latest object for ``key``, or ``None``."""
        if self.packed:
            entry = self._packed.get(key)
            return None if entry is None else self._unpack(entry)
        return self._items.get(key)

    def resource_version(self, key: str) -> str | None:
        """The cached object's resourceVersion (``None`` when absent), without decoding it."""
        if self.packed:
            entry = self._packed.get(key)
            return None if entry is None else entry[0]
        obj = self._items.get(key)
        return None if obj is None else obj.metadata.resource_version

    def keys(self, namespace: str | None = None) -> list[str]:
        """Keys, optionally only those of one namespace."""
        items = self._packed if self.packed else self._items
        if namespace is None:
            return list(items)
        prefix = f"{namespace}/"
        return [k for k in items if k.startswith(prefix)]

    def values(self) -> Iterator[T]:
        """All objects (a snapshot of the keys is taken; do not await while iterating)."""
        if self.packed:
            return (self._unpack(e) for e in list(self._packed.values()))
        return iter(list(self._items.values()))

    def add_index(self, name: str, indexer: Indexer[T]) -> None:
        """Register an index; existing objects are indexed at once."""
        self._indexers[name] = indexer
        idx: dict[str, set[str]] = {}
        for key in self.keys():
            obj = self.get(key)
            assert obj is not None
            for value in indexer(obj):
                idx.setdefault(value, set()).add(key)
        self._indexes[name] = idx
        if self.packed:
            self._filed = {}
            for key in self.keys():
                obj = self.get(key)
                assert obj is not None
                self._filed[key] = self._values(obj)

    def keys_by_index(self, name: str, value: str) -> list[str]:
        """Sorted keys of the objects whose indexer produced ``value``."""
        return sorted(self._indexes[name].get(value, ()))

    def by_index(self, name: str, value: str) -> list[T]:
        """The objects whose indexer produced ``value``, sorted by key."""
        out = []
        for k in self.keys_by_index(name, value):
            obj = self.get(k)
            if obj is not None:
                out.append(obj)
        return out

    def _values(self, obj: T) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(sys.intern(v) for v in ix(obj)) for ix in self._indexers.values())

    def upsert(self, obj: T) -> T | None:
        """Insert or replace; returns the previous object."""
        key = object_key(obj)
        old = self.get(key)
        self.put(obj)
        return old

    def put(self, obj: T) -> bool:
        """Insert or replace without reading the previous object back; returns whether one
        existed."""
        key = object_key(obj)
        if self.packed:
            filed = self._filed.pop(key, None)
            existed = key in self._packed
            if filed is not None:
                self._unfile(key, filed)
            body = zlib.compress(self._encoder.encode(obj), 1)
            self._packed[sys.intern(key)] = (obj.metadata.resource_version, body)
            values = self._values(obj)
            self._filed[key] = values
            self._file(key, values)
            return existed
        old = self._items.get(key)
        if old is not None:
            self._unfile(key, self._values(old))
        self._items[key] = obj
        self._file(key, self._values(obj))
        return old is not None

    def delete(self, key: str) -> T | None:
        """Remove ``key``; returns the removed object."""
        if self.packed:
            entry = self._packed.pop(key, None)
            filed = self._filed.pop(key, None)
            if filed is not None:
                self._unfile(key, filed)
            return None if entry is None else self._unpack(entry)
        old = self._items.pop(key, None)
        if old is not None:
            self._unfile(key, self._values(old))
        return old

    def _file(self, key: str, values: tuple[tuple[str, ...], ...]) -> None:
        for idx, vals in zip(self._indexes.values(), values, strict=True):
            for value in vals:
                idx.setdefault(value, set()).add(key)

    def _unfile(self, key: str, values: tuple[tuple[str, ...], ...]) -> None:
        for idx, vals in zip(self._indexes.values(), values, strict=True):
            for value in vals:
                keys = idx.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del idx[value]
