"""Reconcile one ModelDeployment: observe -> plan -> apply -> status. Writes only what changed.

Raised to the caller (handlers translate them to kopf):
- InvalidSpec: the spec passed the schema but can never work as written; no retry.
- WaitingFor: something the spec refers to is missing (Secret, PVC); retry with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy import metrics
from modeldeploy.k8s import (
    MODEL_DEPLOYMENT,
    OPTIONAL_CHILD_KINDS,
    PVC,
    SECRET,
    WATCHED_CHILD_KINDS,
    Kube,
    kind_of,
    starts_pods,
)
from modeldeploy.reconcile import desired_port
from modeldeploy.reconcile.bodies import BodyCache
from modeldeploy.reconcile.observe import (
    Observed,
    observed_for,
    owner_uid,
    packed_child,
    slim_child,
    unpacked,
)
from modeldeploy.reconcile.plan import Action, Step, plan_children
from modeldeploy.reconcile.status import keep_transition_times, status_merge_patch, transition_events
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
class Outcome:
    result: str  # changed | unchanged | partial (finished in a later pass) | invalid | waiting
    steps: list[Step] = field(default_factory=list)
    status_patch: dict[str, Any] | None = None
    phase: str | None = None
    requeue_after: float | None = None

    @property
    def writes(self) -> int:
        return sum(s.action != Action.UNCHANGED for s in self.steps) + (self.status_patch is not None)


Event = tuple[str, str, str]  # (type, reason, message) of a Kubernetes Event
# Kinds watched through kopf indexes; others (optional CRDs) are read when a pass wants them.
INDEXED_KINDS = frozenset(kind.kind for kind in WATCHED_CHILD_KINDS)
OPTIONAL_CRDS = {kind.kind: kind.crd_name for kind in OPTIONAL_CHILD_KINDS}
CRD_CHECK_SECONDS = 60.0


# Runs the check a pass asks for (smoke, quality gate, analysis, evaluation) -> {check: CheckResult}.
CheckRunner = Callable[[Mapping[str, Any], Any, Any, Observed], Awaitable[Mapping[Any, Any]]]


@dataclass
class Context:
    kube: Kube
    settings: OperatorSettings
    check_runner: CheckRunner | None = None  # wired to modeldeploy.probes by the rollout work
    # Whether other passes wait for a slot: then a pass that has written its Deployments hands its slot
    # over and finishes in a later pass (see finish_later). The handlers wire it to their semaphore.
    passes_waiting: Callable[[], bool] = lambda: False
    # (kind, namespace, name) -> resourceVersion of our last write: its watch event needs no reconcile.
    own_writes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # The newest ModelDeployment bodies seen (watch events, our status patches): passes need no GET.
    bodies: BodyCache = field(default_factory=BodyCache)

    # Children we wrote whose watch echo has not reached the indexes yet, packed, by parent key. A pass
    # lays them over the indexes: when the watch lags in a burst, a pass must not take a child it has
    # just written for missing or old and write it again (each rewrite is one more lagging event).
    unechoed: dict[tuple[str, str], dict[tuple[str, str], str]] = field(default_factory=dict)

    def is_own_write(self, kind: str, namespace: str, name: str, resource_version: str | None) -> bool:
        return (
            resource_version is not None and self.own_writes.get((kind, namespace, name)) == resource_version
        )

    def wrote(self, namespace: str, parent: str, applied: Mapping[str, Any]) -> None:
        kind, name = applied["kind"], applied["metadata"]["name"]
        self.own_writes[(kind, namespace, name)] = applied["metadata"].get("resourceVersion", "")
        if kind in INDEXED_KINDS:  # the others are read afresh by every pass that wants them
            self.unechoed.setdefault((namespace, parent), {})[(kind, name)] = packed_child(applied)

    def echoed(self, kind: str, namespace: str, name: str, parent: str) -> None:
        """The watch (and so the index) has caught up with a child we wrote, or it is gone."""
        pending = self.unechoed.get((namespace, parent))
        if pending is not None:
            pending.pop((kind, name), None)
            if not pending:
                del self.unechoed[(namespace, parent)]

    def forget_parent(self, namespace: str, parent: str) -> None:
        self.unechoed.pop((namespace, parent), None)

    _crds: dict[str, tuple[bool, float]] = field(default_factory=dict)

    async def crd_available(self, name: str) -> bool:
        """Whether a CRD is installed, re-checked at most once a minute."""
        known = self._crds.get(name)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        present = await self.kube.get_crd(name) is not None
        self._crds[name] = (present, time.monotonic() + CRD_CHECK_SECONDS)
        return present


async def observe_unindexed(
    ctx: Context, namespace: str, desired: list[dict[str, Any]], observed: Observed
) -> list[dict[str, Any]]:
    """Read the live state of desired children that are not indexed; drop those whose CRD is missing."""
    kept = []
    for manifest in desired:
        kind_name = manifest["kind"]
        if kind_name not in INDEXED_KINDS:
            crd = OPTIONAL_CRDS.get(kind_name)
            if crd and not await ctx.crd_available(crd):
                log.debug("skipping %s %s/%s: CRD %s is not installed", kind_name, namespace, crd, crd)
                continue
            live = await ctx.kube.get(kind_of(manifest), namespace, manifest["metadata"]["name"])
            if live is not None:
                observed.children[(kind_name, manifest["metadata"]["name"])] = slim_child(live)
        kept.append(manifest)
    return kept


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _failure_status(body: Mapping[str, Any], reason: str, message: str, phase: str) -> dict[str, Any]:
    """Status for a spec that cannot be served now: Ready=False with the reason, nothing else changed."""
    generation = body.get("metadata", {}).get("generation")
    old = dict(body.get("status") or {})
    conditions = {c["type"]: c for c in old.get("conditions") or [] if "type" in c}
    stamp = {"observedGeneration": generation, "lastTransitionTime": _now()}
    conditions["Ready"] = {"type": "Ready", "status": "False", "reason": reason, "message": message, **stamp}
    conditions.setdefault(
        "Progressing",
        {"type": "Progressing", "status": "False", "reason": reason, "message": message, **stamp},
    )
    conditions.setdefault(
        "Degraded", {"type": "Degraded", "status": "False", "reason": reason, "message": message, **stamp}
    )
    new = {k: v for k, v in old.items() if k != "kopf"}
    new.update({"observedGeneration": generation, "phase": phase, "conditions": list(conditions.values())})
    return new


async def write_status(
    ctx: Context,
    body: Mapping[str, Any],
    new_status: dict[str, Any],
    events: list[Event] | None = None,
) -> dict | None:
    """Patch status through the subresource only when it changed; emit the change's Events."""
    meta = body["metadata"]
    old = body.get("status") or {}
    new_status = keep_transition_times(old, new_status)
    patch = status_merge_patch(old, new_status)
    if patch is not None:
        ctx.bodies.remember(await ctx.kube.patch_status(meta["namespace"], meta["name"], patch))
    announced = list(events or [])
    if patch is not None:
        reasons = {reason for _, reason, _ in announced}
        flips = [e for e in transition_events(old, new_status) if e[1] not in reasons]
        announced = events_of_change(announced, flips)
    for type_, reason, message in announced:
        await ctx.kube.emit_event(_involved(body), reason=reason, message=message, type_=type_)
    return patch


