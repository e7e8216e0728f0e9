"""What every handler shares, created once at startup and carried in kopf's memo."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy import metrics
from modeldeploy.handlers.handled import HandledSpecs, Key
from modeldeploy.k8s import POD, WATCHED_CHILD_KINDS, Kind
from modeldeploy.objectcache import BodyCache, CarriedClaims, Echoes, ObjectCache, Presence
from modeldeploy.reconcile import Context
from modeldeploy.settings import OperatorSettings
from modeldeploy.workqueue import WorkQueue


def index_id(kind: Kind) -> str:
    """The kopf index of a watched kind, by its id: the name of the kwarg every handler receives it as."""
    return f"{kind.kind.lower()}_index"


CHILD_INDEXES = tuple(index_id(kind) for kind in WATCHED_CHILD_KINDS)
POD_INDEX = index_id(POD)


def work_queue(settings: OperatorSettings) -> WorkQueue:
    """The work queue, with the pieces `settings.disable` names turned off."""
    off = settings.disable
    return WorkQueue(
        settings.max_concurrent_reconciles,
        by_priority="priority_gate" not in off,
        serial="serial" not in off,
        coalesce="coalesce" not in off,
    )


def object_cache(settings: OperatorSettings) -> ObjectCache:
    """The object cache, with the pieces `settings.disable` names turned off."""
    off = settings.disable
    return ObjectCache(
        bodies=BodyCache(enabled="body_cache" not in off),
        echoes=Echoes(enabled="echoes" not in off),
        claims=CarriedClaims(enabled="claims" not in off),
        crds=Presence(enabled="crd_presence" not in off),
    )


def packs_indexes(settings: OperatorSettings) -> bool:
    """Whether the indexes keep packed slim entries (else whole bodies, to measure what packing pays)."""
    return "packed_indexes" not in settings.disable


@dataclass
class Runtime:
    ctx: Context
    queue: WorkQueue = field(default_factory=WorkQueue)
    phases: dict[Key, str] = field(default_factory=dict)
    handled: HandledSpecs = field(default_factory=HandledSpecs)  # kopf's diff-base (see handled.py)

    def __post_init__(self) -> None:
        self.ctx.queue = self.queue  # one queue: what passes see is what they queue on

    def forget(self, key: Key) -> None:
        self.queue.forget(key)
        self.phases.pop(key, None)
        self.ctx.forget_parent(*key)
        self.handled.forget(key)
        metrics.forget(*key)


def runtime_of(memo: Any) -> Runtime:
    runtime = getattr(memo, "runtime", None)
    if runtime is None:
        raise RuntimeError("the startup handler did not run: no runtime in memo")
    return runtime


Entry = str | dict[str, Any]  # packed, or a whole body when packed_indexes is disabled


def indexed(kwargs: Mapping[str, Any], key: Key) -> tuple[list[Entry], list[Entry]]:
    """Children and pods of one ModelDeployment (packed), from the kopf indexes in a handler's kwargs."""
    children: list[Entry] = []
    for index_name in CHILD_INDEXES:
        children.extend(kwargs[index_name].get(key, ()))
    pods = list(kwargs[POD_INDEX].get(key, ()))
    return children, pods
