"""List-and-watch of one resource into a :class:`~thv.sources.store.Store`.

Informer semantics on kr8s's low-level streaming call (not ``kr8s.watch()``, which sends
no bookmarks, has no timeout and retries a 410 with the same expired version):

* LIST (paged), then WATCH from the list's resourceVersion with bookmarks;
* a watch that ends normally is resumed from the last seen resourceVersion;
* a silent stream (no event, no bookmark) is dropped after an inactivity timeout;
* 410 Gone relists and emits only real differences, including the deletions that
  happened while the watch was gone (no DELETED event exists for those);
* any other error reconnects with capped exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Generic, Literal

import anyio
import msgspec

from thv.kube.client import KubeClient
from thv.kube.errors import ApiError, Gone, Status, error_from_status
from thv.kube.resources import Resource
from thv.observability import metrics
from thv.sources.store import Store, T, object_key

log = logging.getLogger("thv.sources")

EventType = Literal["ADDED", "MODIFIED", "DELETED", "RESYNC"]
#: called with (event type, key, new or last-known object, previous object in the store)
OnEvent = Callable[[EventType, str, T, T | None], Awaitable[None]]


class _ListMeta(msgspec.Struct, rename="camel"):
    resource_version: str = ""
    continue_: str | None = msgspec.field(default=None, name="continue")


class _ObjectList(msgspec.Struct, Generic[T]):
    items: list[T] | None = None
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)


class _RawEvent(msgspec.Struct):
    type: str
    object: msgspec.Raw


class _BookmarkMeta(msgspec.Struct, rename="camel"):
    resource_version: str = ""


class _Bookmark(msgspec.Struct):
    metadata: _BookmarkMeta = msgspec.field(default_factory=_BookmarkMeta)


_raw_event = msgspec.json.Decoder(_RawEvent)
_bookmark = msgspec.json.Decoder(_Bookmark)
_status = msgspec.json.Decoder(Status)


class Informer(Generic[T]):
    """Keeps ``store`` equal to the API server's view of ``resource`` in one scope."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        type_: type[T],
        store: Store[T],
        on_event: OnEvent[T],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
        watch_timeout: int = 290,
        inactivity_timeout: float = 70.0,
        backoff_cap: float = 30.0,
    ) -> None:
        self.client = client
        self.resource = resource
        self.store = store
        self.on_event = on_event
        self.namespace = namespace
        self.label_selector = label_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.inactivity_timeout = inactivity_timeout
        self.backoff_cap = backoff_cap
        self._list_decoder: msgspec.json.Decoder[_ObjectList[T]] = msgspec.json.Decoder(_ObjectList[type_])  # type: ignore[valid-type]
        self._obj_decoder = msgspec.json.Decoder(type_)
        #: set once the first list has been stored and announced
        self.synced = anyio.Event()
        #: the resourceVersion the next watch starts from
        self.resource_version = ""
        #: how many times the watch was restarted, by reason
        self.restarts: dict[str, int] = {}

    @property
    def name(self) -> str:
        scope = self.namespace or "*"
        return f"{self.resource}@{scope}" + (f"[{self.label_selector}]" if self.label_selector else "")

    async def relist(self) -> None:
        """LIST everything and reconcile the store with it, announcing differences only."""
        seen: set[str] = set()
        cont: str | None = None
        rv = ""
        while True:
            body = await self.client.list(
                self.resource,
                self.namespace,
                label_selector=self.label_selector,
                limit=self.page_size,
                continue_token=cont,
            )
            page = self._list_decoder.decode(body)
            rv = page.metadata.resource_version
            for obj in page.items or ():
                key = object_key(obj)
                seen.add(key)
                if key not in self.store or self.store.resource_version(key) != obj.metadata.resource_version:
                    existed, old = self._keep(obj)
                    await self.on_event("MODIFIED" if existed else "ADDED", key, obj, old)
            cont = page.metadata.continue_
            if not cont:
                break
        for key in [k for k in self.store.keys(self.namespace) if k not in seen]:
            gone = self.store.delete(key)
            if gone is not None:
                await self.on_event("DELETED", key, gone, gone)
        self.resource_version = rv
        metrics.STORE_OBJECTS.labels(str(self.resource)).set(len(self.store))

    async def _handle(self, line: bytes) -> None:
        ev = _raw_event.decode(line)
        metrics.WATCH_EVENTS.labels(str(self.resource), ev.type).inc()
        if ev.type == "BOOKMARK":
            self.resource_version = (
                _bookmark.decode(ev.object).metadata.resource_version or self.resource_version
            )
            return
        if ev.type == "ERROR":
            raise error_from_status(_status.decode(ev.object))
        obj = self._obj_decoder.decode(ev.object)
        key = object_key(obj)
        self.resource_version = obj.metadata.resource_version or self.resource_version
        if ev.type == "DELETED":
            old = self.store.delete(key)
            await self.on_event("DELETED", key, obj, old)
        else:
            existed, old = self._keep(obj)
            await self.on_event("MODIFIED" if existed else "ADDED", key, obj, old)
        metrics.STORE_OBJECTS.labels(str(self.resource)).set(len(self.store))

    def _keep(self, obj: T) -> tuple[bool, T | None]:
        """Store ``obj``: (whether a previous object existed, that object). A packed store's
        previous object is not read back (``None``): decoding it would cost on every event,
        and the kinds kept packed are routed by the new object alone."""
        if self.store.packed:
            return self.store.put(obj), None
        old = self.store.upsert(obj)
        return old is not None, old

    def _restart(self, reason: str) -> None:
        self.restarts[reason] = self.restarts.get(reason, 0) + 1
        metrics.WATCH_RESTARTS.labels(str(self.resource), reason).inc()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run forever: list, watch, recover. Signals ``task_status`` after the first list."""
        failures = 0
        need_list = True
        started = False
        while True:
            try:
                if need_list:
                    await self.relist()
                    need_list = False
                    if not started:
                        started = True
                        self.synced.set()
                        task_status.started()
                async for line in self.client.watch_lines(
                    self.resource,
                    self.namespace,
                    resource_version=self.resource_version,
                    label_selector=self.label_selector,
                    timeout_seconds=self.watch_timeout,
                    inactivity_timeout=self.inactivity_timeout,
                ):
                    await self._handle(line)
                    failures = 0
                self._restart("closed")
                continue
            except Gone:
                log.info("watch %s: resourceVersion %s expired, relisting", self.name, self.resource_version)
                self._restart("gone")
                need_list = True
                continue
            except TimeoutError:
                log.warning(
                    "watch %s: no event or bookmark for %.0fs, reconnecting",
                    self.name,
                    self.inactivity_timeout,
                )
                self._restart("inactivity")
            except (ApiError, OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("watch %s: %s, reconnecting", self.name, exc)
                self._restart("error")
                if isinstance(exc, ApiError) and exc.code in (400, 403, 404):
                    need_list = True
            except Exception as exc:  # httpx stream errors and the like: never let a source die
                log.warning("watch %s: %s: %s, reconnecting", self.name, type(exc).__name__, exc)
                self._restart("error")
            failures += 1
            await anyio.sleep(random.uniform(0, min(self.backoff_cap, 0.2 * 2 ** min(failures, 10))))

    async def resync(self) -> None:
        """Announce every key in scope again (level-triggered safety net; no API calls)."""
        for key in self.store.keys(self.namespace):
            obj = self.store.get(key)
            if obj is not None:
                await self.on_event("RESYNC", key, obj, obj)
