"""Delivery: coalescing, per-key serialisation, concurrency across keys, routing and keys."""

from __future__ import annotations

from collections import Counter

import anyio
import anyio.lowlevel
import msgspec
import pytest

from bus import Bus, Delivery, current_delivery

from .helpers import TIMEOUT, KeyEvent, OtherEvent, Recorder, SubEvent


@pytest.mark.anyio
async def test_events_for_a_waiting_key_coalesce_into_one_delivery_of_the_newest() -> None:
    seen: Recorder[tuple[KeyEvent, Delivery]] = Recorder()
    gate = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        seen.add((event, current_delivery()))
        if event.version == 0:
            await gate.wait()

    async with Bus() as bus:
        sub = bus.subscribe(KeyEvent, handler, name="h")
        await bus.publish(KeyEvent(key="a", version=0))
        await seen.wait_len(1)  # "a" is processing
        for version in range(1, 6):
            await bus.publish(KeyEvent(key="a", version=version))
        gate.set()
        await seen.wait_len(2)
        stats = sub.stats()
    assert [(e.version, d.coalesced) for e, d in seen.items] == [(0, 1), (5, 5)]
    assert (stats.published, stats.coalesced, stats.deliveries) == (6, 4, 2)


@pytest.mark.anyio
async def test_a_key_is_never_delivered_twice_at_once_and_ends_on_its_newest_event() -> None:
    active: Counter[str] = Counter()
    overlaps: list[str] = []
    last: dict[str, int] = {}
    seen: Recorder[KeyEvent] = Recorder()

    async def handler(event: KeyEvent) -> None:
        if active[event.key]:
            overlaps.append(event.key)
        active[event.key] += 1
        try:
            for _ in range(event.version % 4):
                await anyio.lowlevel.checkpoint()
            await anyio.sleep(0.001)
        finally:
            active[event.key] -= 1
        last[event.key] = event.version
        seen.add(event)

    async with Bus() as bus:
        bus.subscribe(KeyEvent, handler, name="h", workers=8)
        for version in range(200):
            await bus.publish(KeyEvent(key="ab"[version % 2], version=version))
        await seen.wait_for(lambda: last == {"a": 198, "b": 199})
    assert overlaps == []
    versions = [e.version for e in seen.items if e.key == "a"]
    assert versions == sorted(versions)


@pytest.mark.anyio
async def test_distinct_keys_are_delivered_concurrently_up_to_the_worker_count() -> None:
    active: Recorder[str] = Recorder()
    peak = 0
    release = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        nonlocal peak
        active.add(event.key)
        peak = max(peak, len(active.items))
        try:
            await release.wait()
        finally:
            active.items.remove(event.key)

    async with Bus() as bus:
        bus.subscribe(KeyEvent, handler, name="h", workers=3)
        for key in "abcde":
            await bus.publish(KeyEvent(key=key))
        await active.wait_len(3)  # deadlocks (and times out) unless 3 run at once
        await anyio.wait_all_tasks_blocked()
        assert len(active.items) == 3
        release.set()
    assert peak == 3


@pytest.mark.anyio
async def test_one_worker_delivers_one_key_at_a_time() -> None:
    active = 0
    peak = 0
    seen: Recorder[str] = Recorder()

    async def handler(event: KeyEvent) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.001)
        active -= 1
        seen.add(event.key)

    async with Bus() as bus:
        bus.subscribe(KeyEvent, handler, name="h")
        for key in "abcdef":
            await bus.publish(KeyEvent(key=key))
        await seen.wait_len(6)
    assert peak == 1
    assert seen.items == list("abcdef")  # fair: first queued, first delivered


@pytest.mark.anyio
async def test_events_route_by_class_and_base_class() -> None:
    base: Recorder[KeyEvent] = Recorder()
    sub: Recorder[KeyEvent] = Recorder()
    other: Recorder[OtherEvent] = Recorder()

    async def on_base(event: KeyEvent) -> None:
        base.add(event)

    async def on_sub(event: SubEvent) -> None:
        sub.add(event)

    async def on_other(event: OtherEvent) -> None:
        other.add(event)

    async with Bus() as bus:
        bus.subscribe(KeyEvent, on_base)
        bus.subscribe(SubEvent, on_sub)
        bus.subscribe(OtherEvent, on_other, key=lambda e: e.name)
        assert await bus.publish(KeyEvent(key="a")) == 1
        assert await bus.publish(SubEvent(key="b")) == 2
        assert await bus.publish(OtherEvent(name="c")) == 1
        await base.wait_len(2)
        await sub.wait_len(1)
        await other.wait_len(1)
    assert [type(e) for e in base.items] == [KeyEvent, SubEvent]
    assert [e.key for e in sub.items] == ["b"]


@pytest.mark.anyio
async def test_a_key_function_chooses_what_coalesces() -> None:
    seen: Recorder[KeyEvent] = Recorder()
    gate = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        seen.add(event)
        await gate.wait()

    async with Bus() as bus:
        bus.subscribe(KeyEvent, handler, key=lambda e: (e.kind, e.key), workers=4)
        await bus.publish(KeyEvent(kind="X", key="k", version=1))
        await bus.publish(KeyEvent(kind="Y", key="k", version=2))
        await seen.wait_len(2)  # distinct keys: both are in flight
        gate.set()
    assert {(e.kind, e.version) for e in seen.items} == {("X", 1), ("Y", 2)}


@pytest.mark.anyio
async def test_publish_without_subscribers_delivers_nowhere() -> None:
    async with Bus() as bus:
        assert await bus.publish(KeyEvent(key="a")) == 0


def test_subscribe_checks_its_arguments() -> None:
    async def handler(event: OtherEvent) -> None:
        pass

    bus = Bus()
    with pytest.raises(TypeError, match="no 'key' field"):
        bus.subscribe(OtherEvent, handler)
    with pytest.raises(TypeError, match=r"msgspec\.Struct"):
        bus.subscribe(dict, handler)  # type: ignore[type-var, arg-type]
    bus.subscribe(OtherEvent, handler, key=lambda e: e.name, name="h")
    with pytest.raises(ValueError, match="exists"):
        bus.subscribe(OtherEvent, handler, key=lambda e: e.name, name="h")
    with pytest.raises(ValueError, match="workers"):
        bus.subscribe(OtherEvent, handler, key=lambda e: e.name, name="w", workers=0)
    assert [s.name for s in bus.subscriptions] == ["h"]


def test_current_delivery_outside_a_handler() -> None:
    with pytest.raises(RuntimeError, match="outside"):
        current_delivery()


class Frozen(msgspec.Struct, frozen=True):
    key: int


@pytest.mark.anyio
async def test_the_default_name_is_the_handlers_qualified_name() -> None:
    async def reconcile(event: Frozen) -> None:
        pass

    with anyio.fail_after(TIMEOUT):
        async with Bus() as bus:
            sub = bus.subscribe(Frozen, reconcile)
            assert sub.name.endswith("reconcile")
            assert sub.topic is Frozen
            assert list(bus.stats()) == [sub.name]
