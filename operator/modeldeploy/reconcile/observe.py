"""Observe: what exists for one ModelDeployment, the first step of a pass.

The operator keeps its children and their pods in kopf indexes (filled by watch streams), so observing
them costs no API call; the pure helpers here decide what to keep and which parent an object belongs to.
``read_live`` makes the few reads a pass needs beyond the indexes (the objects the pods mount, the
children of kinds that are not indexed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modeldeploy import desired
from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.desired.wake import completes_candidate
from modeldeploy.k8s import (
    OPTIONAL_CHILD_KINDS,
    PVC,
    SECRET,
    SERVICE_ACCOUNT,
    WATCHED_CHILD_KINDS,
    kind_of,
    starts_pods,
)
from modeldeploy.reconcile.plan import OWNER_API_GROUP, OWNER_KIND, Action, ChildKey, Claim, Step, claim

if TYPE_CHECKING:
    from modeldeploy.reconcile.core import Context

log = logging.getLogger(__name__)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modeldeploy"
# Labels that name the parent ModelDeployment on pods (pods are owned by ReplicaSets, not by us).
PARENT_LABELS = ("modeldeploy.io/name", "app.kubernetes.io/instance")

_KEPT_METADATA = (
    "name", "namespace", "uid", "labels", "annotations", "ownerReferences",
    "generation", "resourceVersion", "deletionTimestamp", "creationTimestamp",
)  # fmt: skip
# Kinds watched through kopf indexes; others (optional CRDs) are read when a pass wants them.
INDEXED_KINDS = frozenset(kind.kind for kind in WATCHED_CHILD_KINDS)
OPTIONAL_CRDS = {kind.kind: kind.crd_name for kind in OPTIONAL_CHILD_KINDS}
_OPTIONAL_KINDS = {kind.kind: kind for kind in OPTIONAL_CHILD_KINDS}
_REFERENCED_KINDS = {"Secret": SECRET, "PersistentVolumeClaim": PVC, "ServiceAccount": SERVICE_ACCOUNT}


@dataclass
class Observed:
    """What exists for one ModelDeployment: children by (kind, name), and its serving pods; after
    ``read_live`` also why the first object the pods mount may not be used (missing or not marked for
    that use) and the child kinds whose CRD is not installed."""

    children: dict[ChildKey, dict] = field(default_factory=dict)
    pods: list[dict] = field(default_factory=list)
    refused: tuple[str, str] | None = None  # (reason, message): a referenced object may not be used
    absent_kinds: set[str] = field(default_factory=set)

    def of_kind(self, kind: str) -> dict[str, dict]:
        return {name: obj for (k, name), obj in self.children.items() if k == kind}


def _slim_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {key: meta[key] for key in _KEPT_METADATA if key in meta}


def slim_child(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a child we compare and report on (managedFields dropped: they are large)."""
    slim = {key: body[key] for key in ("apiVersion", "kind", "spec", "status", "data") if key in body}
    slim["metadata"] = _slim_metadata(body.get("metadata", {}))
    return json_copy(slim)


def packed_child(body: Mapping[str, Any], **override: str) -> str:
    """slim_child as one compact JSON string: what the indexes hold for thousands of children (nested
    dicts cost several times their JSON size: at 1,000 ModelDeployments the indexes were the bulk of the
    operator's heap); `override` sets fields list responses omit (apiVersion, kind)."""
    # "data": the shadow ConfigMap is compared by its content (it is small; no other child has data).
    slim = {key: body[key] for key in ("apiVersion", "kind", "spec", "status", "data") if key in body}
    slim.update(override)
    slim["metadata"] = _slim_metadata(body.get("metadata", {}))
    return json.dumps(slim, separators=(",", ":"), default=dict)


def unpacked(child: str | Mapping[str, Any]) -> dict[str, Any]:
    """An index entry as a dict a pass may change (entries are packed strings; plain dicts are copied)."""
    return json.loads(child) if isinstance(child, str) else json_copy(child)


