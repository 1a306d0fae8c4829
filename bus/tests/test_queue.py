"""KeyedQueue: coalescing, serialisation, bounded admission, delays, closing."""

from __future__ import annotations

import anyio
import pytest

from bus._queue import KeyedQueue

from .helpers import TIMEOUT


def newest(old: str, new: str) -> str:
    return new


def joined(old: str, new: str) -> str:
    return f"{old}+{new}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_coalescing_merges_values_of_a_waiting_key() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(None, joined)
    assert q.put_nowait("a", "1") is False
    assert q.put_nowait("b", "1") is False
    assert q.put_nowait("a", "2") is True
    assert q.put_nowait("a", "3") is True
    assert q.statistics().queued == 2
    assert q.get_nowait() == ("a", "1+2+3")
    assert q.get_nowait() == ("b", "1")
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()


def test_a_processing_key_is_not_handed_out_again_until_done() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(None, newest)
    q.put_nowait("a", "1")
    assert q.get_nowait() == ("a", "1")
    q.put_nowait("a", "2")  # dirty while processing
    q.put_nowait("a", "3")
    q.put_nowait("b", "1")
    assert q.get_nowait() == ("b", "1")
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()
    stats = q.statistics()
    assert (stats.queued, stats.processing) == (1, 2)
    q.done("a")
    assert q.get_nowait() == ("a", "3")
    q.done("a")
    q.done("b")
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()
    with pytest.raises(ValueError, match="not processing"):
        q.done("a")


def test_maxsize_bounds_new_keys_but_never_a_merge() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(2, newest)
    q.put_nowait("a", "1")
    q.put_nowait("b", "1")
    with pytest.raises(anyio.WouldBlock):
        q.put_nowait("c", "1")
    assert q.put_nowait("a", "2") is True
    assert q.get_nowait() == ("a", "2")  # processing keys do not count
    q.put_nowait("c", "1")
    with pytest.raises(anyio.WouldBlock):
        q.put_nowait("a", "3")  # a new undelivered value for a processing key takes room
    assert q.statistics().queued == 2


def test_delayed_keys_wait_for_their_time_and_do_not_take_room() -> None:
    clock = FakeClock()
    q: KeyedQueue[str, str] = KeyedQueue(1, newest, clock=clock)
    q.put_nowait("a", "1")
    assert q.get_nowait() == ("a", "1")
    q.done("a", retry="1", after=5.0)
    assert q.statistics()[:3] == (0, 1, 0)
    q.put_nowait("b", "1")  # the delayed key takes no room
    assert q.get_nowait() == ("b", "1")
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()
    clock.now += 5.0
    assert q.get_nowait() == ("a", "1")


def test_a_value_put_for_a_delayed_key_makes_it_ready_at_once() -> None:
    clock = FakeClock()
    q: KeyedQueue[str, str] = KeyedQueue(None, joined, clock=clock)
    q.put_nowait("a", "1")
    q.get_nowait()
    q.done("a", retry="1", after=60.0)
    assert q.put_nowait("a", "2") is True
    assert q.get_nowait() == ("a", "1+2")
    q.done("a")
    clock.now += 60.0  # the dropped timer does not fire
    with pytest.raises(anyio.WouldBlock):
        q.get_nowait()
    assert q.statistics().delayed == 0


def test_done_with_retry_keeps_the_newer_value_put_while_processing() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(None, joined)
    q.put_nowait("a", "1")
    q.get_nowait()
    q.put_nowait("a", "2")
    q.done("a", retry="1", after=60.0)
    assert q.get_nowait() == ("a", "2")
    assert q.statistics().delayed == 0


def test_retry_without_delay_is_ready_now() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(None, newest)
    q.put_nowait("a", "1")
    q.get_nowait()
    q.done("a", retry="1")
    assert q.get_nowait() == ("a", "1")


