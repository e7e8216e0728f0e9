"""The ModelDeployment status, written only by the operator through the status subresource, and the one
place people write to it: ``status.rolloutControl``.

Public: ``ModelDeploymentStatus``, ``Condition``, ``TrafficTarget``, ``CheckResult``, ``ColorStats``,
``HistoryEntry``, ``ShadowFigures``, ``RolloutControl``, ``RolloutState``, ``EvaluationStatus``,
``DriftStatus``, ``DriftFeature``, ``MAX_DRIFT_SHOWN``; enums
``Color``, ``Phase``, ``RolloutPhase``, ``ConditionType``, ``ControlAction``, ``Outcome``;
``other_color(color)``.

Promote / abort / retry: a person (or ``kubectl modeldeploy``, or an Argo CD resource action) merge-patches
the status subresource::

    kubectl patch md iris --subresource=status --type=merge \
      -p '{"status":{"rolloutControl":{"action":"promote","requestId":"'$(date +%s)'"}}}'

The request is pending while ``status.rolloutControl.requestId != status.rollout.handledRequestId``; the
operator acts on it once and records the id (so a restart never applies it twice).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from annotated_types import MaxLen
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from modeldeploy.api.spec import ApiModel

# What a cut message ends with, so a reader knows there was more.
CUT_MARK = "…"


def cut(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters, marked when it was cut."""
    return text if len(text) <= limit else text[: max(limit - len(CUT_MARK), 0)] + CUT_MARK