def packed_pod(body: Mapping[str, Any]) -> str:
    """slim_pod as one compact JSON string, for the pod index (unpacked by observed_for)."""
    return json.dumps(slim_pod(body), separators=(",", ":"))


def pod_completes_candidate(
    md: Mapping[str, Any], pod: Mapping[str, Any], packed_pods: Iterable[str | Mapping[str, Any]]
) -> bool:
    """Whether a pod event completes the candidate the rollout waits for (desired.wake), the ModelDeployment's
    pods read from the pod index."""
    return completes_candidate(md, pod, (unpacked(p) for p in packed_pods))


def slim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pod reduced to what status and the rollout probes read: labels, phase, conditions, container
    states, and its IP (analysis scrapes each Ready pod's /metrics)."""
    status = body.get("status") or {}
    kept_status = {
        key: status[key]
        for key in (
            "phase",
            "conditions",
            "containerStatuses",
            "initContainerStatuses",
            "reason",
            "message",
            "podIP",
        )
        if key in status
    }
    return json_copy({"metadata": _slim_metadata(body.get("metadata", {})), "status": kept_status})


def owner_name(body: Mapping[str, Any]) -> str | None:
    """The ModelDeployment that owns a child, from its controller owner reference."""
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == OWNER_KIND and str(ref.get("apiVersion", "")).startswith(OWNER_API_GROUP):
            return ref.get("name")
    return None


def owner_uid(body: Mapping[str, Any]) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == OWNER_KIND and str(ref.get("apiVersion", "")).startswith(OWNER_API_GROUP):
            return ref.get("uid")
    return None


def pod_parent_name(body: Mapping[str, Any]) -> str | None:
    labels = body.get("metadata", {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return None
    for label in PARENT_LABELS:
        if labels.get(label):
            return labels[label]
    return None


def observed_for(
    parent_uid: str | None,
    children: Iterable[str | Mapping[str, Any]],
    pods: Iterable[str | Mapping[str, Any]],
) -> Observed:
    """Children owned by *this* incarnation of the parent (a re-created namesake has another uid), from
    index entries (packed strings or dicts)."""
    observed = Observed()
    for entry in children:
        child = unpacked(entry)
        if parent_uid and owner_uid(child) not in (None, parent_uid):
            continue
        observed.children[(child["kind"], child["metadata"]["name"])] = child
    unpacked_pods = (unpacked(pod) for pod in pods)
    observed.pods = [pod for pod in unpacked_pods if not pod.get("metadata", {}).get("deletionTimestamp")]
    return observed


async def read_live(
    ctx: Context, body: Mapping[str, Any], spec: ModelDeploymentSpec, observed: Observed
) -> Observed:
    """The reads a pass makes beyond the indexes: the objects the pods mount (stops at the first one that
    is missing or not marked for its use), then the wanted children of kinds that are not indexed (none
    while the CRD is missing)."""
    namespace = body["metadata"]["namespace"]
    for ref in desired.references(spec):
        live = await ctx.kube.get(_REFERENCED_KINDS[ref.kind], namespace, ref.name)
        observed.refused = desired.refusal(ref, namespace, live)
        if observed.refused is not None:
            return observed
    for manifest in desired.optional_children(body, spec):
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind in INDEXED_KINDS:
            continue
        crd = OPTIONAL_CRDS.get(kind)
        if crd and not await crd_available(ctx, crd):
            log.debug("skipping %s %s/%s: CRD %s is not installed", kind, namespace, name, crd)
            observed.absent_kinds.add(kind)
            continue
        live = await ctx.kube.get(kind_of(manifest), namespace, name)
        if live is not None:
            observed.children[(kind, name)] = slim_child(live)
    if spec_unobserved(body):
        await _read_unwanted(ctx, body, spec, observed)
    return observed


def spec_unobserved(body: Mapping[str, Any]) -> bool:
    """Whether the spec changed since an earlier generation's status was written (a route or ServiceMonitor
    it dropped may be left over); a new ModelDeployment and the passes after that need not look."""
    seen = (body.get("status") or {}).get("observedGeneration")
    return seen is not None and seen != body.get("metadata", {}).get("generation")


async def _read_unwanted(
    ctx: Context, body: Mapping[str, Any], spec: ModelDeploymentSpec, observed: Observed
) -> None:
    """Children of unwatched kinds the spec no longer asks for, when this ModelDeployment controls them:
    observed, so the plan deletes them (anyone else's object of that name is left alone)."""
    meta = body["metadata"]
    for kind, name in desired.unwanted_optional_children(body, spec):
        crd = OPTIONAL_CRDS.get(kind)
        if crd and not await crd_available(ctx, crd):
            continue
        live = await ctx.kube.get(_OPTIONAL_KINDS[kind], meta["namespace"], name)
        if live is not None and claim(live, meta.get("uid", ""), meta["name"]) == Claim.OURS:
            observed.children[(kind, name)] = slim_child({**live, "kind": kind})


def json_copy(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (kopf bodies are read-only views)."""
    if isinstance(value, Mapping):
        return {str(k): json_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_copy(v) for v in value]
    return value


OWNER_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


def crd_preserves_status_field(crd: Mapping[str, Any], field_name: str) -> bool:
    """Whether the served version's schema keeps status.<field_name> (else the API server prunes it)."""
    for version in crd.get("spec", {}).get("versions") or []:
        if not version.get("storage"):
            continue
        schema = version.get("schema", {}).get("openAPIV3Schema", {})
        status = schema.get("properties", {}).get("status", {})
        if status.get("x-kubernetes-preserve-unknown-fields"):
            return True
        return bool(
            status.get("properties", {}).get(field_name, {}).get("x-kubernetes-preserve-unknown-fields")
        )
    return False


async def read_taken(
    ctx: Context, namespace: str, steps: list[Step], known: Mapping[ChildKey, dict | None] | None = None
) -> dict[ChildKey, dict | None]:
    """Who holds the name of each create step: the live object (slim), or None when the name is free.
    The indexes hold only our children, so a name missing there may still be taken by someone else: read
    it once, before the first write (kinds that are not indexed were read by ``read_live``); `known`
    answers carried from the pass just before. The reads are urgent when a serving Deployment's apply
    waits for them (they are part of starting pods early).

    GETs, not the alternatives tried (docs/benchmarks.md): a create by POST is atomic but leaves every
    field owned by an Update entry, so a later apply can no longer remove one; and server-side apply has
    no create-only precondition (a uid in the patch refuses the create itself)."""
    known = known or {}
    creates = [
        step
        for step in steps
        if step.action == Action.CREATE and step.kind in INDEXED_KINDS and step.manifest is not None
    ]
    unread = [step for step in creates if (step.kind, step.name) not in known]
    urgent = any(step.manifest is not None and starts_pods(step.manifest) for step in steps)
    found = await asyncio.gather(
        *(ctx.kube.get(kind_of(step.manifest or {}), namespace, step.name, urgent=urgent) for step in unread)
    )
    read = {
        (step.kind, step.name): slim_child({**live, "kind": step.kind}) if live is not None else None
        for step, live in zip(unread, found, strict=True)
    }
    return {(step.kind, step.name): {**known, **read}[(step.kind, step.name)] for step in creates}


async def crd_available(ctx: Context, name: str) -> bool:
    """Whether a CRD is installed, read again once the cache's answer is a minute old."""
    known = ctx.cache.crds.known(name, time.monotonic())
    if known is not None:
        return known
    present = await ctx.kube.get_crd(name) is not None
    ctx.cache.crds.record(name, present, time.monotonic())
    return present
