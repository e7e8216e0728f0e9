"""What every handler shares, created once at startup and carried in kopf's memo."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy import metrics
from modeldeploy.gate import NORMAL, URGENT, PriorityGate
from modeldeploy.handlers.handled import HandledSpecs, Key
from modeldeploy.k8s import POD, WATCHED_CHILD_KINDS, Kind
from modeldeploy.reconcile import Context, KeyedSerializer


def index_id(kind: Kind) -> str:
    """The kopf index of a watched kind, by its id: the name of the kwarg every handler receives it as."""
    return f"{kind.kind.lower()}_index"


CHILD_INDEXES = tuple(index_id(kind) for kind in WATCHED_CHILD_KINDS)
POD_INDEX = index_id(POD)


@dataclass
class Runtime:
    ctx: Context
    serializer: KeyedSerializer = field(default_factory=KeyedSerializer)
    phases: dict[Key, str] = field(default_factory=dict)
    slots: PriorityGate = field(default_factory=lambda: pass_slots(32))
    handled: HandledSpecs = field(default_factory=HandledSpecs)  # kopf's diff-base (see handled.py)
    _requeues: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)
    _coalescing: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.ctx.passes_waiting = self.slots.waiting  # one gate: what passes see is what they queue on

    def pass_slot(self, trigger: str) -> contextlib.AbstractAsyncContextManager[None]:
        """A place among the passes in flight; a new ModelDeployment's first pass goes ahead of the rest."""
        return self.slots.held(URGENT if trigger == "create" else NORMAL)

    def requeue(self, key: Key, delay: float, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run `work` once after `delay` seconds; a newer request for the same key replaces it."""
        if (previous := self._requeues.pop(key, None)) is not None:
            previous.cancel()

        def fire() -> None:
            self._requeues.pop(key, None)
            task = asyncio.get_running_loop().create_task(work())
            self._tasks.add(task)  # keep a reference until it finishes
            task.add_done_callback(self._tasks.discard)

        self._requeues[key] = asyncio.get_running_loop().call_later(max(delay, 0.05), fire)

    def coalesce(self, key: Key, delay: float, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run `work` once, `delay` seconds after the first of a burst of triggers for `key` (a new pod
        changes state several times in a second: one pass sees them all). Later triggers in the window
        join it; they never push it back."""
        if key in self._coalescing:
            return

        def fire() -> None:
            self._coalescing.pop(key, None)
            self.start_background(work())

        self._coalescing[key] = asyncio.get_running_loop().call_later(delay, fire)

    def start_background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop_background(self) -> None:
        for handle in [*self._requeues.values(), *self._coalescing.values()]:
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()

    def forget(self, key: Key) -> None:
        for timers in (self._requeues, self._coalescing):
            if (previous := timers.pop(key, None)) is not None:
                previous.cancel()
        self.phases.pop(key, None)
        self.ctx.bodies.forget(*key)
        self.ctx.forget_parent(*key)
        self.serializer.forget(key)
        self.handled.forget(key)
        metrics.forget(*key)


def pass_slots(limit: int) -> PriorityGate:
    """At most `limit` passes in flight (bounds memory in a burst), a quarter of them kept for first passes:
    passes busy creating Services (slow) never hold every place while new ModelDeployments wait."""
    return PriorityGate(limit, reserved=limit // 4)


def runtime_of(memo: Any) -> Runtime:
    runtime = getattr(memo, "runtime", None)
    if runtime is None:
        raise RuntimeError("the startup handler did not run: no runtime in memo")
    return runtime


def indexed(kwargs: Mapping[str, Any], key: Key) -> tuple[list[str], list[str]]:
    """Children and pods of one ModelDeployment (packed), from the kopf indexes in a handler's kwargs."""
    children: list[str] = []
    for index_name in CHILD_INDEXES:
        children.extend(kwargs[index_name].get(key, ()))
    pods = list(kwargs[POD_INDEX].get(key, ()))
    return children, pods
