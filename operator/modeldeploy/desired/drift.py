"""Drift of the live revision (pure): when the pods' figures are due, what they make of status and Events,
and the DriftMonitored condition.

Public: ``drift_due(spec, status, now) -> float | None`` (seconds until due; 0 = now; None = not watched),
``judge_drift(spec, previous, figures) -> (DriftStatus, [KubeEvent])``,
``reference_problem(pods) -> str | None``, ``drift_condition(spec, status, pods, generation)``.

The figures come from the active colour's Ready pods (``modeldeploy.probes.drift``). A verdict waits for a
full window (``windowRows`` rows over the pods): fewer rows give noisy indexes. ``DriftDetected`` (Warning)
is emitted when the worst feature goes above the threshold and ``DriftCleared`` when it comes back, once
per crossing: the previous verdict lives in status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from modeldeploy.api import Condition, ConditionType, DriftStatus, ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.desired.deployment import DRIFT_FETCH_CONTAINER_NAME
from modeldeploy.desired.rollout import KubeEvent

MAX_QUOTE = 300


def drift_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> float | None:
    drift = spec.monitoring.drift if spec.monitoring else None
    if drift is None or status.active_color is None:
        return None
    last = status.drift.checked_at if status.drift else None
    if last is None:
        return 0.0
    return max(0.0, drift.interval_seconds - (now - last).total_seconds())


def judge_drift(
    spec: ModelDeploymentSpec, previous: DriftStatus | None, figures: DriftStatus
) -> tuple[DriftStatus, list[KubeEvent]]:
    """The figures with their verdict and message, and the Event of a crossing (if this is one)."""
    drift = spec.monitoring.drift if spec.monitoring else None
    if drift is None:
        return figures, []
    where = f"{figures.rows} rows on {figures.pods} pod(s) of revision {figures.revision}"
    worst = figures.features[0] if figures.features else None
    if figures.pods == 0:
        drifting, message = bool(previous and previous.drifting), "inconclusive: no Ready pod answered"
    elif worst is None:
        drifting, message = (
            False,
            (
                f"no drift figures on {figures.pods} pod(s): modelserve tracks no drift there (see the pods' "
                "fetch-drift-reference termination message and drift_disabled log event)"
            ),
        )
    elif figures.rows < drift.window_rows:
        drifting = bool(previous and previous.drifting)
        message = (
            f"inconclusive: {figures.rows} of {drift.window_rows} rows (windowRows); worst so far "
            f"{worst.feature} {worst.psi:g}"
        )
    else:
        drifting = worst.psi > drift.threshold
        relation = ">" if drifting else "<="
        message = f"worst feature {worst.feature}: PSI {worst.psi:g} {relation} threshold {drift.threshold:g}"
        message += f" over {where}"
    judged = figures.model_copy(update={"drifting": drifting, "message": message})
    was = bool(previous and previous.drifting)
    if drifting and not was and worst is not None:
        return judged, [KubeEvent("Warning", "DriftDetected", message)]
    if was and not drifting and worst is not None and figures.rows >= drift.window_rows:
        return judged, [KubeEvent("Normal", "DriftCleared", message)]
    return judged, []


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


def reference_problem(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The failure line of the first pod whose drift reference fetch failed (it exits 0 and says why)."""
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
            if cs.get("name") != DRIFT_FETCH_CONTAINER_NAME:
                continue
            said = ((cs.get("state") or {}).get("terminated") or {}).get("message") or ""
            if said.strip():
                name = (pod.get("metadata") or {}).get("name", "?")
                return f"pod {name}: {_quote(said)}"
    return None


def drift_condition(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    pods: Iterable[Mapping[str, Any]],
    generation: int | None,
) -> Condition | None:
    """DriftMonitored: True while the pods report figures; False, with the cause, when the reference could
    not be fetched or the pods track nothing; None without spec.monitoring.drift."""
    if spec.monitoring is None or spec.monitoring.drift is None:
        return None

    def condition(state: str, reason: str, message: str) -> Condition:
        return Condition(
            type=ConditionType.DriftMonitored.value, status=state, reason=reason, message=message,
            observed_generation=generation,
        )  # fmt: skip

    problem = reference_problem(pods)
    if problem is not None:
        return condition(
            "False",
            "DriftReferenceUnavailable",
            f"the drift reference could not be fetched ({problem}); serving is unaffected",
        )
    figures = status.drift
    if figures is None or figures.checked_at is None or figures.pods == 0:
        return condition("Unknown", "Waiting", "no drift figures read yet")
    if figures.revision != status.active_revision:  # read before a rollout finished: not the live pods
        return condition("Unknown", "Waiting", f"no drift figures of revision {status.active_revision} yet")
    if not figures.features:
        return condition("False", "DriftNotTracked", figures.message)
    return condition("True", "Drifting" if figures.drifting else "Tracking", figures.message)
