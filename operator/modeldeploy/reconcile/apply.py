"""Apply: write the children a pass planned (create/update by server-side apply, then deletes).

Writes go in groups, concurrently inside a group, so a pass is a few round trips rather than one per
child; the order of the groups keeps traffic on Ready pods (see ``apply_groups``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modeldeploy.k8s import ApiError, kind_of, starts_pods
from modeldeploy.reconcile.observe import INDEXED_KINDS, Observed, packed_child, read_taken
from modeldeploy.reconcile.plan import (
    Action,
    ChildKey,
    Claim,
    Step,
    claim,
    conflict_message,
    name_conflicts,
)

if TYPE_CHECKING:
    from modeldeploy.reconcile.core import Context

log = logging.getLogger(__name__)


class NameConflict(Exception):
    """A child's name is taken by an object the ModelDeployment does not control; nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApplyRejected(Exception):
    """The API server refused a write for a reason a retry of the same write cannot fix (a 4xx); the
    message names the object and quotes the API server."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# 4xx a retry of the same write can fix: gone meanwhile, timeout, conflict, throttling (the client retries).
_TRANSIENT_CLIENT_STATUSES = frozenset({404, 408, 409, 429})
FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS = 5.0, 300.0


def is_rejection(exc: ApiError) -> bool:
    """Whether the API server refused the write itself (validation, admission, quota, forbidden)."""
    return 400 <= exc.status < 500 and exc.status not in _TRANSIENT_CLIENT_STATUSES


def rejection_retry_seconds(rejections: int) -> float:
    """Wait before retrying after the `rejections`-th refusal in a row: doubling from 5 s, at most 300 s."""
    return min(FIRST_RETRY_SECONDS * 2 ** max(rejections - 1, 0), MAX_RETRY_SECONDS)


@dataclass
class Rejections:
    """Refused writes in a row per ModelDeployment and generation, and when the next try is due: a refused
    spec is retried with backoff, whatever triggers its passes; a new generation starts afresh."""

    _seen: dict[Hashable, tuple[Any, int, float]] = field(default_factory=dict)

    def record(self, key: Hashable, generation: Any, now: float) -> float:
        """Count one more refusal; returns the seconds until the next try."""
        known = self._seen.get(key)
        count = known[1] + 1 if known is not None and known[0] == generation else 1
        delay = rejection_retry_seconds(count)
        self._seen[key] = (generation, count, now + delay)
        return delay

    def wait_left(self, key: Hashable, generation: Any, now: float) -> float:
        """Seconds before this generation may be written again (0 when it may now)."""
        known = self._seen.get(key)
        if known is None or known[0] != generation:
            return 0.0
        return max(known[2] - now, 0.0)

    def clear(self, key: Hashable) -> None:
        self._seen.pop(key, None)


async def claimed(
    ctx: Context, meta: Mapping[str, Any], steps: list[Step], observed: Observed
) -> tuple[list[Step], dict[ChildKey, dict | None]]:
    """The steps, once every object they touch is free or controlled by this ModelDeployment (raises
    NameConflict otherwise), and who holds each name they create. A create over an object that turns
    out ours (the index lags) or left by a deleted namesake (adoption) becomes an update."""
    uid, parent, namespace = meta.get("uid", ""), meta["name"], meta["namespace"]
    carried = ctx.cache.claims.take((namespace, parent), time.monotonic())
    holders = await read_taken(ctx, namespace, steps, carried)
    taken = {key: live for key, live in holders.items() if live is not None}
    conflicts = name_conflicts(steps, {**observed.children, **taken}, uid, parent)
    if conflicts:
        raise NameConflict(conflict_message(conflicts))
    existing = {key for key, live in taken.items() if claim(live, uid, parent) in (Claim.OURS, Claim.ADOPT)}
    steps = [
        Step(Action.UPDATE, s.kind, s.name, s.manifest, "exists: ours, or a deleted namesake's")
        if (s.kind, s.name) in existing
        else s
        for s in steps
    ]
    return steps, holders


async def apply_steps(
    ctx: Context, meta: Mapping[str, Any], steps: list[Step], observed: Observed
) -> list[Step] | None:
    """Carry out the steps of the ModelDeployment with metadata `meta`; None when all are done, else the
    steps written before the pass handed its slot over (``finish_later``): a later pass does the rest.
    Raises NameConflict, before any write, when a step would touch an object it does not control."""
    namespace, parent = meta["namespace"], meta["name"]
    steps, holders = await claimed(ctx, meta, steps, observed)

    async def apply(step: Step) -> None:
        assert step.manifest is not None
        log.info("%s %s %s/%s (%s)", step.action, step.kind, namespace, step.name, step.why)
        # Force only over an object we control (an update); a create must not take over a namesake.
        try:
            applied = await ctx.kube.apply(step.manifest, force=step.action == Action.UPDATE)
        except ApiError as exc:
            if is_rejection(exc):
                raise ApplyRejected(f"{step.kind} {step.name}: {exc.message or exc}") from exc
            raise
        kind, version = applied.setdefault("kind", step.kind), applied["metadata"].get("resourceVersion", "")
        # Indexed kinds are laid over the indexes until their echo comes; others are read by every pass.
        packed = packed_child(applied) if kind in INDEXED_KINDS else None
        ctx.cache.echoes.wrote((namespace, parent), kind, step.name, version, packed)

    groups = apply_groups([s for s in steps if s.action in (Action.CREATE, Action.UPDATE)])
    for index, group in enumerate(groups):
        if index > 0 and finish_later(groups[0], ctx.queue.waiting()):
            left = {(s.kind, s.name) for later in groups[1:] for s in later}
            ctx.cache.claims.keep(
                (namespace, parent), {k: v for k, v in holders.items() if k in left}, time.monotonic()
            )
            return [step for step in steps if step in groups[0]]
        await asyncio.gather(*(apply(step) for step in group))
    for step in steps:
        if step.action == Action.DELETE:
            log.info("delete %s %s/%s (%s)", step.kind, namespace, step.name, step.why)
            await ctx.kube.delete(kind_of(observed.children[(step.kind, step.name)]), namespace, step.name)
            ctx.cache.echoes.deleted((namespace, parent), step.kind, step.name)
    return None


def finish_later(written: list[Step], passes_waiting: bool) -> bool:
    """In a burst (other passes wait for a slot), a pass that has just written Deployments stops there:
    the rest (Services are slow to create: the API server allocates each a cluster IP in turn) comes in
    a later pass, queued behind the waiting ones. So every new ModelDeployment gets its pods started
    first, instead of the last ones waiting for the Services of all the others."""
    return passes_waiting and any(step.kind == "Deployment" for step in written)


def serving_deployment(step: Step) -> bool:
    return starts_pods(step.manifest or {"kind": step.kind})


def apply_groups(writes: list[Step]) -> list[list[Step]]:
    """Serving Deployments first (pods start before anything routes to them), then the other children,
    then Deployments at zero replicas: a new idle colour slot is not urgent, and an old colour is scaled
    down only once the Services have moved off it. Children inside a group are written concurrently."""
    first = [step for step in writes if serving_deployment(step)]
    idle = [step for step in writes if step.kind == "Deployment" and not serving_deployment(step)]
    rest = [step for step in writes if step.kind != "Deployment"]
    return [group for group in (first, rest, idle) if group]
