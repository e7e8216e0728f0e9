"""Reconcile one ModelDeployment: observe -> plan -> apply -> write status, once each, in that order.

A pass whose plan asks for a check (smoke, quality gate, analysis, evaluation, shadow, drift) runs it once
the children match the plan (a pass with writes to make makes them first and leaves the check to the next
pass), plans again with its report and writes status, then ends: the apply that follows comes in the next
pass, so no check result is lost to a later failure. Writes only what changed.

Raised to the caller (handlers translate them to kopf):
- InvalidSpec: the spec passed the schema but can never work as written; no retry.
- WaitingFor: something the spec refers to is missing (Secret, PVC); retry with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from modeldeploy import api, desired, metrics
from modeldeploy.desired.params import BuildParams
from modeldeploy.desired.rollout import Check
from modeldeploy.k8s import MODEL_DEPLOYMENT, Kube
from modeldeploy.objectcache import ObjectCache
from modeldeploy.reconcile.apply import ApplyRejected, NameConflict, Rejections, apply_steps
from modeldeploy.reconcile.observe import (
    Observed,
    observed_for,
    owner_uid,
    read_live,
    unpacked,
)
from modeldeploy.reconcile.plan import Action, Step, plan_children
from modeldeploy.reconcile.status import StaleBody, write_status
from modeldeploy.settings import OperatorSettings

log = logging.getLogger(__name__)


class InvalidSpec(Exception):
    """The spec cannot work as written; the message names the field and the rule."""


class WaitingFor(Exception):
    """A prerequisite is missing; retry later."""

    def __init__(self, reason: str, message: str, delay: float = 10.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.delay = delay


@dataclass
class PassOutcome:
    """What one pass did, for the handlers (requeue) and the metrics."""

    result: str  # changed | unchanged | partial (finished in a later pass) | invalid | waiting
    steps: list[Step] = field(default_factory=list)
    status_patch: dict[str, Any] | None = None
    phase: str | None = None
    requeue_after: float | None = None

    @property
    def writes(self) -> int:
        return sum(s.action != Action.UNCHANGED for s in self.steps) + (self.status_patch is not None)


# A name taken by someone else frees up only by their hand (no watch event of ours tells): look again.
NAME_CONFLICT_RETRY_SECONDS = 30.0


# Runs the check a pass asks for (smoke, quality gate, analysis, evaluation) and reports what it found.
CheckRunner = Callable[
    [Mapping[str, Any], api.ModelDeploymentSpec, Check, Observed], Awaitable[desired.CheckReport]
]


class PassQueue(Protocol):
    """The work queue as a pass sees it (the handlers pass ``modeldeploy.workqueue.WorkQueue``)."""

    def waiting(self) -> bool:
        """Other passes wait for a place: one that has written its Deployments hands its place over and
        finishes in a later pass (see finish_later)."""
        ...

    def place_handed_back(self) -> AbstractAsyncContextManager[None]:
        """Gives the pass's place to others while a check waits on a tenant's endpoints (a trickling data
        set must not hold a place other ModelDeployments' passes need)."""
        ...


class _Alone:
    """No queue: no other pass ever waits (tests, tools)."""

    def waiting(self) -> bool:
        return False

    def place_handed_back(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


ALONE: PassQueue = _Alone()


@dataclass
class Context:
    kube: Kube
    settings: OperatorSettings
    check_runner: CheckRunner | None = None  # runs checks through modeldeploy.probes
    queue: PassQueue = field(default_factory=lambda: ALONE)  # the handlers pass their work queue
    # What is known without asking the API server: bodies, echoes of our writes, carried claims, CRDs.
    cache: ObjectCache = field(default_factory=ObjectCache)
    # Writes the API server refused, per ModelDeployment: retried with backoff, not at every trigger.
    rejections: Rejections = field(default_factory=Rejections)

    def forget_parent(self, namespace: str, parent: str) -> None:
        self.cache.forget_parent(namespace, parent)
        self.rejections.clear((namespace, parent))


def _field_path(loc: tuple) -> str:
    return ".".join(["spec", *(str(part) for part in loc)])


def parse_spec(body: Mapping[str, Any]) -> api.ModelDeploymentSpec:
    """The spec as pydantic, or ValueError whose message names each failing field and its rule."""
    try:
        return api.parse_spec(dict(body.get("spec") or {}))
    except ValidationError as exc:
        problems = [f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ValueError("; ".join(problems)) from None


async def reconcile(
    ctx: Context,
    body: Mapping[str, Any],
    children: Iterable[str | Mapping[str, Any]],
    pods: Iterable[str | Mapping[str, Any]],
    *,
    trigger: str,
) -> PassOutcome:
    started = time.perf_counter()
    meta = body["metadata"]
    observed = observed_for(meta.get("uid"), children, pods)
    parent = (meta["namespace"], meta["name"])
    for kind, child in with_unechoed(observed, ctx.cache.echoes.unechoed(parent), meta.get("uid")):
        ctx.cache.echoes.echoed(parent, kind, child)
    try:
        outcome = await _replanned_when_stale(ctx, body, observed)
    except InvalidSpec:
        metrics.RECONCILES.labels(trigger=trigger, result="invalid").inc()
        raise
    except WaitingFor:
        metrics.RECONCILES.labels(trigger=trigger, result="waiting").inc()
        raise
    except Exception as exc:
        metrics.RECONCILES.labels(trigger=trigger, result="error").inc()
        metrics.ERRORS.labels(error=type(exc).__name__).inc()
        raise
    finally:
        metrics.RECONCILE_SECONDS.labels(trigger=trigger).observe(time.perf_counter() - started)
    metrics.RECONCILES.labels(trigger=trigger, result=outcome.result).inc()
    return outcome


# Passes planned anew after a status write found the ModelDeployment changed (then the handler's retry).
STALE_REPLANS = 2


async def _replanned_when_stale(ctx: Context, body: Mapping[str, Any], observed: Observed) -> PassOutcome:
    """The pass; when its status write finds that the ModelDeployment changed since `body` (another writer,
    e.g. a replica that has just lost its lease), it reads the object again and plans anew from it."""
    for replan in range(STALE_REPLANS + 1):
        try:
            return await _reconcile(ctx, body, observed)
        except StaleBody:
            meta = body["metadata"]
            metrics.ERRORS.labels(error="StaleBody").inc()
            if replan == STALE_REPLANS:
                raise
            log.info("%s/%s changed since it was read: planning again", meta["namespace"], meta["name"])
            fresh = await ctx.kube.get(MODEL_DEPLOYMENT, meta["namespace"], meta["name"])
            if fresh is None or fresh.get("metadata", {}).get("deletionTimestamp"):
                return PassOutcome("unchanged")
            ctx.cache.bodies.remember(fresh)
            body = fresh
    raise AssertionError("unreachable")


async def _reconcile(ctx: Context, body: Mapping[str, Any], observed: Observed) -> PassOutcome:
    """One pass as a script of steps (after Argo Rollouts' rolloutBlueGreen)."""
    meta = body["metadata"]
    spec = await _valid_spec(ctx, body)
    observed = await read_live(ctx, body, spec, observed)
    if observed.refused is not None:
        await _wait_for(ctx, body, *observed.refused)
    params = BuildParams(default_image=ctx.settings.serving_image, cluster_domain=ctx.settings.cluster_domain)
    planned = desired.rollout_pass(body, spec, observed, params)
    wanted = [child for child in planned.children if child["kind"] not in observed.absent_kinds]
    steps = plan_children(wanted, observed.children)
    changes = any(step.action != Action.UNCHANGED for step in steps)
    # A check judges what runs: it waits until the children match the plan (and never delays their writes).
    if planned.check is not None and ctx.check_runner is not None and not changes:
        async with ctx.queue.place_handed_back():
            report = await ctx.check_runner(body, spec, planned.check, observed)
        planned = desired.rollout_pass(body, spec, observed, params, report=report)
        patch = await _write_pass_status(ctx, body, planned)
        # The pass ends with its findings written; the next one, at once, applies what they call for.
        requeue = 0.0 if patch is not None else planned.requeue_after
        return PassOutcome("partial", [], patch, planned.status.get("phase"), requeue)
    key, generation = (meta["namespace"], meta["name"]), meta.get("generation")
    if changes and (wait := ctx.rejections.wait_left(key, generation, time.monotonic())) > 0:
        raise WaitingFor("ApplyRejected", "the API server refused this generation's writes", delay=wait)
    try:
        written = await apply_steps(ctx, meta, steps, observed)
    except NameConflict as exc:
        await _name_conflict(ctx, body, exc.message)
    except ApplyRejected as exc:
        await _apply_rejected(ctx, body, exc.message)
    if changes:
        ctx.rejections.clear(key)
    if written is not None:
        return PassOutcome("partial", written, None, planned.status.get("phase"), requeue_after=0.0)
    patch = await _write_pass_status(ctx, body, planned)
    requeue = planned.requeue_after
    if planned.check is not None and ctx.check_runner is not None:
        requeue = 0.0  # the check this pass put off for its writes comes next
    result = "changed" if patch is not None or changes else "unchanged"
    return PassOutcome(result, steps, patch, planned.status.get("phase"), requeue)


async def _name_conflict(ctx: Context, body: Mapping[str, Any], message: str) -> None:
    """A child's name is taken by an object this ModelDeployment does not control: status says so
    (Pending, NameConflict, with an Event), nothing was written, and the pass waits (raises WaitingFor)."""
    conflict = desired.failure_status(body, "NameConflict", message, "Pending", datetime.now(UTC))
    if await write_status(ctx, body, conflict) is not None:
        meta = body["metadata"]
        log.warning("ModelDeployment %s/%s: %s", meta["namespace"], meta["name"], message)
    raise WaitingFor("NameConflict", message, delay=NAME_CONFLICT_RETRY_SECONDS)


async def _apply_rejected(ctx: Context, body: Mapping[str, Any], message: str) -> None:
    """The API server refused a write: status says so (ApplyRejected, quoting it, with an Event); what runs
    keeps running; the pass waits, longer after each refusal in a row (raises WaitingFor)."""
    meta = body["metadata"]
    delay = ctx.rejections.record((meta["namespace"], meta["name"]), meta.get("generation"), time.monotonic())
    phase = "Degraded" if (body.get("status") or {}).get("activeRevision") else "Failed"
    rejected = desired.failure_status(body, "ApplyRejected", message, phase, datetime.now(UTC))
    if await write_status(ctx, body, rejected) is not None:
        log.warning("ModelDeployment %s/%s: the API server refused a write: %s", *_key(meta), message)
    raise WaitingFor("ApplyRejected", message, delay=delay)


def _key(meta: Mapping[str, Any]) -> tuple[str, str]:
    return meta["namespace"], meta["name"]


async def _write_pass_status(
    ctx: Context, body: Mapping[str, Any], planned: desired.PlannedPass
) -> dict | None:
    """The pass's one status write (with its Events), counted in the rollout metrics."""
    patch = await write_status(ctx, body, planned.status, planned.events)
    meta = body["metadata"]
    metrics.record_rollout(meta["namespace"], meta["name"], body.get("status") or {}, planned.status)
    return patch


async def _valid_spec(ctx: Context, body: Mapping[str, Any]) -> api.ModelDeploymentSpec:
    """The parsed spec; an invalid one gets its status (Failed, InvalidSpec) and raises InvalidSpec."""
    try:
        return parse_spec(body)
    except ValueError as exc:
        message = str(exc)
        failed = desired.failure_status(body, "InvalidSpec", message, "Failed", datetime.now(UTC))
        if await write_status(ctx, body, failed) is not None:  # first time this generation fails: say it once
            meta = body["metadata"]
            log.warning("ModelDeployment %s/%s is invalid: %s", meta["namespace"], meta["name"], message)
        raise InvalidSpec(message) from exc


async def _wait_for(ctx: Context, body: Mapping[str, Any], reason: str, message: str) -> None:
    """A referenced object is missing or not marked for its use: status says so, nothing is written (what
    serves keeps serving), and the pass waits (raises WaitingFor)."""
    await write_status(ctx, body, desired.refused_status(body, reason, message, datetime.now(UTC)))
    raise WaitingFor(reason, message)


def _version(obj: Mapping[str, Any]) -> int:
    text = str(obj.get("metadata", {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else -1


def with_unechoed(
    observed: Observed, unechoed: Mapping[tuple[str, str], str], parent_uid: str | None
) -> list[tuple[str, str]]:
    """Lay the children we wrote over the indexed ones where the index is missing them or older; returns
    the keys the index has caught up with (an apply that changed nothing has no watch echo)."""
    caught_up = []
    for key, packed in unechoed.items():
        written = unpacked(packed)
        if parent_uid and owner_uid(written) not in (None, parent_uid):
            caught_up.append(key)  # written for an earlier namesake of this ModelDeployment
            continue
        indexed = observed.children.get(key)
        if indexed is None or _version(indexed) < _version(written):
            observed.children[key] = written
        else:
            caught_up.append(key)
    return caught_up


async def reconcile_by_key(
    ctx: Context,
    namespace: str,
    name: str,
    children: Iterable[str | Mapping[str, Any]],
    pods: Iterable[str | Mapping[str, Any]],
    *,
    trigger: str,
) -> PassOutcome | None:
    """Reconcile from the newest ModelDeployment body seen, or a read when none was (None when it is
    gone or being deleted)."""
    body = ctx.cache.bodies.get(namespace, name)
    if body is None:
        body = await ctx.kube.get(MODEL_DEPLOYMENT, namespace, name)
    if body is None or body.get("metadata", {}).get("deletionTimestamp"):
        return None
    return await reconcile(ctx, body, children, pods, trigger=trigger)
