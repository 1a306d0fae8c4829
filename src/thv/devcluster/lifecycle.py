"""The start/stop protocol shared by the local processes thv runs (control plane, Jaeger)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import anyio
import anyio.to_thread


class ManagedProcesses:
    """``with`` / ``async with`` support around ``start``/``astart`` and ``stop``.

    Subclasses implement ``start`` and ``astart`` (the async variant must spawn from the event
    loop's thread: PR_SET_PDEATHSIG is per thread) and ``stop``; ``astop`` runs ``stop`` in a
    worker thread, shielded from cancellation so nothing is left running."""

    def start(self) -> Self:
        raise NotImplementedError

    async def astart(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    async def astop(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()
