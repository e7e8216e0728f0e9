"""Status from what is observed (pure): colours, effective traffic, phase and truthful conditions.

Public: ``observe_rollout(name, children, pods) -> RolloutObservation``,
``effective_traffic(spec, name, children, observation, revisions) -> list[TrafficTarget]``,
``traffic_summary(traffic)``, ``status_from(body, spec, revision, rollout_status, observation, children,
pods, now)``,
``set_condition(conditions, new, now)``, ``overall_phase(...)``, ``current_status(body)``,
``failure_status(body, reason, message, phase, now)``.

``children`` is a mapping (kind, name) -> object as read from the API server; ``pods`` the serving pods.
With spec.monitoring.drift, a fourth condition, DriftMonitored (``desired.drift``).
Conditions follow the API conventions: type, status True/False/Unknown, CamelCase reason, message,
observedGeneration, and lastTransitionTime kept while the status does not flip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modeldeploy.api import (
    Color,
    Condition,
    ConditionType,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Phase,
    RolloutPhase,
    RolloutState,
    TrafficTarget,
)
from modeldeploy.desired.drift import drift_condition
from modeldeploy.desired.naming import LABEL_COLOR, LABEL_REVISION, deployment_name, selector, service_names
from modeldeploy.desired.pods import first_failure, longest_init, pod_ready, pods_of
from modeldeploy.desired.rollout import IN_FLIGHT, ColorObservation, RolloutObservation

Children = Mapping[tuple[str, str], Mapping[str, Any]]


def current_status(body: Mapping[str, Any]) -> ModelDeploymentStatus:
    """The status a body carries (kopf's bookkeeping left out); an unreadable one reads as empty, so it is
    rebuilt from what runs (adoption)."""
    raw = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError:
        return ModelDeploymentStatus()


def failure_status(
    body: Mapping[str, Any], reason: str, message: str, phase: str, now: datetime
) -> dict[str, Any]:
    """Status for a spec that cannot be served now (invalid, or a referenced object missing): Ready=False
    with the reason, the other conditions kept (or added with it), nothing else changed."""
    generation = body.get("metadata", {}).get("generation")
    message = Condition.cut_field("message", message)
    old = dict(body.get("status") or {})
    conditions = {c["type"]: c for c in old.get("conditions") or [] if "type" in c}
    stamp = {"observedGeneration": generation, "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    conditions["Ready"] = {"type": "Ready", "status": "False", "reason": reason, "message": message, **stamp}
    for ctype in ("Progressing", "Degraded"):
        conditions.setdefault(
            ctype, {"type": ctype, "status": "False", "reason": reason, "message": message, **stamp}
        )
    new = {k: v for k, v in old.items() if k != "kopf"}
    new.update({"observedGeneration": generation, "phase": phase, "conditions": list(conditions.values())})
    return new


def refused_status(body: Mapping[str, Any], reason: str, message: str, now: datetime) -> dict[str, Any]:
    """Status while a referenced object may not be used. Before anything serves: Pending, Ready=False.
    Once a revision serves it keeps serving (nothing is written while refused): phase Degraded with a
    Degraded=True condition that says why changes wait; Ready stays as it was."""
    old = body.get("status") or {}
    if not old.get("activeRevision"):
        return failure_status(body, reason, message, "Pending", now)
    generation = body.get("metadata", {}).get("generation")
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")  # the status writer keeps an unflipped condition's stamp
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != "Degraded"]
    conditions.append(
        {"type": "Degraded", "status": "True", "reason": reason, "observedGeneration": generation,
         "message": f"{message}; the current revision keeps serving, changes wait",
         "lastTransitionTime": stamp}
    )  # fmt: skip
    new = {k: v for k, v in old.items() if k != "kopf"}
    new.update({"phase": "Degraded", "conditions": conditions})
    return new


def _template_revision(deployment: Mapping[str, Any]) -> str | None:
    template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    labels = template.get("labels") or (deployment.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_REVISION)


def _pod_revision(pod: Mapping[str, Any]) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_REVISION)


def _deployment_ready(deployment: Mapping[str, Any]) -> int:
    """Ready pods by the Deployment's own count, trusted only once every pod runs the current template."""
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation")
    current = status.get("observedGeneration") == generation and status.get(
        "updatedReplicas", 0
    ) == status.get("replicas", 0)
    return int(status.get("readyReplicas") or 0) if current else 0


def observe_rollout(name: str, children: Children, pods: Iterable[Mapping[str, Any]]) -> RolloutObservation:
    pods = list(pods)
    colors: dict[Color, ColorObservation] = {}
    for color in Color:
        deployment = children.get(("Deployment", deployment_name(name, color)))
        if deployment is None:
            colors[color] = ColorObservation()
            continue
        revision = _template_revision(deployment)
        all_pods = pods_of(pods, name, color)
        current = pods_of(all_pods, name, color, revision)
        ready = sum(pod_ready(p) for p in current) if all_pods else _deployment_ready(deployment)
        earlier = sum(pod_ready(p) for p in all_pods if _pod_revision(p) != revision)
        colors[color] = ColorObservation(
            exists=True,
            revision=revision,
            replicas=int((deployment.get("spec") or {}).get("replicas") or 0),
            ready_replicas=ready,
            earlier_ready=earlier,
            failure=str(first_failure(all_pods) or "") or None,
            initializing=longest_init(current),
        )
    stable = children.get(("Service", name))
    stable_color = ((stable or {}).get("spec") or {}).get("selector", {}).get(LABEL_COLOR)
    return RolloutObservation(colors=colors, stable_color=Color(stable_color) if stable_color else None)


def _route_weights(children: Children, name: str) -> dict[Color, int] | None:
    route = children.get(("HTTPRoute", name))
    if route is None:
        return None
    rules = (route.get("spec") or {}).get("rules") or []
    names = service_names(name)
    weights: dict[Color, int] = {}
    for ref in (rules[-1].get("backendRefs") or []) if rules else []:
        for color in Color:
            if ref.get("name") == names[color.value]:
                weights[color] = int(ref.get("weight", 1))
    return weights


def effective_traffic(
    spec: ModelDeploymentSpec, name: str, children: Children, observation: RolloutObservation
) -> list[TrafficTarget]:
    """Who really gets traffic: route weights (Gateway API) or Ready endpoints behind the stable Service,
    counting only colours with Ready pods -- not what was wished."""
    ready = {c: observation.color(c).ready_replicas for c in Color}
    gateway = (
        spec.rollout.traffic_routing is not None and spec.rollout.traffic_routing.gateway_api is not None
    )
    route = _route_weights(children, name) if gateway else None
    if route is not None:
        shares = {c: route.get(c, 0) if ready[c] > 0 else 0 for c in Color}
    else:
        stable = children.get(("Service", name))
        chosen = ((stable or {}).get("spec") or {}).get("selector", {}).get(LABEL_COLOR)
        shares = {c: ready[c] if chosen in (None, c.value) and stable is not None else 0 for c in Color}
    total = sum(shares.values())
    if total == 0:
        return []
    out, given = [], 0
    for color in Color:
        if shares[color] > 0:
            weight = round(100 * shares[color] / total)
            out.append(TrafficTarget(color=color, revision=observation.color(color).revision, weight=weight))
            given += weight
    if out and given != 100:  # rounding: the largest share absorbs the difference
        largest = max(out, key=lambda t: t.weight)
        largest.weight += 100 - given
    return out


def traffic_summary(traffic: list[TrafficTarget]) -> str:
    return " ".join(f"{t.color.value}={t.weight}" for t in traffic) or "none"


def set_condition(conditions: list[Condition], new: Condition, now: datetime) -> list[Condition]:
    """Replace the condition of new.type; lastTransitionTime moves only when status flips."""
    previous = next((c for c in conditions if c.type == new.type), None)
    stamp = previous.last_transition_time if previous and previous.status == new.status else None
    new = new.model_copy(update={"last_transition_time": stamp or now})
    return [*(c for c in conditions if c.type != new.type), new]


def _shadow_held(state: RolloutState | None) -> bool:
    """The shadow phase was inconclusive after maxSeconds and waits for a person."""
    return bool(state and state.phase == RolloutPhase.Shadowing and state.shadow and state.shadow.held)


def overall_phase(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, active_ready: int, degraded: bool, serving: bool
) -> Phase:
    rollout = status.rollout.phase if status.rollout else RolloutPhase.Deploying
    if status.active_color is None:
        return Phase.Failed if degraded else Phase.Pending
    if not serving and degraded:
        return Phase.Failed
    if rollout == RolloutPhase.Paused or _shadow_held(status.rollout):
        return Phase.Paused
    if rollout in IN_FLIGHT or rollout == RolloutPhase.PostPromotion:
        return Phase.Progressing
    if degraded:
        return Phase.Degraded
    return Phase.Healthy if active_ready >= spec.replicas else Phase.Progressing


def status_from(
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    revision: str,
    rollout_status: ModelDeploymentStatus,
    observation: RolloutObservation,
    children: Children,
    pods: Iterable[Mapping[str, Any]],
    now: datetime,
) -> ModelDeploymentStatus:
    """The full status: the rollout's own fields (from plan_rollout_step) plus everything observed."""
    status = rollout_status.model_copy(deep=True)
    _observed_fields(status, body, spec, revision, observation, children)
    _set_conditions(status, body, spec, observation, list(pods), now)
    return status


def _serving_color(status: ModelDeploymentStatus) -> Color:
    return status.active_color or (status.rollout.color if status.rollout else None) or Color.blue


def _observed_fields(
    status: ModelDeploymentStatus,
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    revision: str,
    observation: RolloutObservation,
    children: Children,
) -> None:
    """Replicas, selector, URL and effective traffic of the serving colour, as they are."""
    meta = body["metadata"]
    name = meta["name"]
    serving_color = _serving_color(status)
    deployment = children.get(("Deployment", deployment_name(name, serving_color))) or {}
    status.observed_generation = meta.get("generation")
    status.replicas = int((deployment.get("status") or {}).get("replicas") or 0) if deployment else 0
    status.ready_replicas = observation.color(serving_color).ready_replicas
    status.selector = ",".join(f"{k}={v}" for k, v in selector(name, serving_color).items())
    status.url = f"http://{name}.{meta['namespace']}.svc"
    status.traffic = effective_traffic(spec, name, children, observation)
    status.traffic_summary = traffic_summary(status.traffic)
    if status.active_revision == revision:  # the version of an older active revision is kept from before
        status.model_version = spec.model.version


def _set_conditions(
    status: ModelDeploymentStatus,
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    observation: RolloutObservation,
    pods: list[Mapping[str, Any]],
    now: datetime,
) -> None:
    """The phase and the Ready, Progressing and Degraded conditions."""
    name, generation = body["metadata"]["name"], body["metadata"].get("generation")
    state = status.rollout
    serving_color = _serving_color(status)
    active_ready = observation.color(serving_color).ready_replicas
    failures = _failures(name, status, observation, pods)
    aborted = state is not None and state.phase == RolloutPhase.Aborted
    below_threshold = _evaluation_failure(status)
    degraded = bool(failures) or aborted or below_threshold is not None
    ready = status.active_color is not None and active_ready >= max(spec.replicas, 1 if spec.replicas else 0)
    status.phase = overall_phase(spec, status, active_ready, degraded, active_ready > 0)

    def condition(ctype: ConditionType, ok: bool, reason: str, message: str) -> Condition:
        return Condition(
            type=ctype.value, status="True" if ok else "False", reason=reason, message=message,
            observed_generation=generation,
        )  # fmt: skip

    where = f"{serving_color.value} ({status.active_revision or (state.revision if state else '?')})"
    ready_reason = "AllReplicasReady" if ready else _not_ready_reason(status, failures)
    ready_message = f"{active_ready}/{spec.replicas} replicas Ready on {where}"
    progressing, p_reason, p_message = _progressing(spec, status, active_ready, bool(failures))
    if failures:
        d_reason, d_message = failures[0]
    elif aborted and state is not None:
        d_reason, d_message = "RolloutAborted", state.abort_reason or state.message
    elif below_threshold is not None:
        d_reason, d_message = "EvaluationFailed", below_threshold
    else:
        d_reason, d_message = "AsExpected", "no failing pods"
    conditions = status.conditions
    for new in (
        condition(ConditionType.Ready, ready, ready_reason, ready_message),
        condition(ConditionType.Progressing, progressing, p_reason, p_message),
        condition(ConditionType.Degraded, degraded, d_reason, d_message),
    ):
        conditions = set_condition(conditions, new, now)
    live_pods = pods_of(pods, name, serving_color, status.active_revision)
    drift = drift_condition(spec, status, live_pods, generation)
    if drift is not None:
        conditions = set_condition(conditions, drift, now)
    else:
        conditions = [c for c in conditions if c.type != ConditionType.DriftMonitored.value]
    order = [t.value for t in ConditionType]
    status.conditions = sorted(
        conditions, key=lambda c: order.index(c.type) if c.type in order else len(order)
    )


def _failures(
    name: str, status: ModelDeploymentStatus, observation: RolloutObservation, pods: list[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """(reason, message) for colours that should run pods and have failing ones; active colour first."""
    out = []
    state = status.rollout
    roles = []
    if status.active_color:
        roles.append((status.active_color, "active"))
    if (
        state
        and state.color
        and state.color != status.active_color
        and state.phase in IN_FLIGHT | {RolloutPhase.Deploying}
    ):
        roles.append((state.color, "candidate"))
    elif state and state.phase == RolloutPhase.Deploying and state.color:
        roles.append((state.color, "new"))
    for color, role in roles:
        found = first_failure(pods_of(pods, name, color))
        if found:
            out.append((found.reason, f"{role} {color.value}: {found.message}"))
    return out


def _evaluation_failure(status: ModelDeploymentStatus) -> str | None:
    """Why the live model is below its evaluation threshold (its latest verdict failed), else None."""
    evaluation = status.evaluation
    if evaluation is None or evaluation.result is None or evaluation.result.passed is not False:
        return None
    if not status.active_revision or evaluation.revision != status.active_revision:
        return None  # a verdict on a revision that no longer serves (rolled back) says nothing now
    return f"live model {evaluation.revision} below its evaluation threshold: {evaluation.result.message}"


def _not_ready_reason(status: ModelDeploymentStatus, failures: list[tuple[str, str]]) -> str:
    if status.active_color is None:
        return failures[0][0] if failures else "NoRevisionServing"
    return failures[0][0] if failures else "ReplicasNotReady"


def _progressing(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, active_ready: int, failing: bool
) -> tuple[bool, str, str]:
    state = status.rollout
    phase = state.phase if state else RolloutPhase.Deploying
    message = state.message if state and state.message else phase.value
    if phase == RolloutPhase.Paused or _shadow_held(state):
        return False, "RolloutPaused", message
    if phase == RolloutPhase.Aborted:
        return False, "RolloutAborted", message
    if phase in IN_FLIGHT or phase in (RolloutPhase.Deploying, RolloutPhase.PostPromotion):
        return True, phase.value, message
    if active_ready < spec.replicas and failing:  # a crash is not progress: Degraded says why
        return False, "Stalled", f"{active_ready}/{spec.replicas} replicas Ready; pods are failing"
    if active_ready < spec.replicas:
        return True, "ScalingUp", f"{active_ready}/{spec.replicas} replicas Ready"
    return False, "RolloutComplete", f"revision {status.active_revision} is serving"