@pytest.mark.anyio
async def test_get_wakes_when_a_delayed_key_falls_due() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(None, newest)
    q.put_nowait("a", "1")
    q.get_nowait()
    start = anyio.current_time()
    q.done("a", retry="1", after=0.05)
    with anyio.fail_after(TIMEOUT):
        assert await q.get() == ("a", "1")
    assert anyio.current_time() - start >= 0.05


@pytest.mark.anyio
async def test_a_sleeping_getter_rechecks_for_an_earlier_timer() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(None, newest)
    for key in "ab":
        q.put_nowait(key, "1")
        q.get_nowait()
    q.done("a", retry="1", after=3600)
    got: list[tuple[str, str]] = []
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:

            async def get() -> None:
                got.append(await q.get())

            tg.start_soon(get)
            await anyio.wait_all_tasks_blocked()
            q.done("b", retry="1", after=0.01)
    assert got == [("b", "1")]


@pytest.mark.anyio
async def test_waiting_putters_are_served_in_order() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(1, newest)
    q.put_nowait("x", "1")
    order: list[str] = []

    async def put(key: str) -> None:
        await q.put(key, "1")
        order.append(key)

    async with anyio.create_task_group() as tg:
        for key in "abc":
            tg.start_soon(put, key)
            await anyio.wait_all_tasks_blocked()
        assert q.statistics().waiting_putters == 3
        with pytest.raises(anyio.WouldBlock):
            q.put_nowait("d", "1")  # no jumping the line, even when room appears
        with anyio.fail_after(TIMEOUT):
            for _ in range(4):
                key, _value = await q.get()
                q.done(key)
                await anyio.wait_all_tasks_blocked()
    assert order == ["a", "b", "c"]


@pytest.mark.anyio
async def test_a_woken_but_cancelled_putter_passes_the_room_on() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(1, newest)
    q.put_nowait("x", "1")
    done: list[str] = []
    scope_a = anyio.CancelScope()

    async def put(key: str, scope: anyio.CancelScope) -> None:
        with scope:
            await q.put(key, "1")
            done.append(key)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(put, "a", scope_a)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(put, "b", anyio.CancelScope())
            await anyio.wait_all_tasks_blocked()
            q.get_nowait()  # room for one: wakes "a" ...
            scope_a.cancel()  # ... which is cancelled before (or after) it takes the room
            await anyio.wait_all_tasks_blocked()
            # either "a" got in before the cancellation landed, or it passed the room to "b"
            assert len(done) == 1
            assert q.statistics().queued == 1
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_close_drains_ready_keys_then_ends() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(1, newest)
    q.put_nowait("a", "1")
    assert q.get_nowait() == ("a", "1")
    q.put_nowait("a", "2")  # dirty
    q.done("a")
    q.get_nowait()
    q.done("a", retry="2", after=60.0)  # delayed: dropped by close
    q.put_nowait("b", "1")
    errors: list[BaseException] = []

    async def blocked_put() -> None:
        try:
            await q.put("c", "1")
        except anyio.ClosedResourceError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(blocked_put)
        await anyio.wait_all_tasks_blocked()
        assert q.close() == 1
    assert len(errors) == 1
    with pytest.raises(anyio.ClosedResourceError):
        q.put_nowait("d", "1")
    assert await q.get() == ("b", "1")
    q.done("b", retry="1")  # no retries once closed
    with pytest.raises(anyio.EndOfStream):
        await q.get()


@pytest.mark.anyio
async def test_close_wakes_waiting_getters() -> None:
    q: KeyedQueue[str, str] = KeyedQueue(None, newest)
    ended: list[bool] = []

    async def get() -> None:
        try:
            await q.get()
        except anyio.EndOfStream:
            ended.append(True)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(get)
        await anyio.wait_all_tasks_blocked()
        assert q.statistics().waiting_getters == 3
        q.close()
    assert ended == [True] * 3


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        KeyedQueue(0, newest)