def one_event(transitions: list[Event]) -> list[Event]:
    """The condition flips of one status change as a single Event (a first status flips three at once:
    three Events per change were a third of the operator's requests in a burst). A Warning leads."""
    if len(transitions) <= 1:
        return transitions
    ordered = sorted(transitions, key=lambda event: event[0] != "Warning")
    type_, reason, _ = ordered[0]
    return [(type_, reason, "; ".join(message for _, _, message in ordered))]


def events_of_change(planned: list[Event], flips: list[Event]) -> list[Event]:
    """The Events of one status change: the rollout's own (their reasons are what users and alerts look
    for), with the Normal condition flips told in the first Normal one's message instead of an Event of
    their own (a Ready ModelDeployment cost two Events, a tenth of its requests). Warnings keep theirs."""
    lead = next((i for i, (type_, _, _) in enumerate(planned) if type_ == "Normal"), None)
    normal = [flip for flip in flips if flip[0] == "Normal"]
    if lead is None or not normal:
        return planned + one_event(flips)
    type_, reason, message = planned[lead]
    folded = [
        *planned[:lead],
        (type_, reason, "; ".join([message, *(m for _, _, m in normal)])),
        *planned[lead + 1 :],
    ]
    return folded + one_event([flip for flip in flips if flip[0] != "Normal"])


def _involved(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body["metadata"]),
    }


