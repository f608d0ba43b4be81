"""The decode memory budget (TOONIFY_DECODE_MEMORY_MB): what the API may spend at once on full- or
reduced-size copies of photos, whoever makes them — an upload decoded for detection (app.admission), a
re-paste or a re-encode of a finished job's images (app.rendering). Each holds what its work costs at its
peak, read beforehand from the image header, until the work is done and the memory is back with the system."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, TypeVar

from fastapi.concurrency import run_in_threadpool

from .memory import return_freed_memory

T = TypeVar("T")


class MemoryBudget:
    """Bytes that concurrent decodes may hold together; one decode larger than the whole budget runs alone."""

    def __init__(self, total_bytes: int) -> None:
        self.total, self.used = total_bytes, 0
        self._freed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, nbytes: int) -> AsyncIterator[None]:
        nbytes = min(nbytes, self.total)
        async with self._freed:
            await self._freed.wait_for(lambda: self.used + nbytes <= self.total)
            self.used += nbytes
        try:
            yield
        finally:
            async with self._freed:
                self.used -= nbytes
                self._freed.notify_all()


def _trimmed(work: Callable[..., T], *args) -> T:
    try:
        return work(*args)
    finally:
        return_freed_memory()  # before the budget is given back: the next holder finds the memory free


async def run_within(budget: MemoryBudget, cost_bytes: int, work: Callable[..., T], *args) -> T:
    """``work(*args)``, blocking, in a worker thread while ``cost_bytes`` of the budget are held."""
    async with budget.hold(cost_bytes):
        return await run_in_threadpool(_trimmed, work, *args)
