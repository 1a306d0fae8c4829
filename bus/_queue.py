"""A keyed work queue with client-go's workqueue semantics, on anyio.

- **Coalescing**: a key holds at most one undelivered value; putting a key that already holds
  one merges the two (``merge(old, new)``) and never waits.
- **Serialisation**: a key handed out by :meth:`KeyedQueue.get` is *processing* until
  :meth:`KeyedQueue.done`; it is never handed out twice at once. A value put meanwhile waits
  (the "dirty" set) and the key is queued again on ``done``.
- **Bounded admission**: *maxsize* bounds the keys that are *queued* (ready, or waiting for
  their in-flight delivery to finish). Putting a key that holds no undelivered value waits
  while the queue is full; waiting putters are served first come, first served.
- **Delayed re-adds**: ``done(key, retry=value, after=seconds)`` puts the key back after a
  delay. Delayed keys do not count towards *maxsize* (a failing consumer must not throttle its
  producers for a whole backoff) and may push *queued* past it when they fall due. A value
  put for a delayed key makes it ready at once.
- **Closing**: after :meth:`KeyedQueue.close`, puts raise, delayed keys are dropped, and
  :meth:`KeyedQueue.get` keeps handing out ready keys (draining) until none is left, then
  raises :exc:`anyio.EndOfStream`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

import anyio

__all__ = ["KeyedQueue", "KeyedQueueStatistics"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class KeyedQueueStatistics(NamedTuple):
    """A snapshot of a :class:`KeyedQueue`."""

    #: keys holding a value to deliver now (ready, or waiting for their in-flight delivery)
    queued: int
    #: keys waiting for a delayed re-add
    delayed: int
    #: keys handed out by :meth:`KeyedQueue.get` and not yet :meth:`KeyedQueue.done`
    processing: int
    #: tasks waiting in :meth:`KeyedQueue.put` for room
    waiting_putters: int
    #: tasks waiting in :meth:`KeyedQueue.get` for a key
    waiting_getters: int


class KeyedQueue(Generic[K, V]):
    """A keyed work queue (see the module docstring for its semantics).

    It is not thread-safe: use it from one event loop.

    :param maxsize: most queued keys before :meth:`put` waits (``None``: unbounded)
    :param merge: combines the undelivered value of a key with a newly put one
    :param clock: monotonic seconds (:func:`anyio.current_time` by default)
    :raises ValueError: if *maxsize* is below 1
    """

    def __init__(
        self,
        maxsize: int | None,
        merge: Callable[[V, V], V],
        *,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        if maxsize is not None and maxsize < 1:
            raise ValueError(f"maxsize must be >= 1 or None, not {maxsize!r}")
        self._maxsize = maxsize
        self._merge = merge
        self._clock = clock
        #: undelivered value per key: ready, dirty (key processing) or delayed
        self._values: dict[K, V] = {}
        self._ready: deque[K] = deque()
        self._processing: set[K] = set()
        #: delayed key -> sequence number of its live heap entry
        self._delayed: dict[K, int] = {}
        self._timers: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()
        self._getters: deque[anyio.Event] = deque()
        self._putters: deque[anyio.Event] = deque()
        self._closed = False

    @property
    def maxsize(self) -> int | None:
        """Most queued keys before :meth:`put` waits (``None``: unbounded)."""
        return self._maxsize

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def statistics(self) -> KeyedQueueStatistics:
        """Return a snapshot of the queue (delayed keys that fell due count as queued)."""
        self._promote_due()
        return KeyedQueueStatistics(
            queued=len(self._values) - len(self._delayed),
            delayed=len(self._delayed),
            processing=len(self._processing),
            waiting_putters=len(self._putters),
            waiting_getters=len(self._getters),
        )

    def put_nowait(self, key: K, value: V) -> bool:
        """Put *value* for *key* without waiting.

        :returns: ``True`` if it was merged into an undelivered value of *key*, ``False`` if
            the key was admitted
        :raises ~anyio.WouldBlock: if the key holds no undelivered value and the queue is full
            (or other putters are already waiting for room)
        :raises ~anyio.ClosedResourceError: if the queue is closed
        """
        return self._put(key, value, fair=True)

    async def put(self, key: K, value: V) -> bool:
        """Put *value* for *key*, waiting for room if the key must be admitted.

        :returns: ``True`` if it was merged into an undelivered value of *key*, ``False`` if
            the key was admitted
        :raises ~anyio.ClosedResourceError: if the queue is (or gets) closed
        """
        fair = True
        while True:
            try:
                merged = self._put(key, value, fair=fair)
            except anyio.WouldBlock:
                pass
            else:
                if self._putters and not self._full():
                    self._wake(self._putters)
                return merged
            waiter = anyio.Event()
            # first wait: join the back of the line; woken but beaten to the room: stay first
            if fair:
                self._putters.append(waiter)
            else:
                self._putters.appendleft(waiter)
            fair = False
            try:
                await waiter.wait()
            except BaseException:
                if waiter.is_set():
                    self._wake(self._putters)  # pass the room on
                else:
                    self._putters.remove(waiter)
                raise

    def get_nowait(self) -> tuple[K, V]:
        """Take the next ready key and its value; the key is processing until :meth:`done`.

        :raises ~anyio.WouldBlock: if no key is ready
        :raises ~anyio.EndOfStream: if the queue is closed and no key is ready
        """
        self._promote_due()
        if self._ready:
            key = self._ready.popleft()
            value = self._values.pop(key)
            self._processing.add(key)
            if self._putters:
                self._wake(self._putters)
            return key, value
        if self._closed:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def get(self) -> tuple[K, V]:
        """Wait for the next ready key and take it with its value (see :meth:`get_nowait`).

        :raises ~anyio.EndOfStream: once the queue is closed and drained of ready keys
        """
        while True:
            try:
                return self.get_nowait()
            except anyio.WouldBlock:
                pass
            waiter = anyio.Event()
            self._getters.append(waiter)
            timeout = self._until_next_due()
            try:
                if timeout == math.inf:
                    await waiter.wait()
                else:
                    with anyio.move_on_after(timeout):
                        await waiter.wait()
            except BaseException:
                if waiter.is_set():
                    self._wake(self._getters)  # pass the wake-up on
                else:
                    self._getters.remove(waiter)
                raise
            if not waiter.is_set():
                self._getters.remove(waiter)  # a delayed key fell due

    def done(self, key: K, *, retry: V | None = None, after: float = 0.0) -> None:
        """Finish processing *key*.

        If a value was put for the key meanwhile, the key is queued again with it (and *retry*
        is dropped: the newer value wins). Otherwise, if *retry* is given, it is put back for
        the key after *after* seconds (at once if ``after <= 0``), unless the queue is closed.

        :raises ValueError: if *key* is not processing
        """
        try:
            self._processing.remove(key)
        except KeyError:
            raise ValueError(f"key {key!r} is not processing") from None
        if key in self._values:
            self._make_ready(key)
        elif retry is not None and not self._closed:
            self._values[key] = retry
            if after > 0:
                self._schedule(key, self._clock() + after)
            else:
                self._make_ready(key)

    def close(self) -> int:
        """Close the queue: puts raise, delayed keys are dropped, ready keys still drain.

        :returns: how many delayed keys were dropped
        """
        if self._closed:
            return 0
        self._closed = True
        dropped = len(self._delayed)
        for key in self._delayed:
            del self._values[key]
        self._delayed.clear()
        self._timers.clear()
        while self._getters:
            self._wake(self._getters)
        while self._putters:
            self._wake(self._putters)
        return dropped

    def _full(self) -> bool:
        return self._maxsize is not None and len(self._values) - len(self._delayed) >= self._maxsize

    def _put(self, key: K, value: V, *, fair: bool) -> bool:
        if self._closed:
            raise anyio.ClosedResourceError
        if key in self._values:
            self._values[key] = self._merge(self._values[key], value)
            if self._delayed.pop(key, None) is not None:
                self._make_ready(key)
            return True
        if self._full() or (fair and self._putters):
            raise anyio.WouldBlock
        self._values[key] = value
        if key not in self._processing:
            self._make_ready(key)
        return False

    def _make_ready(self, key: K) -> None:
        self._ready.append(key)
        if self._getters:
            self._wake(self._getters)

    def _schedule(self, key: K, due: float) -> None:
        sequence = next(self._sequence)
        self._delayed[key] = sequence
        heapq.heappush(self._timers, (due, sequence, key))
        if self._getters and self._timers[0][1] == sequence:
            self._wake(self._getters)  # it sleeps until a later due time

    def _drop_stale_timers(self) -> None:
        timers = self._timers
        while timers and self._delayed.get(timers[0][2]) != timers[0][1]:
            heapq.heappop(timers)

    def _promote_due(self) -> None:
        self._drop_stale_timers()
        if not self._timers:
            return
        now = self._clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, key = heapq.heappop(self._timers)
            del self._delayed[key]
            self._make_ready(key)
            self._drop_stale_timers()

    def _until_next_due(self) -> float:
        self._drop_stale_timers()
        if not self._timers:
            return math.inf
        return max(0.0, self._timers[0][0] - self._clock())

    @staticmethod
    def _wake(waiters: deque[anyio.Event]) -> None:
        waiters.popleft().set()