async def check_prerequisites(ctx: Context, namespace: str, spec: Any) -> None:
    """Objects the spec refers to must exist before we create pods that would hang on them."""
    for kind, name, reason in desired_port.referenced_objects(spec):
        target = {"Secret": SECRET, "PersistentVolumeClaim": PVC}[kind]
        if await ctx.kube.get(target, namespace, name) is None:
            raise WaitingFor(reason, f"{kind} {namespace}/{name} referenced by the spec does not exist")


async def reconcile(
    ctx: Context,
    body: Mapping[str, Any],
    children: Iterable[str | Mapping[str, Any]],
    pods: Iterable[str | Mapping[str, Any]],
    *,
    trigger: str,
) -> Outcome:
    started = time.perf_counter()
    meta = body["metadata"]
    observed = observed_for(meta.get("uid"), children, pods)
    unechoed = ctx.unechoed.get((meta["namespace"], meta["name"]), {})
    for kind, child in with_unechoed(observed, unechoed, meta.get("uid")):
        ctx.echoed(kind, meta["namespace"], child, meta["name"])
    try:
        outcome = await _reconcile(ctx, body, observed)
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


async def _reconcile(ctx: Context, body: Mapping[str, Any], observed: Observed) -> Outcome:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = desired_port.parse_spec(body)
    except ValueError as exc:
        message = str(exc)
        patch = await write_status(ctx, body, _failure_status(body, "InvalidSpec", message, "Failed"))
        if patch is not None:  # first time we see this generation fail: say it loudly once
            log.warning("ModelDeployment %s/%s is invalid: %s", namespace, name, message)
        raise InvalidSpec(message) from exc

    try:
        await check_prerequisites(ctx, namespace, spec)
    except WaitingFor as waiting:
        await write_status(ctx, body, _failure_status(body, waiting.reason, waiting.message, "Pending"))
        raise

    planned = desired_port.run_pass(body, spec, observed, ctx.settings)
    if planned.check is not None and ctx.check_runner is not None:
        results = await ctx.check_runner(body, spec, planned.check, observed)
        planned = desired_port.run_pass(body, spec, observed, ctx.settings, results=results)
    children = await observe_unindexed(ctx, namespace, planned.children, observed)
    steps = plan_children(children, observed.children)
    live = dict(observed.children)

    async def apply(step: Step) -> None:
        assert step.manifest is not None
        log.info("%s %s %s/%s (%s)", step.action, step.kind, namespace, step.name, step.why)
        applied = await ctx.kube.apply(step.manifest)
        applied.setdefault("kind", step.kind)
        ctx.wrote(namespace, name, applied)
        live[(step.kind, step.name)] = slim_child(applied)

    # Concurrently, Deployments first: a pass is then two round trips, not one per child.
    writes = [s for s in steps if s.action in (Action.CREATE, Action.UPDATE)]
    groups = apply_groups(writes)
    for index, group in enumerate(groups):
        if index > 0 and finish_later(groups[0], ctx.passes_waiting()):
            applied = [step for step in steps if step in groups[0]]
            return Outcome("partial", applied, None, planned.status.get("phase"), requeue_after=0.0)
        await asyncio.gather(*(apply(step) for step in group))
    for step in steps:
        if step.action == Action.DELETE:
            log.info("delete %s %s/%s (%s)", step.kind, namespace, step.name, step.why)
            kind = kind_of(live[(step.kind, step.name)])
            await ctx.kube.delete(kind, namespace, step.name)
            ctx.own_writes.pop((step.kind, namespace, step.name), None)
            ctx.echoed(step.kind, namespace, step.name, name)
            live.pop((step.kind, step.name))

    patch = await write_status(ctx, body, planned.status, planned.events)
    metrics.record_rollout(namespace, name, body.get("status") or {}, planned.status)
    changed = patch is not None or any(s.action != Action.UNCHANGED for s in steps)
    return Outcome(
        "changed" if changed else "unchanged",
        steps,
        patch,
        planned.status.get("phase"),
        planned.requeue_after,
    )


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


async def reconcile_by_key(
    ctx: Context,
    namespace: str,
    name: str,
    children: Iterable[str | Mapping[str, Any]],
    pods: Iterable[str | Mapping[str, Any]],
    *,
    trigger: str,
) -> Outcome | None:
    """Reconcile from the newest ModelDeployment body seen, or a read when none was (None when it is
    gone or being deleted)."""
    body = ctx.bodies.get(namespace, name)
    if body is None:
        body = await ctx.kube.get(MODEL_DEPLOYMENT, namespace, name)
    if body is None or body.get("metadata", {}).get("deletionTimestamp"):
        return None
    return await reconcile(ctx, body, children, pods, trigger=trigger)
