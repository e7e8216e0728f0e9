"""One pure pass for a ModelDeployment: rollout step, the children to apply, and the status to write.

Public: ``rollout_pass(body, spec, observed, params, now=None, report=None) -> PlannedPass``,
``CheckReport``, ``optional_children(body, spec, placement)``,
``children_for(body, spec, revision, placement, observed_children, params)``, ``TEMPLATE_ANNOTATION``.

``observed`` is anything with ``.children`` (mapping (kind, name) -> object) and ``.pods`` (list of pods).
When ``PlannedPass.check`` asks for a check, the reconciler runs it and calls ``rollout_pass`` again with
its ``CheckReport``: the verdict, the analysis windows and the A/B view all land in the one status the
pass writes.

A colour that runs an older revision than the spec (the active colour during a rollout, the warm previous
colour after one) is rebuilt from the pod-relevant spec saved on its Deployment
(annotation ``modeldeploy.io/template-spec``), so only its replicas change: no restart, no surprise.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modeldeploy.api import (
    CheckResult,
    Color,
    ColorStats,
    DriftStatus,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ShadowFigures,
)
from modeldeploy.desired.children import (
    build_hpa,
    build_httproute,
    build_pdb,
    build_service_monitor,
    build_services,
)
from modeldeploy.desired.deployment import TEMPLATE_ANNOTATION, build_deployment
from modeldeploy.desired.drift import drift_due, judge_drift
from modeldeploy.desired.naming import deployment_name
from modeldeploy.desired.params import BuildParams
from modeldeploy.desired.revision import POD_FIELDS, revision_of
from modeldeploy.desired.rollout import Check, KubeEvent, Placement, plan_placement, plan_rollout_step
from modeldeploy.desired.shadow import shadow_config_child
from modeldeploy.desired.status import current_status, observe_rollout, status_from

__all__ = [
    "TEMPLATE_ANNOTATION",
    "CheckReport",
    "PlannedPass",
    "children_for",
    "optional_children",
    "rollout_pass",
    "unwanted_optional_children",
]

DRIFT_BLOCKED_RETRY_SECONDS = 5.0  # drift is due but another check had the pass: look again soon
_SERVER_OWNED_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


@dataclass(frozen=True)
class CheckReport:
    """What the check a pass asked for found. ``results``: the verdicts (``{Check.smoke: CheckResult}``);
    ``baselines``: the analysis windows to keep (colour -> metrics snapshot, for
    ``status.rollout.analysisBaselines``); ``color_stats``: the A/B view (``status.colors``). None keeps
    what status has."""

    results: Mapping[Check, CheckResult] = field(default_factory=dict)
    baselines: Mapping[str, Mapping[str, Any]] | None = None
    color_stats: Sequence[ColorStats] | None = None
    shadow: ShadowFigures | None = None  # the shadow check's counts (an input of the gate)
    drift: DriftStatus | None = None  # the drift check's figures (status.drift and its Events)


@dataclass
class PlannedPass:
    """What one pass should do: the children to apply, the status to write, the Events to emit, the check
    to run first (if any), and when to look again."""

    revision: str
    children: list[dict[str, Any]]
    status: dict[str, Any]
    check: Check | None = None
    events: list[KubeEvent] = field(default_factory=list)
    requeue_after: float | None = None
    transition: str = ""
    placement: Placement | None = None


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).replace(microsecond=0)


def _scale_only(
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    color: Color,
    revision: str | None,
    replicas: int,
    live: Mapping[str, Any] | None,
    params: BuildParams,
) -> dict[str, Any] | None:
    """The Deployment of an older revision, rebuilt from its saved spec with new replicas."""
    if live is None:
        return None
    saved = ((live.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_ANNOTATION)
    if saved:
        try:
            doc = json.loads(saved)
            old = _merge_pod_fields(spec, doc["spec"])
            saved_params = dataclasses.replace(params, default_image=doc["image"])
        except (ValueError, TypeError, KeyError):
            pass  # edited by hand, or saved by a release with another schema: the live copy is the template
        else:
            return build_deployment(body, old, color, revision or "", replicas, saved_params)
    copy = json.loads(
        json.dumps({k: live[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in live})
    )
    for key in _SERVER_OWNED_METADATA:
        copy["metadata"].pop(key, None)
    copy.setdefault("apiVersion", "apps/v1")
    copy.setdefault("kind", "Deployment")
    copy["spec"]["replicas"] = replicas
    return copy


def _merge_pod_fields(spec: ModelDeploymentSpec, saved: Mapping[str, Any]) -> ModelDeploymentSpec:
    current = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    for name in POD_FIELDS:
        current.pop(ModelDeploymentSpec.model_fields[name].alias or name, None)
    # The drift reference the old pods fetch is theirs; the rest of monitoring is today's.
    monitoring = {k: v for k, v in (current.pop("monitoring", None) or {}).items() if k != "drift"}
    saved = dict(saved)
    drift = (saved.pop("monitoring", None) or {}).get("drift")
    if drift:
        monitoring["drift"] = drift
    if monitoring:
        current["monitoring"] = monitoring
    return ModelDeploymentSpec.model_validate({**current, **saved})


def children_for(
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    revision: str,
    placement: Placement,
    observed_children: Mapping[tuple[str, str], Mapping[str, Any]],
    params: BuildParams,
) -> list[dict[str, Any]]:
    name = body["metadata"]["name"]
    out: list[dict[str, Any]] = []
    for color in Color:
        plan = placement.colors[color]
        if plan.apply_template:
            out.append(build_deployment(body, spec, color, plan.revision or revision, plan.replicas, params))
            continue
        live = observed_children.get(("Deployment", deployment_name(name, color)))
        built = _scale_only(body, spec, color, plan.revision, plan.replicas, live, params)
        if built is not None:
            out.append(built)
    out += build_services(body, placement.stable_colors, placement.preview_color, spec.server.grpc)
    return out + optional_children(body, spec, placement)


def optional_children(
    body: Mapping[str, Any], spec: ModelDeploymentSpec, placement: Placement | None = None
) -> list[dict[str, Any]]:
    """The children only some specs ask for (route, autoscaler, disruption budget, ServiceMonitor); without
    a placement, the route carries no weights (enough to know which children the spec wants)."""
    weights, header = (placement.route_weights, placement.header_color) if placement else ({}, None)
    optional = [
        build_httproute(body, spec, weights, header),
        build_hpa(body, spec),
        build_pdb(body, spec, spec.replicas),
        build_service_monitor(body, spec),
    ]
    return [child for child in optional if child is not None]


# Optional children of kinds the operator does not watch: found only by looking under their name.
UNWATCHED_OPTIONAL_KINDS = ("HTTPRoute", "ServiceMonitor")


def unwanted_optional_children(body: Mapping[str, Any], spec: ModelDeploymentSpec) -> list[tuple[str, str]]:
    """(kind, name) of each route or ServiceMonitor this spec does not ask for, under the name it gets when
    asked for: where one left by an earlier spec would be (to delete it)."""
    name = body["metadata"]["name"]
    wanted = {child["kind"] for child in optional_children(body, spec)}
    return [(kind, name) for kind in UNWATCHED_OPTIONAL_KINDS if kind not in wanted]


def rollout_pass(
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    observed: Any,
    params: BuildParams,
    now: datetime | None = None,
    report: CheckReport | None = None,
) -> PlannedPass:
    """`report`: what the check the previous call asked for found (None: no check ran this pass)."""
    now = _now(now)
    name = body["metadata"]["name"]
    revision = revision_of(spec)
    observation = observe_rollout(name, observed.children, observed.pods)
    if report is not None:
        observation = observation.with_results(report.results)
        if report.shadow is not None:
            observation = dataclasses.replace(observation, shadow=report.shadow)
    plan = plan_rollout_step(spec, revision, current_status(body), observation, now)
    if report is not None:
        _record_report(plan.status, report)
    if report is not None and report.drift is not None:
        plan.status.drift, found = judge_drift(spec, plan.status.drift, report.drift)
        plan.events.extend(found)
    due = drift_due(spec, plan.status, now)
    if due is not None:
        # Drift waits for a pass no rollout check needs (one check per pass; the rollout's come first).
        if due <= 0 and plan.check is None and report is None:
            plan.check = Check.drift
        else:
            wait = due if due > 0 else DRIFT_BLOCKED_RETRY_SECONDS
            plan.requeue_after = wait if plan.requeue_after is None else min(plan.requeue_after, wait)
    elif plan.status.drift is not None and (spec.monitoring is None or spec.monitoring.drift is None):
        plan.status.drift = None  # drift no longer watched: no stale figures in status
    placement = plan_placement(spec, revision, plan.status, observation, now)
    children = children_for(body, spec, revision, placement, observed.children, params)
    shadow_config = shadow_config_child(body, spec, plan.status, observed.children)
    if shadow_config is not None:
        children.append(shadow_config)
    status = status_from(
        body, spec, revision, plan.status, observation, observed.children, observed.pods, now
    )
    return PlannedPass(
        revision=revision,
        children=children,
        status=status.model_dump(by_alias=True, exclude_none=True, mode="json"),
        check=plan.check,
        events=plan.events,
        requeue_after=plan.requeue_after,
        transition=plan.transition,
        placement=placement,
    )


def _record_report(status: ModelDeploymentStatus, report: CheckReport) -> None:
    """The check's side findings go into the same status as its verdict (one write per pass)."""
    if report.baselines is not None and status.rollout is not None:
        baselines = {color: dict(snapshot) for color, snapshot in report.baselines.items()}
        if baselines != (status.rollout.analysis_baselines or {}):
            status.rollout.analysis_baselines = baselines
    if report.color_stats is not None:
        status.colors = list(report.color_stats)
