"""The work queue of reconcile passes, in the shape of client-go's workqueue: keyed work, run one at a time
per key with a burst of triggers coalesced into one rerun, admitted by priority, re-added after a delay
(requeue) or once after a quiet window (debounce). Pure asyncio; it knows nothing of what the work does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from modeldeploy.workqueue.keyed_serializer import KeyedSerializer
from modeldeploy.workqueue.priority_gate import NORMAL, URGENT, PriorityGate

log = logging.getLogger(__name__)
T = TypeVar("T")
Work = Callable[[], Coroutine[Any, Any, Any]]


@dataclass
class _Place:
    """The place among the passes in flight that the running work holds (or has handed back for a while)."""

    priority: int
    held: bool = True


_place: ContextVar[_Place | None] = ContextVar("modeldeploy_workqueue_place", default=None)


class WorkQueue:
    """`by_priority`, `serial` and `coalesce` off give the plain behaviour, to measure what each pays:
    places first come, first served; passes of one key at once; every trigger its own pass."""

    def __init__(
        self, limit: int = 32, *, by_priority: bool = True, serial: bool = True, coalesce: bool = True
    ) -> None:
        # At most `limit` passes in flight (bounds memory in a burst), a quarter of them kept for urgent ones:
        # passes busy creating Services (slow) never hold every place while new objects wait.
        self._slots = PriorityGate(limit, reserved=limit // 4, by_priority=by_priority)
        self._serial = KeyedSerializer() if serial else None
        self._coalesce = coalesce
        self._later: dict[Hashable, asyncio.TimerHandle] = {}
        self._debounced: dict[Hashable, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(
        self, key: Hashable, work: Callable[[], Awaitable[T]], *, urgent: bool = False, coalesce: bool = True
    ) -> T | None:
        """Run `work` for `key` after any pass already running for it, inside a place among the passes in
        flight (urgent ones go first). With `coalesce`, triggers arriving while one waits join it (None)."""

        async def admitted() -> T:
            place = _Place(URGENT if urgent else NORMAL)
            await self._slots.acquire(place.priority)
            token = _place.set(place)
            try:
                return await work()
            finally:
                _place.reset(token)
                if place.held:
                    self._slots.release()

        if self._serial is None:
            return await admitted()
        return await self._serial.run(key, admitted, coalesce=coalesce and self._coalesce)

    @contextlib.asynccontextmanager
    async def place_handed_back(self) -> AsyncIterator[None]:
        """Inside a work: give its place to others while it waits on something slow that needs none (a check
        reading a tenant's dataset), then queue for one again. The key stays held: its passes still wait."""
        place = _place.get()
        if place is None or not place.held:
            yield
            return
        place.held = False
        self._slots.release()
        try:
            yield
        finally:
            await self._slots.acquire(place.priority)
            place.held = True

    def waiting(self) -> bool:
        """Whether passes wait for a place (then a pass in flight may hand its place over early)."""
        return self._slots.waiting()

    def add_after(self, key: Hashable, delay: float, work: Work) -> None:
        """Run `work` once after `delay` seconds; a newer request for the same key replaces it."""
        if (previous := self._later.pop(key, None)) is not None:
            previous.cancel()

        def fire() -> None:
            self._later.pop(key, None)
            self.spawn(work())

        self._later[key] = asyncio.get_running_loop().call_later(max(delay, 0.05), fire)

    def add_debounced(self, key: Hashable, delay: float, work: Work) -> None:
        """Run `work` once, `delay` seconds after the first of a burst of triggers for `key` (a new pod
        changes state several times in a second: one pass sees them all). Later triggers in the window
        join it; they never push it back."""
        if key in self._debounced:
            return

        def fire() -> None:
            self._debounced.pop(key, None)
            self.spawn(work())

        self._debounced[key] = asyncio.get_running_loop().call_later(delay, fire)

    def add_now(self, key: Hashable, work: Work) -> None:
        """Run `work` at once; a debounced run waiting for `key` is dropped (this one sees all it would)."""
        if (pending := self._debounced.pop(key, None)) is not None:
            pending.cancel()
        self.spawn(work())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background, keeping a reference until it finishes; an exception it ends with
        is logged (an unretrieved one would vanish silently), never raised."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background work failed: %r", exc, exc_info=exc)

    def forget(self, key: Hashable) -> None:
        """Drop what is scheduled or remembered for `key` (its object is gone)."""
        for timers in (self._later, self._debounced):
            if (previous := timers.pop(key, None)) is not None:
                previous.cancel()
        if self._serial is not None:
            self._serial.forget(key)

    def shut_down(self) -> None:
        for handle in [*self._later.values(), *self._debounced.values()]:
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
