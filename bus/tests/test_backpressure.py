"""Backpressure: a full subscriber holds back its publishers, never the other subscribers."""

from __future__ import annotations

import anyio
import pytest

from bus import Bus, BusClosedError

from .helpers import TIMEOUT, KeyEvent, Recorder


@pytest.mark.anyio
async def test_a_slow_subscriber_does_not_delay_a_fast_one() -> None:
    fast: Recorder[str] = Recorder()
    slow: Recorder[str] = Recorder()
    gate = anyio.Event()
    published: Recorder[str] = Recorder()

    async def on_fast(event: KeyEvent) -> None:
        fast.add(event.key)

    async def on_slow(event: KeyEvent) -> None:
        slow.add(event.key)
        await gate.wait()

    async def publisher(bus: Bus) -> None:
        for i in range(4):
            await bus.publish(KeyEvent(key=f"k{i}"))
            published.add(f"k{i}")

    async with Bus() as bus:
        slow_sub = bus.subscribe(KeyEvent, on_slow, name="slow", maxsize=2)
        bus.subscribe(KeyEvent, on_fast, name="fast", maxsize=2)
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher, bus)
            # k0 is in the slow handler, k1 and k2 fill its queue, k3 waits for room in it ...
            await fast.wait_len(4)
            await slow.wait_len(1)
            await published.wait_len(3)
            await anyio.wait_all_tasks_blocked()
            stats = slow_sub.stats()
            assert (stats.processing, stats.queued, stats.waiting_publishers) == (1, 2, 1)
            assert published.items == ["k0", "k1", "k2"]
            # ... yet the fast subscriber already had every event, k3 included
            assert fast.items == ["k0", "k1", "k2", "k3"]
            # coalescing into a key the full queue holds never waits
            with anyio.fail_after(TIMEOUT):
                await bus.publish(KeyEvent(key="k1", version=1))
            gate.set()
        await slow.wait_len(4)
    assert slow.items == ["k0", "k1", "k2", "k3"]
    assert fast.items == ["k0", "k1", "k2", "k3", "k1"]


@pytest.mark.anyio
async def test_publishers_waiting_for_room_are_released_by_closing() -> None:
    errors: Recorder[BaseException] = Recorder()

    async def handler(event: KeyEvent) -> None:
        await anyio.sleep_forever()

    async def publish(bus: Bus, key: str) -> None:
        try:
            await bus.publish(KeyEvent(key=key))
        except BusClosedError as exc:
            errors.add(exc)

    async with Bus() as bus:
        sub = bus.subscribe(KeyEvent, handler, maxsize=1)
        await bus.publish(KeyEvent(key="a"))  # processing
        await bus.publish(KeyEvent(key="b"))  # queued: full
        async with anyio.create_task_group() as tg:
            tg.start_soon(publish, bus, "c")
            tg.start_soon(publish, bus, "d")
            await anyio.wait_all_tasks_blocked()
            assert sub.stats().waiting_publishers == 2
            assert await bus.aclose(drain_timeout=0.01) is False  # "a" never finishes
    assert len(errors.items) == 2


@pytest.mark.anyio
async def test_an_unbounded_subscriber_never_holds_back_its_publisher() -> None:
    gate = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        await gate.wait()

    async with Bus() as bus:
        sub = bus.subscribe(KeyEvent, handler, maxsize=None)
        with anyio.fail_after(TIMEOUT):
            for i in range(2000):
                await bus.publish(KeyEvent(key=str(i)))
        assert sub.stats().queued == 1999
        gate.set()
