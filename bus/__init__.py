"""A small typed in-process event bus on anyio, msgspec and OpenTelemetry.

It knows nothing of Kubernetes. Topics are :class:`msgspec.Struct` classes; every subscription
has its own bounded queue of keys with per-key coalescing and serialisation (client-go's
workqueue semantics), retries failures with capped exponential backoff and jitter, and runs
each delivery in an OpenTelemetry span that is a child of the publisher's.

::

    async with Bus() as bus:
        bus.subscribe(KeyEvent, reconcile, name="hasher", workers=4)
        await bus.publish(KeyEvent(kind="MCPServer", key="ns/name"))
"""

from ._backoff import RetryPolicy
from ._bus import Bus
from ._delivery import Delivery, Handler, Requeue, current_delivery
from ._errors import BusClosedError, BusError, RetryAfter, TerminalError
from ._stats import DeliveryReport, Outcome, SubscriberStats
from ._subscription import Subscription

__all__ = [
    "Bus",
    "BusClosedError",
    "BusError",
    "Delivery",
    "DeliveryReport",
    "Handler",
    "Outcome",
    "Requeue",
    "RetryAfter",
    "RetryPolicy",
    "SubscriberStats",
    "Subscription",
    "TerminalError",
    "current_delivery",
]
