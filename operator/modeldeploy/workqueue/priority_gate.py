"""Admission by priority: who goes first when there are more callers than places (API connections, reconcile
passes). Pure asyncio; no I/O.

Public: ``PriorityGate`` and its priorities ``URGENT``, ``NORMAL``, ``BEST_EFFORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

URGENT, NORMAL, BEST_EFFORT = 0, 1, 2


class PriorityGate:
    """At most `limit` holders at once, the last `reserved` of them for URGENT requests only (slow Service
    creates must not take every slot while a new Deployment waits); waiters are let in by priority, then
    in arrival order. Without `by_priority` it is a plain first-come, first-served semaphore (to measure
    what the ordering pays)."""

    def __init__(self, limit: int, reserved: int = 0, *, by_priority: bool = True) -> None:
        self._limit, self._reserved, self._held = limit, reserved if by_priority else 0, 0
        self._by_priority = by_priority
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def _room(self, priority: int) -> bool:
        return self._held < self._limit - (0 if priority == URGENT else self._reserved)

    def _first_waiting(self) -> int | None:
        while self._waiters and self._waiters[0][2].done():  # cancelled waiters
            heapq.heappop(self._waiters)
        return self._waiters[0][0] if self._waiters else None

    async def acquire(self, priority: int) -> None:
        priority = priority if self._by_priority else NORMAL
        first = self._first_waiting()
        if self._room(priority) and (first is None or first > priority):
            self._held += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # let in just as we were cancelled: pass the turn on
            raise

    def waiting(self) -> bool:
        """Whether anyone waits to be let in."""
        return self._first_waiting() is not None

    @contextlib.asynccontextmanager
    async def held(self, priority: int) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        self._held -= 1
        while (first := self._first_waiting()) is not None and self._room(first):
            _, _, future = heapq.heappop(self._waiters)
            self._held += 1
            future.set_result(None)
