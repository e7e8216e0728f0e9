"""One reconcile at a time per ModelDeployment, with bursts of triggers coalesced into one rerun."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class KeyedSerializer:
    """Runs work for a key strictly one at a time; while one runs, any number of new triggers collapse
    into a single rerun that starts after it (it reads fresh state, so nothing is lost)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._queued: set[Hashable] = set()

    async def run(
        self, key: Hashable, work: Callable[[], Awaitable[T]], *, coalesce: bool = True
    ) -> T | None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        if coalesce and lock.locked():
            if key in self._queued:
                return None  # a rerun is already waiting; it will see this trigger's state too
            self._queued.add(key)
            try:
                async with lock:
                    self._queued.discard(key)
                    return await work()
            finally:
                self._queued.discard(key)
        async with lock:
            return await work()

    def forget(self, key: Hashable) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked() and key not in self._queued:
            del self._locks[key]
