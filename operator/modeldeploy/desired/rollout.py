"""Blue/green rollout as a pure step function: (spec, status, observation, now) -> next status.

Public: ``plan_rollout_step(spec, revision, status, observed, now) -> RolloutPlan``,
``plan_world(spec, revision, status, observed, now) -> World``, ``replica_split(replicas, weight)``,
``current_weight(spec, state)``, ``RolloutObservation``, ``ColorObservation``, ``RolloutPlan``, ``World``,
``ColorPlan``, ``Event``, ``Check`` (``smoke``, ``quality_gate``, ``analysis``, ``evaluation``).

How the reconciler drives it (after Argo Rollouts' rollout/bluegreen.go: each pass does at most one
transition, persists status, and the next event continues):
1. observe the colour Deployments (``ColorObservation``) and build a ``RolloutObservation``;
2. ``plan = plan_rollout_step(...)``; if ``plan.check`` is set, run that check (probes component) and call
   ``plan_rollout_step`` again with the result in the observation (``smoke=`` / ``quality_gate=`` /
   ``analysis=`` / ``evaluation=``) -- the result lands in status together with its transition;
3. apply ``plan_world(spec, revision, plan.status, observed, now)``: replicas per colour, stable Service
   colours, preview colour, route weights (it never routes to a colour without Ready pods and never lowers
   the active colour below spec.replicas before the candidate's pods are Ready);
4. patch ``plan.status`` if it changed, emit ``plan.events``, requeue after ``plan.requeue_after`` seconds.

Everything needed to continue lives in status (``activeColor``, ``activeRevision``, ``rollout``), so an
operator killed at any moment resumes where it was. With no ``status.rollout`` but existing Deployments,
the colour the stable Service selects is adopted as active.

Promote / abort / retry: ``status.rolloutControl = {action, requestId}`` (status subresource, see
``modeldeploy.api.status``); pending while ``requestId != status.rollout.handledRequestId``. ``promote``
ends the current pause or step, ``promoteFull`` skips the remaining checks and steps, ``abort`` sends all
traffic to the active colour (right after promotion, while the previous colour is warm, it rolls back),
``retry`` restarts an aborted rollout of the same revision. A request that does not apply to the current
phase is acknowledged with a Warning event and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from modeldeploy.api import (
    CheckResult,
    Color,
    ControlAction,
    EvaluationStatus,
    HistoryEntry,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Outcome,
    RolloutPhase,
    RolloutState,
    other_color,
)

WAIT_FOR_PODS_SECONDS = 5.0
# Phases in which a candidate exists and the active colour still serves.
IN_FLIGHT = frozenset(
    {
        RolloutPhase.WaitingForCandidate,
        RolloutPhase.SmokeTesting,
        RolloutPhase.QualityGate,
        RolloutPhase.Stepping,
        RolloutPhase.Paused,
        RolloutPhase.Promoting,
    }
)
TRAFFIC_PHASES = frozenset({RolloutPhase.Stepping, RolloutPhase.Paused, RolloutPhase.Promoting})


class Check(StrEnum):
    smoke = "smoke"
    quality_gate = "quality_gate"
    analysis = "analysis"
    evaluation = "evaluation"


@dataclass(frozen=True)
class ColorObservation:
    exists: bool = False
    revision: str | None = None  # modeldeploy.io/revision of the Deployment's pod template
    replicas: int = 0
    ready_replicas: int = 0  # Ready pods of that revision
    failure: str | None = None  # why pods fail (CrashLoopBackOff..., from pods.pod_failure)


@dataclass(frozen=True)
class RolloutObservation:
    colors: Mapping[Color, ColorObservation] = field(default_factory=dict)
    stable_color: Color | None = None  # colour the stable Service selects (restart without status)
    smoke: CheckResult | None = None
    quality_gate: CheckResult | None = None
    analysis: CheckResult | None = None
    evaluation: CheckResult | None = None

    def color(self, color: Color | None) -> ColorObservation:
        return self.colors.get(Color(color), ColorObservation()) if color else ColorObservation()

    def with_results(self, results: Mapping[Check, CheckResult]) -> RolloutObservation:
        """This observation plus the outcomes of checks the reconciler just ran."""
        return replace(
            self,
            smoke=results.get(Check.smoke, self.smoke),
            quality_gate=results.get(Check.quality_gate, self.quality_gate),
            analysis=results.get(Check.analysis, self.analysis),
            evaluation=results.get(Check.evaluation, self.evaluation),
        )


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class RolloutPlan:
    status: ModelDeploymentStatus
    check: Check | None = None
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    transition: str = ""  # "A -> B" when the phase changed


@dataclass(frozen=True)
class ColorPlan:
    revision: str | None
    replicas: int
    apply_template: bool  # True: apply build_deployment(revision); False: only scale the existing Deployment


@dataclass(frozen=True)
class World:
    colors: dict[Color, ColorPlan]
    stable_colors: tuple[Color, ...]
    preview_color: Color
    route_weights: dict[str, int]
    header_color: Color | None  # Gateway API header match target during traffic steps


def _ready(obs: ColorObservation, revision: str | None, replicas: int) -> bool:
    return obs.exists and obs.revision == revision and obs.ready_replicas >= max(replicas, 1)


def _elapsed(since: datetime | None, now: datetime) -> float:
    return (now - since).total_seconds() if since else 0.0


class _Pass:
    """Mutable scratch for one call of plan_rollout_step."""

    def __init__(
        self, spec: ModelDeploymentSpec, revision: str, status: ModelDeploymentStatus, now: datetime
    ):
        self.spec, self.revision, self.now = spec, revision, now
        self.status = status.model_copy(deep=True)
        self.state = self.status.rollout or RolloutState()
        self.status.rollout = self.state
        self.plan = RolloutPlan(status=self.status)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.plan.events.append(Event(type_, reason, message))

    def go(self, phase: RolloutPhase, message: str) -> None:
        old = self.state.phase
        self.state.phase = phase
        self.state.phase_started_at = self.now
        self.state.message = message
        self.plan.transition = f"{old.value} -> {phase.value}"

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.5)
        current = self.plan.requeue_after
        self.plan.requeue_after = seconds if current is None else min(current, seconds)

    def history(self, revision: str | None, outcome: Outcome, reason: str) -> None:
        if not revision:
            return
        entry = HistoryEntry(
            revision=revision,
            version=self.spec.model.version,
            outcome=outcome,
            reason=reason,
            started_at=self.state.started_at,
            finished_at=self.now,
        )
        self.status.history = [entry, *self.status.history][: self.spec.rollout.history_limit]


# ---------------------------------------------------------------------------------------------------------
# transitions


def _start_candidate(p: _Pass, message: str) -> None:
    s = p.state
    s.revision, s.color = p.revision, other_color(p.status.active_color or Color.blue)
    s.step_index, s.started_at, s.step_started_at = 0, p.now, None
    s.smoke = s.quality_gate = s.analysis = None
    s.abort_reason = None
    p.status.candidate_revision = p.revision
    p.go(RolloutPhase.WaitingForCandidate, message)
    p.event("Normal", "RolloutStarted", f"revision {p.revision} is starting on the {s.color.value} slot")
    p.requeue(WAIT_FOR_PODS_SECONDS)


def _enter_step(p: _Pass, index: int, promote: bool = False) -> None:
    """Step `index`; past the last step: Promoting (autoPromote or a promote request) or Paused."""
    steps = p.spec.rollout.steps
    s = p.state
    s.step_index, s.step_started_at, s.analysis = min(index, len(steps)), p.now, None
    if index >= len(steps):
        if p.spec.rollout.auto_promote or promote:
            p.go(RolloutPhase.Promoting, "scaling the candidate to full size before switching all traffic")
            p.requeue(WAIT_FOR_PODS_SECONDS)
        else:
            p.go(RolloutPhase.Paused, "waiting for promote (autoPromote is false)")
            p.event("Normal", "RolloutPaused", "all steps passed; waiting for promote")
        return
    step = steps[index]
    where = f"step {index + 1}/{len(steps)}: {step.weight}% to the candidate"
    if step.pause_seconds is None:
        p.go(RolloutPhase.Paused, f"{where}; held until promote")
        p.event("Normal", "RolloutPaused", f"{where}, held until promote")
    else:
        p.go(RolloutPhase.Stepping, f"{where} for {step.pause_seconds}s")
        p.event("Normal", "RolloutStep", where)
        p.requeue(step.pause_seconds)


def _after_checks(p: _Pass, done: RolloutPhase) -> None:
    """The next pre-promotion check after `done`, or the first traffic step."""
    order = [
        (RolloutPhase.SmokeTesting, p.spec.rollout.smoke is not None),
        (RolloutPhase.QualityGate, p.spec.rollout.quality_gate is not None),
    ]
    phases = [phase for phase, _ in order]
    start = phases.index(done) + 1 if done in phases else 0
    for phase, wanted in order[start:]:
        if wanted:
            p.go(
                phase, f"running the {'smoke test' if phase == RolloutPhase.SmokeTesting else 'quality gate'}"
            )
            p.requeue(0)
            return
    _enter_step(p, 0)


def _abort(p: _Pass, reason: str, message: str) -> None:
    s = p.state
    s.abort_reason = message
    s.previous_color, s.previous_revision = s.color, s.revision
    s.scale_down_at = p.now + timedelta(seconds=p.spec.rollout.scale_down_delay_seconds)
    p.go(RolloutPhase.Aborted, f"aborted: {message}")
    p.history(s.revision, Outcome.Aborted, message)
    p.event(
        "Warning",
        reason,
        f"rollout of {s.revision} aborted, traffic back on {p.status.active_color}: {message}",
    )


def _rollback(p: _Pass, reason: str, message: str) -> None:
    """Right after promotion: the previous colour is still warm, switch straight back to it."""
    s, st = p.state, p.status
    failed_color, failed_revision = st.active_color, st.active_revision
    st.active_color, st.active_revision = s.previous_color, s.previous_revision
    s.color, s.revision = failed_color, failed_revision
    s.previous_color, s.previous_revision = failed_color, failed_revision
    s.abort_reason = message
    s.scale_down_at = p.now + timedelta(seconds=p.spec.rollout.scale_down_delay_seconds)
    st.candidate_revision = failed_revision
    p.go(RolloutPhase.Aborted, f"rolled back: {message}")
    p.history(failed_revision, Outcome.RolledBack, message)
    p.event("Warning", reason, f"rolled back from {failed_revision} to {st.active_revision}: {message}")


def _promote(p: _Pass) -> None:
    s, st = p.state, p.status
    old_color, old_revision = st.active_color, st.active_revision
    st.active_color, st.active_revision, st.candidate_revision = s.color, s.revision, None
    s.previous_color, s.previous_revision = old_color, old_revision
    delay = p.spec.rollout.scale_down_delay_seconds
    s.scale_down_at = p.now + timedelta(seconds=delay)
    s.step_started_at, s.analysis = p.now, None
    p.history(s.revision, Outcome.Promoted, "promoted")
    p.event("Normal", "RolloutPromoted", f"revision {s.revision} on {s.color} now gets all traffic")
    analysis = p.spec.rollout.analysis
    if delay > 0 and old_color is not None:
        watching = "analysing" if analysis and analysis.post_promotion else "keeping"
        p.go(RolloutPhase.PostPromotion, f"promoted; {watching} the previous colour warm for {delay}s")
        p.requeue(delay)
    else:
        p.go(RolloutPhase.Completed, "promoted")


def _warm_previous(p: _Pass) -> bool:
    s = p.state
    return bool(s.previous_color and s.previous_revision and s.scale_down_at and p.now < s.scale_down_at)


# ---------------------------------------------------------------------------------------------------------
# checks


def _analysis(p: _Pass, observed: RolloutObservation) -> bool:
    """Runs/records analysis while traffic flows; True when it failed and the caller must stop."""
    analysis = p.spec.rollout.analysis
    if analysis is None:
        return False
    last = p.state.analysis
    # The first judgement waits one interval after the step began: an empty window says nothing.
    since = last.at if last and last.at else p.state.step_started_at
    waited = _elapsed(since, p.now) if since else analysis.interval_seconds
    if observed.analysis is None:
        if waited >= analysis.interval_seconds:
            p.plan.check = Check.analysis
        else:
            p.requeue(analysis.interval_seconds - waited)
        return False
    result = observed.analysis.model_copy(update={"at": observed.analysis.at or p.now})
    p.state.analysis = result
    p.requeue(analysis.interval_seconds)
    return result.passed is False


def _evaluation(p: _Pass, observed: RolloutObservation) -> bool:
    """Regular live-model evaluation; True when it failed and a rollback is wanted and possible."""
    wanted = p.spec.monitoring.evaluation if p.spec.monitoring else None
    if wanted is None or not p.status.active_revision:
        return False
    current = p.status.evaluation
    last = current.result if current and current.revision == p.status.active_revision else None
    if observed.evaluation is None:
        if p.plan.check is not None:  # one check per call; this one stays due
            return False
        if last is None or last.at is None or _elapsed(last.at, p.now) >= wanted.interval_seconds:
            p.plan.check = Check.evaluation
        else:
            p.requeue(wanted.interval_seconds - _elapsed(last.at, p.now))
        return False
    result = observed.evaluation.model_copy(update={"at": observed.evaluation.at or p.now})
    p.status.evaluation = EvaluationStatus(revision=p.status.active_revision, result=result)
    p.requeue(wanted.interval_seconds)
    if result.passed is False:
        p.event("Warning", "EvaluationFailed", f"live model {p.status.active_revision}: {result.message}")
        return wanted.rollback_on_failure and _warm_previous(p)
    if last is None or last.passed is not True:
        p.event("Normal", "EvaluationPassed", f"live model {p.status.active_revision}: {result.message}")
    return False


def _check_phase(p: _Pass, phase: RolloutPhase, check: Check, result: CheckResult | None) -> None:
    if result is None:
        p.plan.check = check
        return
    result = result.model_copy(update={"at": result.at or p.now})
    name = "smoke test" if check == Check.smoke else "quality gate"
    if check == Check.smoke:
        p.state.smoke = result
    else:
        p.state.quality_gate = result
    if result.passed:
        p.event("Normal", "CheckPassed", f"{name} passed: {result.message}")
        _after_checks(p, phase)
    else:
        reason = "SmokeTestFailed" if check == Check.smoke else "QualityGateFailed"
        _abort(p, reason, f"{name} failed: {result.message or 'inconclusive'}")


# ---------------------------------------------------------------------------------------------------------
# control requests


def _handle_control(p: _Pass) -> bool:
    control = p.status.rollout_control
    s = p.state
    if control is None or control.request_id == s.handled_request_id:
        return False
    s.handled_request_id = control.request_id
    action, phase = control.action, s.phase
    if action == ControlAction.abort and phase in IN_FLIGHT:
        _abort(p, "RolloutAborted", "aborted by request")
    elif action == ControlAction.abort and phase in (RolloutPhase.PostPromotion, RolloutPhase.Completed):
        if _warm_previous(p):
            _rollback(p, "RolledBack", "rollback requested")
        else:
            p.event("Warning", "RequestIgnored", "abort: the previous revision is no longer warm")
    elif (
        action == ControlAction.retry
        and phase == RolloutPhase.Aborted
        and p.revision != p.status.active_revision
    ):
        _start_candidate(p, "retrying")
    elif action == ControlAction.promote and phase in (RolloutPhase.Stepping, RolloutPhase.Paused):
        p.event("Normal", "PromoteRequested", "promote requested: going on")
        _enter_step(p, s.step_index + 1, promote=True)
    elif action == ControlAction.promote_full and phase in IN_FLIGHT - {RolloutPhase.Promoting}:
        p.event(
            "Normal", "PromoteRequested", "full promotion requested: skipping the remaining checks and steps"
        )
        s.step_index = len(p.spec.rollout.steps)
        p.go(RolloutPhase.Promoting, "full promotion requested")
        p.requeue(WAIT_FOR_PODS_SECONDS)
    else:
        p.event("Warning", "RequestIgnored", f"{action.value} does not apply in phase {phase.value}")
    return True


# ---------------------------------------------------------------------------------------------------------
# the step function


def _bootstrap(p: _Pass, observed: RolloutObservation) -> None:
    stable = observed.stable_color
    obs = observed.color(stable)
    if p.status.active_color is None and stable and obs.exists and obs.revision and obs.ready_replicas > 0:
        p.status.active_color, p.status.active_revision = stable, obs.revision
        p.event(
            "Normal", "Adopted", f"status was empty: {stable.value} ({obs.revision}) is serving, kept active"
        )
        p.state.revision, p.state.color = obs.revision, stable
        p.go(RolloutPhase.Completed, "adopted the serving colour")
        return
    if p.status.active_color is not None:
        p.state.revision, p.state.color = p.status.active_revision, p.status.active_color
        p.go(RolloutPhase.Completed, "resumed")
        return
    p.state.revision, p.state.color, p.state.started_at = p.revision, Color.blue, p.now
    p.status.candidate_revision = p.revision
    p.go(RolloutPhase.Deploying, f"deploying revision {p.revision}")
    p.requeue(WAIT_FOR_PODS_SECONDS)


def _on_new_revision(p: _Pass) -> bool:
    """Reacts to a spec whose revision differs from what the rollout is doing; True when it acted."""
    s, st = p.state, p.status
    if s.phase == RolloutPhase.Deploying:
        if s.revision == p.revision:
            return False
        s.revision, st.candidate_revision = p.revision, p.revision
        p.go(
            RolloutPhase.Deploying,
            f"deploying revision {p.revision} (spec changed before the first was Ready)",
        )
        return True
    if p.revision == st.active_revision:
        if s.phase in IN_FLIGHT:
            s.previous_color, s.previous_revision = s.color, s.revision
            s.scale_down_at = p.now + timedelta(seconds=p.spec.rollout.scale_down_delay_seconds)
            p.history(s.revision, Outcome.Superseded, "spec returned to the active revision")
            st.candidate_revision = None
            p.go(RolloutPhase.Completed, "spec returned to the active revision; candidate scaled down")
            p.event(
                "Normal", "RolloutSuperseded", f"spec is back at {p.revision}; candidate {s.revision} dropped"
            )
            return True
        if s.phase == RolloutPhase.Aborted:
            st.candidate_revision = None
            p.go(RolloutPhase.Completed, "spec returned to the active revision")
            return True
        return False
    if s.phase in IN_FLIGHT and s.revision != p.revision:
        p.history(s.revision, Outcome.Superseded, f"replaced by {p.revision}")
        _start_candidate(p, f"revision {p.revision} replaces {s.revision}")
        return True
    if s.phase in (RolloutPhase.Completed, RolloutPhase.PostPromotion) or (
        s.phase == RolloutPhase.Aborted and s.revision != p.revision
    ):
        _start_candidate(p, f"new revision {p.revision}")
        return True
    return False


def plan_rollout_step(
    spec: ModelDeploymentSpec,
    revision: str,
    status: ModelDeploymentStatus,
    observed: RolloutObservation,
    now: datetime,
) -> RolloutPlan:
    """One pass of the rollout state machine; `revision` is revision_of(spec)."""
    p = _Pass(spec, revision, status, now)
    if status.rollout is None:
        _bootstrap(p, observed)
        return p.plan
    if _handle_control(p) or _on_new_revision(p):
        return p.plan
    s, replicas = p.state, spec.replicas
    candidate = observed.color(s.color)
    deadline = spec.rollout.progress_deadline_seconds
    phase = s.phase
    if phase == RolloutPhase.Deploying:
        if _ready(candidate, s.revision, replicas):
            p.status.active_color, p.status.active_revision, p.status.candidate_revision = (
                s.color,
                s.revision,
                None,
            )
            p.history(s.revision, Outcome.Promoted, "first revision")
            p.go(RolloutPhase.Completed, f"revision {s.revision} is serving")
            p.event("Normal", "Deployed", f"revision {s.revision} is Ready on {s.color}")
        else:
            late = _elapsed(s.phase_started_at, now) > deadline
            s.message = _waiting_message(candidate, replicas, late, deadline)
            p.requeue(WAIT_FOR_PODS_SECONDS)
    elif phase in (RolloutPhase.WaitingForCandidate, RolloutPhase.Promoting):
        if _ready(candidate, s.revision, replicas):
            if phase == RolloutPhase.WaitingForCandidate:
                p.event("Normal", "CandidateReady", f"revision {s.revision} is Ready on the preview")
                _after_checks(p, phase)
            else:
                _promote(p)
        elif _elapsed(s.phase_started_at, now) > deadline:
            why = candidate.failure or f"{candidate.ready_replicas}/{replicas} pods Ready"
            _abort(p, "ProgressDeadlineExceeded", f"candidate not Ready within {deadline}s: {why}")
        else:
            s.message = _waiting_message(candidate, replicas, False, deadline)
            p.requeue(min(WAIT_FOR_PODS_SECONDS, deadline - _elapsed(s.phase_started_at, now) + 0.5))
    elif phase == RolloutPhase.SmokeTesting:
        _check_phase(p, phase, Check.smoke, observed.smoke)
    elif phase == RolloutPhase.QualityGate:
        _check_phase(p, phase, Check.quality_gate, observed.quality_gate)
    elif phase in (RolloutPhase.Stepping, RolloutPhase.Paused):
        _step(p, observed)
    elif phase == RolloutPhase.PostPromotion:
        if _post_promotion_failed(p, observed):
            return p.plan
        if not _warm_previous(p):
            p.go(RolloutPhase.Completed, f"revision {p.status.active_revision} is serving")
            p.plan.check = None
    elif phase == RolloutPhase.Completed:
        if _evaluation(p, observed):
            _rollback(p, "EvaluationRollback", "live evaluation failed")
        elif _warm_previous(p) and s.scale_down_at:
            p.requeue(_elapsed(now, s.scale_down_at))
    elif phase == RolloutPhase.Aborted:
        # The model serving after an abort or a rollback is still evaluated; an abort never rolls "back"
        # to the colour it just left.
        _evaluation(p, observed)
        if _warm_previous(p) and s.scale_down_at:
            p.requeue(_elapsed(now, s.scale_down_at))
    return p.plan


def _post_promotion_failed(p: _Pass, observed: RolloutObservation) -> bool:
    analysis = p.spec.rollout.analysis
    if analysis and analysis.post_promotion and _warm_previous(p) and _analysis(p, observed):
        _rollback(p, "AnalysisFailed", f"post-promotion analysis failed: {p.state.analysis.message}")  # type: ignore[union-attr]
        return True
    if _evaluation(p, observed):
        _rollback(p, "EvaluationRollback", "live evaluation failed")
        return True
    if p.state.scale_down_at:
        p.requeue(_elapsed(p.now, p.state.scale_down_at))
    return False


def _step(p: _Pass, observed: RolloutObservation) -> None:
    s, steps = p.state, p.spec.rollout.steps
    if _analysis(p, observed):
        _abort(p, "AnalysisFailed", f"analysis failed at step {s.step_index + 1}: {s.analysis.message}")  # type: ignore[union-attr]
        return
    if p.plan.check is not None or s.phase == RolloutPhase.Paused:
        return
    pause = steps[s.step_index].pause_seconds if s.step_index < len(steps) else 0
    left = (pause or 0) - _elapsed(s.step_started_at, p.now)
    if left > 0:
        p.requeue(left)
        return
    analysis = p.spec.rollout.analysis
    step_end = s.step_started_at + timedelta(seconds=pause or 0) if s.step_started_at else p.now
    if analysis and (s.analysis is None or s.analysis.at is None or s.analysis.at < step_end):
        p.plan.check = Check.analysis  # judge the whole step before leaving it
        return
    if analysis and analysis.min_requests > 0 and (s.analysis is None or s.analysis.passed is None):
        found = s.analysis.message if s.analysis else "no analysis result"
        p.go(RolloutPhase.Paused, f"analysis inconclusive ({found}); promote to go on or abort")
        p.event("Warning", "AnalysisInconclusive", s.message)
        return
    _enter_step(p, s.step_index + 1)


def _waiting_message(obs: ColorObservation, replicas: int, late: bool, deadline: int) -> str:
    msg = f"waiting for pods: {obs.ready_replicas}/{replicas} Ready"
    if obs.failure:
        msg += f"; {obs.failure}"
    if late:
        msg += f" (past the {deadline}s progress deadline)"
    return msg


# ---------------------------------------------------------------------------------------------------------
# the world a status asks for


def replica_split(replicas: int, weight: int) -> tuple[int, int]:
    """Service-based steps: (active, candidate) pod counts whose ratio approximates `weight` percent."""
    if weight <= 0:
        return replicas, 0
    if weight >= 100:
        return 0, replicas
    if weight <= 50:
        return replicas, max(1, -(-replicas * weight // (100 - weight)))
    return max(1, -(-replicas * (100 - weight) // weight)), replicas


def current_weight(spec: ModelDeploymentSpec, state: RolloutState) -> int:
    steps = spec.rollout.steps
    if state.phase not in TRAFFIC_PHASES or not steps:
        return 0
    return steps[min(state.step_index, len(steps) - 1)].weight


def plan_world(
    spec: ModelDeploymentSpec,
    revision: str,
    status: ModelDeploymentStatus,
    observed: RolloutObservation,
    now: datetime,
) -> World:
    """What to run where, for the status plan_rollout_step returned (pure; safe to apply every pass)."""
    state = status.rollout or RolloutState()
    r = spec.replicas
    active = status.active_color
    if active is None:  # first deployment: one colour, nothing else serves
        color = state.color or Color.blue
        other = other_color(color)
        return World(
            colors={color: ColorPlan(revision, r, True), other: ColorPlan(revision, 0, True)},
            stable_colors=(color,),
            preview_color=color,
            route_weights={color.value: 100, other.value: 0},
            header_color=None,
        )
    idle = other_color(active)
    plans = {active: ColorPlan(status.active_revision, r, status.active_revision == revision)}
    stable: tuple[Color, ...] = (active,)
    weights = {active.value: 100, idle.value: 0}
    header: Color | None = None
    if state.phase in IN_FLIGHT and state.color == idle:
        cand_obs = observed.color(idle)
        cand_ready = cand_obs.ready_replicas if cand_obs.revision == state.revision else 0
        w = current_weight(spec, state) if cand_ready > 0 else 0
        gateway = (
            spec.rollout.traffic_routing is not None and spec.rollout.traffic_routing.gateway_api is not None
        )
        cand_replicas = r
        if state.phase in TRAFFIC_PHASES:
            header = idle if cand_ready > 0 else None
            if gateway:
                weights = {active.value: 100 - w, idle.value: w}
            elif w > 0:
                keep, cand_replicas = replica_split(r, w)
                if state.phase == RolloutPhase.Promoting:
                    cand_replicas = r
                # Never shrink the active colour before the candidate's pods are Ready.
                plans[active] = ColorPlan(
                    status.active_revision,
                    keep if cand_ready >= cand_replicas else r,
                    plans[active].apply_template,
                )
                stable = (active, idle)
        plans[idle] = ColorPlan(state.revision, cand_replicas, state.revision == revision)
    elif _previous_warm(state, idle, now):
        plans[idle] = ColorPlan(state.previous_revision, r, state.previous_revision == revision)
    else:
        plans[idle] = ColorPlan(revision, 0, True)
    return World(
        colors=plans,
        stable_colors=stable,
        preview_color=idle if state.phase in IN_FLIGHT else active,
        route_weights=weights,
        header_color=header,
    )


def _previous_warm(state: RolloutState, idle: Color, now: datetime) -> bool:
    return bool(
        state.previous_color == idle
        and state.previous_revision
        and state.scale_down_at
        and now < state.scale_down_at
    )
