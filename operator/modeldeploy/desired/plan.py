"""One pure pass for a ModelDeployment: rollout step, the children to apply, and the status to write.

Public: ``rollout_pass(body, spec, observed, params, now=None, results=None, color_stats=None) -> Pass``,
``children_for(body, spec, revision, status, placement, observed_children, params)``, ``TEMPLATE_ANNOTATION``.

``observed`` is anything with ``.children`` (mapping (kind, name) -> object) and ``.pods`` (list of pods).
``results`` carries check outcomes the reconciler ran because ``Pass.check`` asked for them
(``{Check.smoke: CheckResult, ...}``); call ``rollout_pass`` again with them in the same pass.

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

from pydantic import ValidationError

from modeldeploy.api import CheckResult, Color, ColorStats, ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.desired.children import (
    build_hpa,
    build_httproute,
    build_pdb,
    build_service_monitor,
    build_services,
)
from modeldeploy.desired.deployment import TEMPLATE_ANNOTATION, build_deployment
from modeldeploy.desired.naming import deployment_name
from modeldeploy.desired.params import BuildParams
from modeldeploy.desired.revision import POD_FIELDS, revision_of
from modeldeploy.desired.rollout import Check, KubeEvent, Placement, plan_placement, plan_rollout_step
from modeldeploy.desired.status import observe_rollout, status_from

__all__ = ["TEMPLATE_ANNOTATION", "Pass", "children_for", "rollout_pass"]

_SERVER_OWNED_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


@dataclass
class Pass:
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


def _old_status(body: Mapping[str, Any]) -> ModelDeploymentStatus:
    raw = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError:  # an unreadable status is rebuilt from what runs (adoption)
        return ModelDeploymentStatus()


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
        doc = json.loads(saved)
        old = _merge_pod_fields(spec, doc["spec"])
        saved_params = dataclasses.replace(params, default_image=doc["image"])
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
        current.pop(name, None)
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
    out += build_services(body, placement.stable_colors, placement.preview_color)
    optional = [
        build_httproute(body, spec, placement.route_weights, placement.header_color),
        build_hpa(body, spec),
        build_pdb(body, spec, spec.replicas),
        build_service_monitor(body, spec),
    ]
    return out + [child for child in optional if child is not None]


def rollout_pass(
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    observed: Any,
    params: BuildParams,
    now: datetime | None = None,
    results: Mapping[Check, CheckResult] | None = None,
    color_stats: Sequence[ColorStats] | None = None,
) -> Pass:
    """`color_stats`: per-colour requests/error rate/p99 (A/B view) when the reconciler scraped them;
    omitted = keep what status has (so a quiet pass writes nothing)."""
    now = _now(now)
    name = body["metadata"]["name"]
    revision = revision_of(spec)
    observation = observe_rollout(name, observed.children, observed.pods)
    if results:
        observation = observation.with_results(results)
    plan = plan_rollout_step(spec, revision, _old_status(body), observation, now)
    if color_stats is not None:
        plan.status.colors = list(color_stats)
    placement = plan_placement(spec, revision, plan.status, observation, now)
    children = children_for(body, spec, revision, placement, observed.children, params)
    status = status_from(
        body, spec, revision, plan.status, observation, observed.children, observed.pods, now
    )
    return Pass(
        revision=revision,
        children=children,
        status=status.model_dump(by_alias=True, exclude_none=True, mode="json"),
        check=plan.check,
        events=plan.events,
        requeue_after=plan.requeue_after,
        transition=plan.transition,
        placement=placement,
    )
