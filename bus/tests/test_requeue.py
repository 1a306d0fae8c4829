"""Delayed re-delivery: a handler returning Requeue(after=...)."""

from __future__ import annotations

import anyio
import pytest

from bus import Bus, DeliveryReport, Outcome, Requeue, current_delivery

from .helpers import KeyEvent, Recorder


@pytest.mark.anyio
async def test_requeue_delivers_the_key_again_after_the_delay() -> None:
    seen: Recorder[tuple[int, float]] = Recorder()
    reports: Recorder[DeliveryReport] = Recorder()

    async def handler(event: KeyEvent) -> Requeue | None:
        seen.add((event.version, anyio.current_time()))
        return Requeue(after=0.05) if len(seen.items) == 1 else None

    async with Bus(on_delivery=reports.add) as bus:
        sub = bus.subscribe(KeyEvent, handler, name="h")
        await bus.publish(KeyEvent(key="a", version=7))
        await seen.wait_len(2)
        await reports.wait_len(2)
        stats = sub.stats()
    (v1, t1), (v2, t2) = seen.items
    assert v1 == v2 == 7
    assert t2 - t1 >= 0.05
    assert [r.outcome for r in reports.items] == [Outcome.REQUEUE, Outcome.SUCCESS]
    assert reports.items[0].retry_in == 0.05
    assert (stats.requeues, stats.failures, stats.delayed) == (1, 0, 0)


@pytest.mark.anyio
async def test_requeue_now_goes_to_the_back_of_the_queue() -> None:
    seen: Recorder[str] = Recorder()

    async def handler(event: KeyEvent) -> Requeue | None:
        seen.add(event.key)
        return Requeue(after=0) if seen.items.count(event.key) == 1 and event.key == "a" else None

    bus = Bus()
    bus.subscribe(KeyEvent, handler, name="h")
    await bus.publish(KeyEvent(key="a"))  # queued until the bus runs
    await bus.publish(KeyEvent(key="b"))
    async with bus:
        await seen.wait_len(3)
    assert seen.items == ["a", "b", "a"]


@pytest.mark.anyio
async def test_a_new_event_replaces_a_pending_requeue_and_is_delivered_at_once() -> None:
    seen: Recorder[tuple[int, int]] = Recorder()

    async def handler(event: KeyEvent) -> Requeue | None:
        seen.add((event.version, current_delivery().attempt))
        return Requeue(after=3600) if event.version == 0 else None

    async with Bus() as bus:
        sub = bus.subscribe(KeyEvent, handler, name="h")
        await bus.publish(KeyEvent(key="a", version=0))
        await seen.wait_len(1)
        await seen.wait_for(lambda: sub.stats().delayed == 1)
        await bus.publish(KeyEvent(key="a", version=1))
        await seen.wait_len(2)
        assert sub.stats().delayed == 0
    assert seen.items == [(0, 1), (1, 1)]
