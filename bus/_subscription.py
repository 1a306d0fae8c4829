"""One subscriber: its keyed queue, its workers, and what happens after each handler call."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import anyio
import anyio.abc
import msgspec
from opentelemetry import trace

from ._backoff import RetryPolicy
from ._delivery import Delivery, Handler, Requeue, _current
from ._errors import RetryAfter, TerminalError
from ._pending import Pending, Published, merge
from ._queue import KeyedQueue
from ._stats import DeliveryReport, Outcome, SubscriberStats
from ._tracing import ATTR_OUTCOME, delivery_span, mark_failed

__all__ = ["Subscription"]

E = TypeVar("E", bound=msgspec.Struct)

logger = logging.getLogger("bus")


class Subscription(Generic[E]):
    """A handler subscribed to a topic, with its own bounded keyed queue and workers.

    Created by :meth:`~bus.Bus.subscribe`; see there for the parameters.
    """

    def __init__(
        self,
        topic: type[E],
        handler: Handler[E],
        *,
        name: str,
        key: Callable[[E], Hashable],
        workers: int,
        maxsize: int | None,
        retry: RetryPolicy,
        timeout: float | None,
        tracer: trace.Tracer,
        on_delivery: Callable[[DeliveryReport], None] | None,
        detach: Callable[[Subscription[Any]], None],
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, not {workers!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 or None, not {timeout!r}")
        self._topic = topic
        self._topic_name = f"{topic.__module__}.{topic.__qualname__}"
        self._handler = handler
        self._name = name
        self._key = key
        self._workers = workers
        self._retry = retry
        self._timeout = timeout
        self._tracer = tracer
        self._on_delivery = on_delivery
        self._detach = detach
        self._queue: KeyedQueue[Hashable, Pending[E]] = KeyedQueue(maxsize, merge)
        self._failures: dict[Hashable, int] = {}
        self._rng = random.Random()
        # created once running: anyio primitives need an event loop
        self._scope: anyio.CancelScope | None = None
        self._finished: anyio.Event | None = None
        self._closed = False
        self._drained: bool | None = None
        self._published = 0
        self._coalesced = 0
        self._deliveries = 0
        self._failed = 0
        self._requeues = 0
        self._dropped = 0
        self._abandoned = 0

    def __repr__(self) -> str:
        return f"<Subscription {self._name!r} to {self._topic_name}>"

    @property
    def name(self) -> str:
        """The subscription's name (unique on its bus)."""
        return self._name

    @property
    def topic(self) -> type[E]:
        """The event class subscribed to (its subclasses are delivered too)."""
        return self._topic

    @property
    def closed(self) -> bool:
        """Whether the subscription stopped accepting events."""
        return self._closed

    def stats(self) -> SubscriberStats:
        """Return a snapshot of the queue depth and the totals of this subscription."""
        q = self._queue.statistics()
        return SubscriberStats(
            name=self._name,
            topic=self._topic_name,
            workers=self._workers,
            maxsize=self._queue.maxsize,
            queued=q.queued,
            delayed=q.delayed,
            processing=q.processing,
            waiting_publishers=q.waiting_putters,
            published=self._published,
            coalesced=self._coalesced,
            deliveries=self._deliveries,
            failures=self._failed,
            requeues=self._requeues,
            dropped=self._dropped,
            abandoned=self._abandoned,
        )

    async def aclose(self, drain_timeout: float = 10.0) -> bool:
        """Stop accepting events, deliver the queued ones, then stop the workers.

        The bus stops routing events to the subscription at once. Queued keys (and keys
        re-queued because an event arrived during their delivery) are delivered; pending
        retries and re-deliveries are dropped, and a failure while draining is not retried.
        Workers still busy after *drain_timeout* seconds are cancelled. Publishers waiting
        for room in this queue stop waiting for it. Idempotent.

        :returns: whether everything queued was delivered within *drain_timeout*
        """
        if self._drained is not None:
            if self._finished is not None:
                await self._finished.wait()
            return self._drained
        self._drained = False
        self._close_queue()
        if self._scope is None or self._finished is None:  # never ran
            self._drained = self._queue.statistics().queued == 0
            return self._drained
        with anyio.move_on_after(drain_timeout):
            await self._finished.wait()
        self._drained = self._finished.is_set()
        if not self._drained:
            left = self._queue.statistics()
            logger.warning(
                "subscriber %s: drain timed out after %gs with %d queued and %d in flight; cancelling",
                self._name,
                drain_timeout,
                left.queued,
                left.processing,
            )
            self._scope.cancel()
            await self._finished.wait()
        return self._drained

    def _close_queue(self) -> None:
        self._closed = True
        self._detach(self)  # no new events from now on
        abandoned = self._queue.close()
        if abandoned:
            self._abandoned += abandoned
            logger.info("subscriber %s: closing dropped %d pending retries", self._name, abandoned)

    def _abort(self) -> None:
        """Close and cancel at once (the bus is exiting on an exception or cancellation)."""
        self._close_queue()
        if self._drained is None:
            self._drained = False
        if self._scope is not None:
            self._scope.cancel()

    def _start(self, task_group: anyio.abc.TaskGroup) -> None:
        self._scope = anyio.CancelScope()
        self._finished = anyio.Event()
        task_group.start_soon(self._run, self._scope, self._finished, name=f"bus subscriber {self._name}")

    async def _run(self, scope: anyio.CancelScope, finished: anyio.Event) -> None:
        try:
            with scope:
                async with anyio.create_task_group() as tg:
                    for i in range(self._workers):
                        tg.start_soon(self._work, name=f"bus worker {self._name}[{i}]")
        finally:
            finished.set()

    def _offer(self, published: Published[E]) -> bool | None:
        """Queue *published* if that needs no waiting.

        :returns: ``True`` if queued, ``False`` if the queue is full, ``None`` if closed
        """
        try:
            merged = self._queue.put_nowait(self._key(published.event), Pending.of(published))
        except anyio.WouldBlock:
            return False
        except anyio.ClosedResourceError:
            return None
        self._count(merged)
        return True

    async def _put(self, published: Published[E]) -> bool:
        """Queue *published*, waiting for room; return ``False`` if the subscription closed."""
        try:
            merged = await self._queue.put(self._key(published.event), Pending.of(published))
        except anyio.ClosedResourceError:
            return False
        self._count(merged)
        return True

    def _count(self, merged: bool) -> None:
        self._published += 1
        self._coalesced += merged

    async def _work(self) -> None:
        queue = self._queue
        while True:
            try:
                key, pending = await queue.get()
            except anyio.EndOfStream:
                return
            retry, after = await self._deliver(key, pending)
            queue.done(key, retry=retry, after=after)

    async def _deliver(self, key: Hashable, pending: Pending[E]) -> tuple[Pending[E] | None, float]:
        """Run the handler once for *key*; return what to re-queue, and after how long."""
        attempt = self._failures.get(key, 0) + 1
        latest = pending.latest
        ready_at = pending.ready_at
        started = anyio.current_time()
        links = [sc for sc in pending.links or () if sc != latest.origin]
        retry: Pending[E] | None = None
        after = 0.0
        self._deliveries += 1
        with delivery_span(
            self._tracer,
            latest.context,
            subscriber=self._name,
            topic=self._topic_name,
            key=key,
            attempt=attempt,
            coalesced=pending.coalesced,
            links=links,
        ) as span:
            token = _current.set(Delivery(self._name, self._topic, key, attempt, pending.coalesced))
            try:
                if self._timeout is None:
                    result = await self._handler(latest.event)
                else:
                    with anyio.fail_after(self._timeout):
                        result = await self._handler(latest.event)
            except RetryAfter as exc:
                mark_failed(span, exc)
                outcome, after = self._failed_attempt(key, attempt, exc, exc.delay)
            except TerminalError as exc:
                mark_failed(span, exc)
                self._failed += 1
                self._dropped += 1
                self._failures.pop(key, None)
                outcome = Outcome.TERMINAL
                logger.error(
                    "subscriber %s: terminal error for key %r (attempt %d), waiting for a new event: %s",
                    self._name,
                    key,
                    attempt,
                    exc,
                )
            except Exception as exc:
                mark_failed(span, exc)
                outcome, after = self._failed_attempt(key, attempt, exc, None)
            else:
                self._failures.pop(key, None)
                if isinstance(result, Requeue):
                    self._requeues += 1
                    outcome, after = Outcome.REQUEUE, max(0.0, result.after)
                else:
                    outcome = Outcome.SUCCESS
            finally:
                _current.reset(token)
            span.set_attribute(ATTR_OUTCOME, outcome.value)
            if outcome in (Outcome.RETRY, Outcome.REQUEUE):
                retry = pending
                retry.ready_at = anyio.current_time() + after
                retry.link(span.get_span_context())
        if self._on_delivery is not None:
            ended = anyio.current_time()
            report = DeliveryReport(
                subscriber=self._name,
                topic=self._topic_name,
                key=key,
                attempt=attempt,
                coalesced=pending.coalesced,
                outcome=outcome,
                queued_seconds=max(0.0, started - ready_at),
                handler_seconds=ended - started,
                retry_in=after if retry is not None else None,
            )
            try:
                self._on_delivery(report)
            except Exception:
                logger.exception("subscriber %s: on_delivery hook failed", self._name)
        return retry, after

    def _failed_attempt(
        self, key: Hashable, attempt: int, exc: Exception, delay: float | None
    ) -> tuple[Outcome, float]:
        self._failed += 1
        if self._retry.gives_up(attempt):
            self._failures.pop(key, None)
            self._dropped += 1
            logger.error(
                "subscriber %s: giving up on key %r after %d attempts, waiting for a new event",
                self._name,
                key,
                attempt,
                exc_info=exc,
            )
            return Outcome.GAVE_UP, 0.0
        self._failures[key] = attempt
        if delay is None:
            delay = self._retry.delay(attempt, self._rng)
            logger.warning(
                "subscriber %s: handler failed for key %r (attempt %d), retrying in %.3gs",
                self._name,
                key,
                attempt,
                delay,
                exc_info=exc,
            )
        else:
            logger.info(
                "subscriber %s: key %r asked to be retried in %.3gs (attempt %d): %s",
                self._name,
                key,
                delay,
                attempt,
                exc,
            )
        return Outcome.RETRY, delay
