"""Observability: queue depth and totals per subscriber, and the per-delivery report hook."""

from __future__ import annotations

import anyio
import pytest

from bus import Bus, DeliveryReport, Outcome, RetryPolicy, SubscriberStats

from .helpers import KeyEvent, Recorder


@pytest.mark.anyio
async def test_queue_depth_is_observable() -> None:
    started: Recorder[str] = Recorder()
    gate = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        started.add(event.key)
        if event.key == "bad":
            raise RuntimeError("later")
        await gate.wait()

    async with Bus() as bus:
        sub = bus.subscribe(
            KeyEvent, handler, name="h", workers=2, maxsize=3, retry=RetryPolicy(base=3600, cap=3600)
        )
        assert sub.stats() == SubscriberStats("h", f"{KeyEvent.__module__}.KeyEvent", 2, 3, *[0] * 11)
        await bus.publish(KeyEvent(key="bad"))
        await started.wait_len(1)
        await started.wait_for(lambda: sub.stats().delayed == 1)
        for key in "abcde":  # a, b in flight; c, d, e queued (full)
            await bus.publish(KeyEvent(key=key))
        await bus.publish(KeyEvent(key="c", version=1))  # coalesced
        await started.wait_len(3)
        await anyio.wait_all_tasks_blocked()
        stats = bus.stats()["h"]
        assert stats.depth == stats.queued + stats.delayed == 4
        assert (stats.queued, stats.delayed, stats.processing) == (3, 1, 2)
        assert (stats.published, stats.coalesced, stats.deliveries) == (7, 1, 3)
        assert (stats.failures, stats.waiting_publishers) == (1, 0)
        gate.set()
        await started.wait_len(6)
    stats = sub.stats()
    assert (stats.queued, stats.processing, stats.deliveries, stats.abandoned) == (0, 0, 6, 1)


@pytest.mark.anyio
async def test_every_handler_call_is_reported() -> None:
    reports: Recorder[DeliveryReport] = Recorder()
    gate = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        if event.version == 0:
            await gate.wait()

    async with Bus(on_delivery=reports.add) as bus:
        bus.subscribe(KeyEvent, handler, name="h")
        await bus.publish(KeyEvent(key="a", version=0))
        await bus.publish(KeyEvent(key="b", version=1))
        await anyio.wait_all_tasks_blocked()
        gate.set()
        await reports.wait_len(2)
    a, b = reports.items
    assert (a.subscriber, a.key, a.attempt, a.coalesced, a.outcome, a.retry_in) == (
        "h",
        "a",
        1,
        1,
        Outcome.SUCCESS,
        None,
    )
    assert a.topic == f"{KeyEvent.__module__}.KeyEvent"
    assert a.handler_seconds > 0
    assert b.queued_seconds > 0  # b waited for the only worker