class StatusModel(ApiModel):
    """Base of every status part: a text longer than its field's limit is cut to it, on construction and on
    assignment, so no message (a check's finding, an API server's answer) can make status fail validation."""

    model_config = ConfigDict(validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _cut_to_limit(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str) or info.field_name is None:
            return value
        limit = cls.text_limit(info.field_name)
        return value if limit is None else cut(value, limit)

    @classmethod
    def text_limit(cls, field_name: str) -> int | None:
        """The max_length of a text field, or None."""
        for meta in cls.model_fields[field_name].metadata:
            if isinstance(meta, MaxLen):
                return meta.max_length
        return None

    @classmethod
    def cut_field(cls, field_name: str, text: str) -> str:
        """`text` cut to the limit of `field_name` (for status written as plain dicts)."""
        limit = cls.text_limit(field_name)
        return text if limit is None else cut(text, limit)


class Color(StrEnum):
    blue = "blue"
    green = "green"


def other_color(color: Color | str) -> Color:
    return Color.green if Color(color) == Color.blue else Color.blue


class Phase(StrEnum):
    """Overall phase (printer column)."""

    Pending = "Pending"  # nothing serving yet
    Progressing = "Progressing"  # a rollout is moving
    Paused = "Paused"  # a rollout waits for `promote`
    Healthy = "Healthy"  # serving, nothing to do
    Degraded = "Degraded"  # serving, but something is wrong (aborted candidate, crashing pods)
    Failed = "Failed"  # nothing can serve (invalid spec, every pod failing)


class RolloutPhase(StrEnum):
    Deploying = "Deploying"  # first revision: no active colour yet
    WaitingForCandidate = "WaitingForCandidate"  # candidate scaling up on the idle colour
    SmokeTesting = "SmokeTesting"
    QualityGate = "QualityGate"
    Shadowing = "Shadowing"  # the active colour copies requests to the candidate; no user sees its answers
    Stepping = "Stepping"  # candidate gets steps[stepIndex].weight
    Paused = "Paused"  # waiting for `promote`
    Promoting = "Promoting"  # candidate scaled to full size, then 100% traffic
    PostPromotion = "PostPromotion"  # previous colour warm until scaleDownAt; rollback possible
    Completed = "Completed"
    Aborted = "Aborted"  # traffic on the active colour; candidate scaled down after the delay


class ConditionType(StrEnum):
    Ready = "Ready"
    Progressing = "Progressing"
    Degraded = "Degraded"
    DriftMonitored = "DriftMonitored"  # only with spec.monitoring.drift


class ControlAction(StrEnum):
    promote = "promote"  # end the current pause / step and go on
    promote_full = "promoteFull"  # skip the remaining checks and steps
    abort = "abort"  # traffic back to the active colour (or to the previous one right after promotion)
    retry = "retry"  # start an aborted rollout again


class Outcome(StrEnum):
    Promoted = "Promoted"
    Aborted = "Aborted"
    RolledBack = "RolledBack"
    Superseded = "Superseded"


class Condition(StatusModel):
    type: str = Field(
        description="Ready, Progressing, Degraded, or DriftMonitored (with spec.monitoring.drift).",
        max_length=316,
    )
    status: str = Field(
        description="True, False or Unknown.", json_schema_extra={"enum": ["True", "False", "Unknown"]}
    )
    reason: str = Field(default="", description="CamelCase reason.", max_length=1024)
    message: str = Field(default="", description="Human explanation.", max_length=32768)
    observed_generation: int | None = Field(
        default=None, description="Generation the condition was computed for."
    )
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")


class TrafficTarget(StatusModel):
    color: Color = Field(description="blue or green.")
    revision: str | None = Field(default=None, description="Revision on that colour.", max_length=64)
    weight: int = Field(
        ge=0, le=100, description="Effective percent of traffic (ready endpoints / route weights)."
    )


class CheckResult(StatusModel):
    """Outcome of a smoke test, quality gate, analysis or evaluation; passed null = inconclusive."""

    passed: bool | None = Field(default=None, description="true/false; null = inconclusive.")
    message: str = Field(default="", description="What was found.", max_length=4096)
    score: float | None = Field(
        default=None, description="Metric value of the candidate (quality gate, evaluation)."
    )
    active_score: float | None = Field(
        default=None, description="Metric value of the active model on the same rows."
    )
    requests: int | None = Field(default=None, description="Requests observed (analysis).")
    error_rate: float | None = Field(default=None, description="5xx/all over the window (analysis).")
    latency_p99_ms: float | None = Field(default=None, description="p99 latency over the window (analysis).")
    at: datetime | None = Field(default=None, description="When the check ran.")


class ShadowFigures(StatusModel):
    """What the active colour's pods counted for the current shadow phase (summed over its Ready pods)."""

    id: str = Field(default="", description="The shadow phase these figures belong to.", max_length=128)
    compared: int = Field(default=0, ge=0, description="Rows compared with the candidate's answer.")
    agreed: int = Field(default=0, ge=0, description="Rows on which the candidate agreed.")
    agreement: float | None = Field(default=None, description="agreed / compared.")
    sent: int = Field(default=0, ge=0, description="Copies the candidate answered.")
    dropped: int = Field(default=0, ge=0, description="Copies dropped because the queue was full.")
    errors: int = Field(default=0, ge=0, description="Copies without a usable answer.")
    pods: int = Field(default=0, ge=0, description="Active pods whose counts were read.")
    held: bool = Field(
        default=False, description="Inconclusive after maxSeconds: waiting for promote or abort."
    )
    at: datetime | None = Field(default=None, description="When the counts were read.")


class ColorStats(StatusModel):
    color: Color = Field(description="blue or green.")
    revision: str | None = Field(default=None, description="Revision on that colour.", max_length=64)
    requests: int = Field(default=0, description="Requests since the current step began.")
    error_rate: float | None = Field(default=None, description="5xx/all since the current step began.")
    latency_p99_ms: float | None = Field(
        default=None, description="p99 latency since the current step began."
    )


class HistoryEntry(StatusModel):
    revision: str = Field(description="Revision rolled out.", max_length=64)
    version: str | None = Field(default=None, description="spec.model.version at the time.", max_length=63)
    outcome: Outcome = Field(description="Promoted, Aborted, RolledBack or Superseded.")
    reason: str = Field(default="", description="Why.", max_length=4096)
    started_at: datetime | None = Field(default=None, description="When the rollout began.")
    finished_at: datetime | None = Field(default=None, description="When it ended.")


class RolloutControl(StatusModel):
    action: ControlAction = Field(description="promote, promoteFull, abort or retry.")
    request_id: str = Field(
        description="Unique per request (e.g. a timestamp); the operator acts once per id.",
        min_length=1,
        max_length=64,
    )


class RolloutState(StatusModel):
    """Everything the rollout step function needs to continue after an operator restart."""

    phase: RolloutPhase = Field(default=RolloutPhase.Deploying, description="Where the rollout is.")
    revision: str | None = Field(
        default=None, description="Revision being rolled out (the candidate).", max_length=64
    )
    color: Color | None = Field(default=None, description="Colour slot of the candidate.")
    step_index: int = Field(default=0, ge=0, description="Current index into spec.rollout.steps.")
    started_at: datetime | None = Field(default=None, description="When this rollout began.")
    phase_started_at: datetime | None = Field(default=None, description="When the current phase began.")
    step_started_at: datetime | None = Field(
        default=None, description="When the current step began (analysis window)."
    )
    previous_color: Color | None = Field(
        default=None, description="Colour kept warm after promotion or abort."
    )
    previous_revision: str | None = Field(
        default=None, description="Revision on previousColor.", max_length=64
    )
    scale_down_at: datetime | None = Field(default=None, description="When previousColor is scaled to zero.")
    message: str = Field(default="", description="Human summary of the current phase.", max_length=4096)
    abort_reason: str | None = Field(
        default=None, description="Why the rollout was aborted.", max_length=4096
    )
    handled_request_id: str | None = Field(
        default=None, description="Last rolloutControl.requestId acted on.", max_length=64
    )
    smoke: CheckResult | None = Field(default=None, description="Smoke test result for this rollout.")
    quality_gate: CheckResult | None = Field(
        default=None, description="Quality gate result for this rollout."
    )
    analysis: CheckResult | None = Field(default=None, description="Latest analysis result.")
    shadow: ShadowFigures | None = Field(default=None, description="Shadow phase figures for this rollout.")
    analysis_baselines: dict[str, Any] | None = Field(
        default=None,
        description="Metrics snapshot per colour at the start of the analysis window (direct mode).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class EvaluationStatus(StatusModel):
    revision: str | None = Field(default=None, description="Revision evaluated.", max_length=64)
    result: CheckResult | None = Field(default=None, description="Latest result.")


MAX_DRIFT_SHOWN = 5  # features listed in status.drift: the worst ones; every one is in the pods' metrics


class DriftFeature(StatusModel):
    feature: str = Field(description="Feature name (predicted_class: the predictions).", max_length=256)
    psi: float = Field(description="Population stability index, rounded to 4 decimals.")


class DriftStatus(StatusModel):
    """The live revision's drift, read from its Ready pods' /metrics (their indexes, weighted by rows)."""

    revision: str | None = Field(default=None, description="Revision whose pods were read.", max_length=64)
    features: list[DriftFeature] = Field(
        default_factory=list,
        description=f"The {MAX_DRIFT_SHOWN} most drifting features, worst first.",
        max_length=MAX_DRIFT_SHOWN,
    )
    rows: int = Field(default=0, ge=0, description="Rows in the pods' windows together.")
    pods: int = Field(default=0, ge=0, description="Pods whose figures were read.")
    drifting: bool = Field(
        default=False, description="The worst feature is above monitoring.drift.threshold (full window)."
    )
    message: str = Field(default="", description="What was found.", max_length=1024)
    checked_at: datetime | None = Field(default=None, description="When the figures were read.")


class ModelDeploymentStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status is for."
    )
    phase: Phase = Field(
        default=Phase.Pending, description="Pending, Progressing, Paused, Healthy, Degraded or Failed."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded; DriftMonitored with spec.monitoring.drift.",
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = Field(
        default=None, description="Serving pods of the active colour (scale subresource)."
    )
    ready_replicas: int | None = Field(default=None, description="Ready pods of the active colour.")
    selector: str | None = Field(
        default=None, description="Label selector of the serving pods (for the HPA)."
    )
    url: str | None = Field(default=None, description="In-cluster URL of the stable Service.")
    model_version: str | None = Field(default=None, description="spec.model.version of the active revision.")
    active_color: Color | None = Field(default=None, description="Colour serving production traffic.")
    active_revision: str | None = Field(
        default=None, description="Revision on the active colour.", max_length=64
    )
    candidate_revision: str | None = Field(
        default=None, description="Revision being rolled out.", max_length=64
    )
    traffic: list[TrafficTarget] = Field(
        default_factory=list, description="Effective split per colour.", max_length=2
    )
    traffic_summary: str | None = Field(default=None, description="Traffic as text, e.g. blue=90 green=10.")
    colors: list[ColorStats] = Field(
        default_factory=list, description="Per-colour request stats (A/B view).", max_length=2
    )
    rollout: RolloutState | None = Field(default=None, description="Rollout state machine.")
    rollout_control: RolloutControl | None = Field(
        default=None,
        description="Write here to promote, abort or retry (see docs); the operator never clears it.",
    )
    history: list[HistoryEntry] = Field(
        default_factory=list, description="Recent rollouts, newest first.", max_length=50
    )
    evaluation: EvaluationStatus | None = Field(
        default=None, description="Regular evaluation of the live model."
    )
    drift: DriftStatus | None = Field(default=None, description="Drift of the live model's inputs.")
    kopf: dict[str, Any] | None = Field(
        default=None,
        description="The operator framework's own bookkeeping (the retry state of a pass that must wait), "
        "kept in status so metadata stays free of it and GitOps diffs never see it.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
