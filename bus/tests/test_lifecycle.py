"""Lifecycle: drain on close, drain timeout, cancellation, errors in the body, unsubscribe."""

from __future__ import annotations

import anyio
import pytest

from bus import Bus, BusClosedError, RetryPolicy

from .helpers import TIMEOUT, KeyEvent, Recorder


@pytest.mark.anyio
async def test_aclose_delivers_everything_queued() -> None:
    seen: Recorder[str] = Recorder()

    async def handler(event: KeyEvent) -> None:
        await anyio.sleep(0.001)
        seen.add(event.key)

    async with Bus() as bus:
        bus.subscribe(KeyEvent, handler, name="h", workers=2)
        for i in range(20):
            await bus.publish(KeyEvent(key=str(i)))
        assert await bus.aclose(drain_timeout=TIMEOUT) is True
        assert sorted(seen.items, key=int) == [str(i) for i in range(20)]
        with pytest.raises(BusClosedError):
            await bus.publish(KeyEvent(key="late"))
        with pytest.raises(BusClosedError):
            bus.subscribe(KeyEvent, handler, name="late")
        assert await bus.aclose() is True  # idempotent
        assert bus.stats() == {}


@pytest.mark.anyio
async def test_leaving_the_block_drains() -> None:
    seen: Recorder[str] = Recorder()

    async def handler(event: KeyEvent) -> None:
        await anyio.sleep(0.001)
        seen.add(event.key)

    async with Bus(drain_timeout=TIMEOUT) as bus:
        bus.subscribe(KeyEvent, handler)
        for key in "abc":
            await bus.publish(KeyEvent(key=key))
    assert seen.items == ["a", "b", "c"]


@pytest.mark.anyio
async def test_drain_timeout_cancels_stuck_handlers() -> None:
    cancelled: Recorder[str] = Recorder()
    started: Recorder[str] = Recorder()

    async def stuck(event: KeyEvent) -> None:
        started.add(event.key)
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.add(event.key)
            raise

    async def quick(event: KeyEvent) -> None:
        pass

    async with Bus() as bus:
        bus.subscribe(KeyEvent, stuck, name="stuck", workers=2)
        bus.subscribe(KeyEvent, quick, name="quick")
        for key in "abc":
            await bus.publish(KeyEvent(key=key))
        await started.wait_len(2)
        with anyio.fail_after(TIMEOUT):
            assert await bus.aclose(drain_timeout=0.05) is False
    assert sorted(cancelled.items) == ["a", "b"]


@pytest.mark.anyio
async def test_closing_drops_pending_retries() -> None:
    failed = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        failed.set()
        raise RuntimeError("retry me much later")

    async with Bus() as bus:
        sub = bus.subscribe(KeyEvent, handler, retry=RetryPolicy(base=3600, cap=3600))
        await bus.publish(KeyEvent(key="a"))
        await failed.wait()
        await anyio.wait_all_tasks_blocked()
        assert sub.stats().delayed == 1
        with anyio.fail_after(TIMEOUT):
            assert await bus.aclose() is True
    stats = sub.stats()
    assert (stats.delayed, stats.abandoned) == (0, 1)


@pytest.mark.anyio
async def test_cancelling_the_enclosing_scope_cancels_handlers_and_exits() -> None:
    started = anyio.Event()
    cancelled = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(TIMEOUT):
        with anyio.CancelScope() as scope:
            async with Bus() as bus:
                bus.subscribe(KeyEvent, handler)
                await bus.publish(KeyEvent(key="a"))
                await started.wait()
                scope.cancel()
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert cancelled.is_set()
    with pytest.raises(BusClosedError):
        await bus.publish(KeyEvent(key="b"))


@pytest.mark.anyio
async def test_an_error_in_the_block_cancels_the_workers_and_propagates() -> None:
    started = anyio.Event()
    cancelled = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(TIMEOUT), pytest.raises(KeyError, match="oops"):
        async with Bus(drain_timeout=3600) as bus:
            bus.subscribe(KeyEvent, handler)
            await bus.publish(KeyEvent(key="a"))
            await started.wait()
            raise KeyError("oops")
    assert cancelled.is_set()


@pytest.mark.anyio
async def test_subscribe_while_running_and_unsubscribe() -> None:
    first: Recorder[str] = Recorder()
    second: Recorder[str] = Recorder()

    async def on_first(event: KeyEvent) -> None:
        first.add(event.key)

    async def on_second(event: KeyEvent) -> None:
        second.add(event.key)

    async with Bus() as bus:
        sub1 = bus.subscribe(KeyEvent, on_first, name="first")
        await bus.publish(KeyEvent(key="a"))
        bus.subscribe(KeyEvent, on_second, name="second")
        await bus.publish(KeyEvent(key="b"))
        await first.wait_len(2)
        await second.wait_len(1)
        assert await sub1.aclose() is True
        assert sub1.closed
        assert [s.name for s in bus.subscriptions] == ["second"]
        assert await bus.publish(KeyEvent(key="c")) == 1
        await second.wait_len(2)
    assert first.items == ["a", "b"]
    assert second.items == ["b", "c"]


@pytest.mark.anyio
async def test_a_bus_runs_once() -> None:
    bus = Bus()
    async with bus:
        pass
    with pytest.raises(RuntimeError, match="once"):
        await bus.__aenter__()


@pytest.mark.anyio
async def test_closing_a_bus_that_never_ran_reports_undelivered_events() -> None:
    async def handler(event: KeyEvent) -> None:
        pass

    bus = Bus()
    bus.subscribe(KeyEvent, handler)
    await bus.publish(KeyEvent(key="a"))  # queued: nothing runs it
    assert await bus.aclose() is False


@pytest.mark.anyio
async def test_a_draining_subscription_takes_no_new_events_and_blocks_no_publisher() -> None:
    release = anyio.Event()
    draining: Recorder[str] = Recorder()
    other: Recorder[str] = Recorder()

    async def slow(event: KeyEvent) -> None:
        draining.add(event.key)
        await release.wait()

    async def fast(event: KeyEvent) -> None:
        other.add(event.key)

    async with Bus() as bus:
        sub = bus.subscribe(KeyEvent, slow, name="slow")
        bus.subscribe(KeyEvent, fast, name="fast")
        await bus.publish(KeyEvent(key="a"))
        await bus.publish(KeyEvent(key="b"))
        await draining.wait_len(1)
        async with anyio.create_task_group() as tg:

            async def close() -> None:
                assert await sub.aclose(drain_timeout=TIMEOUT) is True

            tg.start_soon(close)
            await anyio.wait_all_tasks_blocked()
            assert sub.closed
            assert await bus.publish(KeyEvent(key="c")) == 1  # only "fast" takes it
            await other.wait_len(3)
            release.set()
    assert draining.items == ["a", "b"]
    assert other.items == ["a", "b", "c"]
