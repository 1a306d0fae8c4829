"""Observability without dependencies: statistics to poll, and a report per delivery.

Both are shaped for a Prometheus exporter: poll :meth:`~bus.Bus.stats` from a collector at
scrape time (gauges and counters, like client-go's ``workqueue_*`` metrics) and feed
:class:`DeliveryReport` to histograms from the bus's ``on_delivery`` hook.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import StrEnum
from typing import NamedTuple

__all__ = ["DeliveryReport", "Outcome", "SubscriberStats"]


class Outcome(StrEnum):
    """How a delivery ended (a low-cardinality label)."""

    #: the handler returned ``None``
    SUCCESS = "success"
    #: the handler returned :class:`~bus.Requeue`
    REQUEUE = "requeue"
    #: the handler raised (or timed out); the key will be retried
    RETRY = "retry"
    #: the handler raised and ``max_attempts`` is exhausted; the key waits for a new event
    GAVE_UP = "gave_up"
    #: the handler raised :exc:`~bus.TerminalError`; the key waits for a new event
    TERMINAL = "terminal"


class SubscriberStats(NamedTuple):
    """A snapshot of one subscription: queue depth (gauges) and totals (counters)."""

    #: the subscription's name
    name: str
    #: qualified name of the topic
    topic: str
    #: worker tasks (concurrent deliveries of distinct keys)
    workers: int
    #: bound on queued keys (``None``: unbounded)
    maxsize: int | None
    #: keys waiting to be delivered now (the bounded depth)
    queued: int
    #: keys waiting for a retry or a requested re-delivery
    delayed: int
    #: keys being delivered now
    processing: int
    #: publishers waiting for room in this subscription's queue
    waiting_publishers: int
    #: events accepted (a counter, like ``workqueue_adds_total``)
    published: int
    #: events merged into an event of the same key that was still undelivered
    coalesced: int
    #: handler calls, whatever their outcome
    deliveries: int
    #: handler calls that raised (including timeouts, :exc:`~bus.RetryAfter`, terminal errors)
    failures: int
    #: handler calls that returned :class:`~bus.Requeue`
    requeues: int
    #: keys given up after a failure (``max_attempts`` reached, or a terminal error)
    dropped: int
    #: delayed keys dropped by closing (retries and re-deliveries that never ran)
    abandoned: int

    @property
    def depth(self) -> int:
        """Keys holding an undelivered event: ``queued + delayed``."""
        return self.queued + self.delayed


class DeliveryReport(NamedTuple):
    """One finished handler call, passed to the bus's ``on_delivery`` hook."""

    #: the subscription's name
    subscriber: str
    #: qualified name of the topic
    topic: str
    #: the key delivered (may be high-cardinality: not for metric labels)
    key: Hashable
    #: 1, plus the key's consecutive failures before this call
    attempt: int
    #: how many published events the delivery stood for
    coalesced: int
    #: how the call ended
    outcome: Outcome
    #: seconds from the key becoming ready to the handler starting
    queued_seconds: float
    #: seconds the handler ran
    handler_seconds: float
    #: seconds until the key is delivered again (retry or requeue), else ``None``
    retry_in: float | None
