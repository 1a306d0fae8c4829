"""The bus: routes published events to subscriptions and runs their workers."""

from __future__ import annotations

import enum
import logging
import operator
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import msgspec
from opentelemetry import trace

from ._backoff import RetryPolicy
from ._delivery import Handler
from ._errors import BusClosedError
from ._pending import Published
from ._stats import DeliveryReport, SubscriberStats
from ._subscription import Subscription
from ._tracing import capture, get_tracer

__all__ = ["Bus"]

E = TypeVar("E", bound=msgspec.Struct)

logger = logging.getLogger("bus")


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class Bus:
    """A typed in-process event bus with keyed, coalescing, per-subscriber queues.

    Topics are :class:`msgspec.Struct` classes: an event is delivered to every subscription to
    its class or to one of its base classes. Each subscription has its own bounded queue of
    *keys* and its own workers, so a slow or failing subscriber only ever slows itself (and the
    publishers that must wait for room in its queue). Per subscription, events are coalesced by
    key (the newest event of a key is delivered, once) and a key is never delivered twice at
    once. Handlers should reconcile from current state: they may see fewer events than were
    published, never an older event after a newer one.

    Run it as an async context manager; its workers live in a task group::

        async with Bus() as bus:
            bus.subscribe(KeyEvent, reconcile, name="hasher", workers=4)
            await bus.publish(KeyEvent(kind="MCPServer", key="ns/name"))

    Leaving the block normally drains (:meth:`aclose` with the default *drain_timeout*);
    leaving it with an exception, or by cancellation, cancels the workers at once (and the
    exception propagates unchanged).

    :param drain_timeout: default seconds :meth:`aclose` waits for subscribers to drain
    :param tracer_provider: OpenTelemetry tracer provider (the global one by default)
    :param on_delivery: called with a :class:`~bus.DeliveryReport` after every handler call
        (from the worker; it must not block, and its exceptions are logged and ignored)
    """

    def __init__(
        self,
        *,
        drain_timeout: float = 10.0,
        tracer_provider: trace.TracerProvider | None = None,
        on_delivery: Callable[[DeliveryReport], None] | None = None,
    ) -> None:
        self._drain_timeout = drain_timeout
        self._tracer = get_tracer(tracer_provider)
        self._on_delivery = on_delivery
        self._subscriptions: dict[str, Subscription[Any]] = {}
        self._routes: dict[type, tuple[Subscription[Any], ...]] = {}
        self._state = _State.NEW
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closed: anyio.Event | None = None
        self._drained = False

    def __repr__(self) -> str:
        return f"<Bus {self._state.value}, {len(self._subscriptions)} subscriptions>"

    @property
    def subscriptions(self) -> tuple[Subscription[Any], ...]:
        """The live subscriptions, in subscription order."""
        return tuple(self._subscriptions.values())

    def subscribe(
        self,
        topic: type[E],
        handler: Handler[E],
        *,
        name: str | None = None,
        key: Callable[[E], Hashable] | None = None,
        workers: int = 1,
        maxsize: int | None = 1024,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Subscription[E]:
        """Deliver events of class *topic* (or a subclass) to *handler*.

        May be called before or while the bus runs. The handler is awaited with the newest
        event of a key. Returning ``None`` is a success; returning :class:`~bus.Requeue`
        asks for a re-delivery later; raising is a failure, retried with *retry*'s backoff (a
        newer event for the key is delivered at once, keeping the failure count until a
        success), unless it is :exc:`~bus.TerminalError`, or :exc:`~bus.RetryAfter` which sets
        the delay. :func:`~bus.current_delivery` tells the handler its key and attempt.

        :param topic: the event class
        :param handler: ``async def handler(event) -> Requeue | None``
        :param name: unique name, used in logs, statistics and span names (default: the
            handler's qualified name)
        :param key: the key of an event (default: its ``key`` attribute); it runs inside
            :meth:`publish`, must be cheap and must not raise
        :param workers: concurrent deliveries (of distinct keys)
        :param maxsize: most keys queued before publishers of a new key wait (``None``:
            unbounded; memory is then bounded by the number of distinct keys)
        :param retry: backoff and attempts for failures (default :class:`~bus.RetryPolicy`)
        :param timeout: seconds a handler call may run before it fails with
            :exc:`TimeoutError` (``None``: no limit)
        :raises TypeError: if *topic* is not a msgspec Struct class, or has no ``key`` field
            and no *key* function is given
        :raises ValueError: if *name* is taken, or a number is out of range
        :raises BusClosedError: if the bus is closing or closed
        """
        if not (isinstance(topic, type) and issubclass(topic, msgspec.Struct)):
            raise TypeError(f"topic must be a msgspec.Struct subclass, not {topic!r}")
        if key is None:
            if "key" not in topic.__struct_fields__:
                raise TypeError(f"{topic.__qualname__} has no 'key' field: pass key=")
            key = operator.attrgetter("key")
        if name is None:
            name = getattr(handler, "__qualname__", None) or repr(handler)
        if self._state in (_State.CLOSING, _State.CLOSED):
            raise BusClosedError("the bus is closed")
        if name in self._subscriptions:
            raise ValueError(f"a subscription named {name!r} exists")
        subscription = Subscription(
            topic,
            handler,
            name=name,
            key=key,
            workers=workers,
            maxsize=maxsize,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            tracer=self._tracer,
            on_delivery=self._on_delivery,
            detach=self._detach,
        )
        self._subscriptions[name] = subscription
        self._routes.clear()
        if self._task_group is not None:
            subscription._start(self._task_group)
        return subscription

    async def publish(self, event: msgspec.Struct) -> int:
        """Queue *event* for every subscription to its class (or a base class).

        The event is queued into each subscription independently: subscriptions with room,
        or already holding an undelivered event of the same key (coalescing), take it at
        once; then the call waits only for the subscriptions whose queue is full, each
        admitting it as soon as it has room. So a slow subscriber delays this publisher, never
        the delivery to the others.

        The caller's OpenTelemetry context is captured: the delivery spans are its children.
        Like every anyio operation, the call is a checkpoint (it yields to other tasks).
        Events published before the bus runs wait in the queues until it does.

        :returns: the number of subscriptions that took the event (one closed while this
            call waited for it is not counted)
        :raises BusClosedError: if the bus is closing or closed (also while waiting)
        """
        await anyio.lowlevel.checkpoint()
        if self._state in (_State.CLOSING, _State.CLOSED):
            raise BusClosedError("the bus is closed")
        subscriptions = self._route(type(event))
        if not subscriptions:
            return 0
        published = Published.capture(event, capture(), anyio.current_time())
        accepted = 0
        full: list[Subscription[Any]] = []
        for subscription in subscriptions:
            offered = subscription._offer(published)
            if offered:
                accepted += 1
            elif offered is not None:
                full.append(subscription)
        if not full:
            return accepted
        if len(full) == 1:
            results = [await full[0]._put(published)]
        else:
            results = []

            async def put(subscription: Subscription[Any]) -> None:
                results.append(await subscription._put(published))

            async with anyio.create_task_group() as tg:
                for subscription in full:
                    tg.start_soon(put, subscription)
        if not all(results) and self._state in (_State.CLOSING, _State.CLOSED):
            raise BusClosedError("the bus closed while the event waited for room")
        return accepted + sum(results)

    def stats(self) -> dict[str, SubscriberStats]:
        """Return a snapshot of every live subscription, by name (see :meth:`Subscription.stats`)."""
        return {name: s.stats() for name, s in self._subscriptions.items()}

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("a Bus can be entered only once")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._closed = anyio.Event()
        self._state = _State.RUNNING
        for subscription in self._subscriptions.values():
            subscription._start(task_group)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        task_group = self._task_group
        assert task_group is not None
        try:
            if exc_type is None:
                await self.aclose()
        finally:
            self._abort()
            try:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    handled = await task_group.__aexit__(exc_type, exc, tb)
                else:  # the body's own exception propagates as is, not in an ExceptionGroup
                    handled = await task_group.__aexit__(None, None, None)
            finally:
                self._state = _State.CLOSED
                assert self._closed is not None
                self._closed.set()
        return bool(handled)

    async def aclose(self, drain_timeout: float | None = None) -> bool:
        """Stop accepting events, let every subscription drain, then stop the workers.

        New publishes and subscriptions raise :exc:`~bus.BusClosedError`, as do publishers
        waiting for room. Each subscription delivers its queued keys (see
        :meth:`Subscription.aclose`); workers still busy after *drain_timeout* seconds are
        cancelled. Idempotent: a second call waits for the first.

        :param drain_timeout: seconds to wait (default: the bus's *drain_timeout*)
        :returns: whether every subscription drained in time
        """
        if self._state is _State.CLOSED:
            return self._drained
        if self._state is _State.CLOSING:
            assert self._closed is not None
            await self._closed.wait()
            return self._drained
        timeout = self._drain_timeout if drain_timeout is None else drain_timeout
        if self._closed is None:
            self._closed = anyio.Event()
        self._state = _State.CLOSING
        results: list[bool] = []

        async def close(subscription: Subscription[Any]) -> None:
            results.append(await subscription.aclose(timeout))

        try:
            async with anyio.create_task_group() as tg:
                for subscription in list(self._subscriptions.values()):
                    tg.start_soon(close, subscription)
            self._drained = all(results)
        finally:
            self._state = _State.CLOSED
            self._closed.set()
        return self._drained

    def _abort(self) -> None:
        if self._state is not _State.CLOSED:
            self._state = _State.CLOSING
        for subscription in list(self._subscriptions.values()):
            subscription._abort()

    def _route(self, cls: type) -> tuple[Subscription[Any], ...]:
        try:
            return self._routes[cls]
        except KeyError:
            pass
        route = tuple(s for s in self._subscriptions.values() if issubclass(cls, s.topic))
        self._routes[cls] = route
        return route

    def _detach(self, subscription: Subscription[Any]) -> None:
        if self._subscriptions.get(subscription.name) is subscription:
            del self._subscriptions[subscription.name]
            self._routes.clear()
