"""Blue/green rollout as a pure step function: (spec, status, observation, now) -> next status.

Public: ``plan_rollout_step(spec, revision, status, observed, now) -> RolloutPlan``,
``plan_placement(spec, revision, status, observed, now) -> Placement``, ``replica_split(replicas, weight)``,
``current_weight(spec, state)``, ``RolloutObservation``, ``ColorObservation``, ``RolloutPlan``, ``Placement``,
``ColorPlan``, ``KubeEvent``, ``Check`` (``smoke``, ``quality_gate``, ``analysis``, ``evaluation``,
``shadow``, ``drift``).

How the reconciler drives it (after Argo Rollouts' rollout/bluegreen.go: each pass does at most one
transition, persists status, and the next event continues):
1. observe the colour Deployments (``ColorObservation``) and build a ``RolloutObservation``;
2. ``plan = plan_rollout_step(...)``; if ``plan.check`` is set, run that check (probes component) and call
   ``plan_rollout_step`` again with the result in the observation (``smoke=`` / ``quality_gate=`` /
   ``analysis=`` / ``evaluation=``; ``shadow=`` the active pods' shadow counts) -- the result lands in
   status together with its transition;
3. apply ``plan_placement(spec, revision, plan.status, observed, now)``: replicas per colour, stable Service
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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

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
    ShadowFigures,
    other_color,
)
from modeldeploy.desired.pods import InitRunning
from modeldeploy.desired.shadow import (
    SHADOW_CHECK_INTERVAL_SECONDS,
    Verdict,
    judge_shadow,
    shadow_id,
    with_agreement,
)

WAIT_FOR_PODS_SECONDS = 5.0
# Phases in which a candidate exists and the active colour still serves.
IN_FLIGHT = frozenset(
    {
        RolloutPhase.WaitingForCandidate,
        RolloutPhase.SmokeTesting,
        RolloutPhase.QualityGate,
        RolloutPhase.Shadowing,
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
    shadow = "shadow"
    drift = "drift"  # the live pods' drift figures (desired.drift), asked for by the pass, not by a phase


@dataclass(frozen=True)
class ColorObservation:
    exists: bool = False
    revision: str | None = None  # modeldeploy.io/revision of the Deployment's pod template
    replicas: int = 0
    ready_replicas: int = 0  # Ready pods of that revision
    failure: str | None = None  # why pods fail (CrashLoopBackOff..., from pods.pod_failure)
    initializing: InitRunning | None = None  # the longest-running init container (pods.longest_init)
    earlier_ready: int = 0  # Ready pods of another revision (a rolling update not done): Services reach them


@dataclass(frozen=True)
class RolloutObservation:
    colors: Mapping[Color, ColorObservation] = field(default_factory=dict)
    stable_color: Color | None = None  # colour the stable Service selects (restart without status)
    smoke: CheckResult | None = None
    quality_gate: CheckResult | None = None
    analysis: CheckResult | None = None
    evaluation: CheckResult | None = None
    shadow: ShadowFigures | None = None  # what the active pods counted for the current shadow phase

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


class KubeEvent(NamedTuple):
    """A Kubernetes Event to emit about the ModelDeployment."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class RolloutPlan:
    status: ModelDeploymentStatus
    check: Check | None = None
    events: list[KubeEvent] = field(default_factory=list)
    requeue_after: float | None = None
    transition: str = ""  # "A -> B" when the phase changed


@dataclass(frozen=True)
class ColorPlan:
    revision: str | None
    replicas: int
    apply_template: bool  # True: apply build_deployment(revision); False: only scale the existing Deployment


@dataclass(frozen=True)
class Placement:
    colors: dict[Color, ColorPlan]
    stable_colors: tuple[Color, ...]
    preview_color: Color
    route_weights: dict[str, int]
    header_color: Color | None  # Gateway API header match target during traffic steps


def _ready(obs: ColorObservation, revision: str | None, replicas: int) -> bool:
    """Every pod the colour's Services reach runs `revision`: a check sent through them judges only it."""
    return (
        obs.exists
        and obs.revision == revision
        and obs.ready_replicas >= max(replicas, 1)
        and obs.earlier_ready == 0
    )


def _elapsed(since: datetime | None, now: datetime) -> float:
    return (now - since).total_seconds() if since else 0.0


class _Draft:
    """The next status, drafted by one call of plan_rollout_step (mutable; the plan it returns)."""

    def __init__(
        self, spec: ModelDeploymentSpec, revision: str, status: ModelDeploymentStatus, now: datetime
    ):
        self.spec, self.revision, self.now = spec, revision, now
        self.status = status.model_copy(deep=True)
        self.state = self.status.rollout or RolloutState()
        self.status.rollout = self.state
        self.plan = RolloutPlan(status=self.status)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.plan.events.append(KubeEvent(type_, reason, message))

    def go(self, phase: RolloutPhase, message: str) -> None:
        old = self.state.phase
        self.state.phase = phase
        self.state.phase_started_at = self.now
        self.state.message = message
        # Two phases in one pass (Promoting straight on): the transition names where the pass began.
        origin = self.plan.transition.split(" -> ")[0] if self.plan.transition else old.value
        self.plan.transition = f"{origin} -> {phase.value}"

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


def _start_candidate(draft: _Draft, message: str) -> None:
    state = draft.state
    state.revision, state.color = draft.revision, other_color(draft.status.active_color or Color.blue)
    state.step_index, state.started_at, state.step_started_at = 0, draft.now, None
    state.smoke = state.quality_gate = state.analysis = state.shadow = None
    state.abort_reason = None
    # The candidate takes the slot the last rollout kept warm: that colour is nobody's rollback target now.
    state.previous_color = state.previous_revision = state.scale_down_at = None
    draft.status.candidate_revision = draft.revision
    draft.go(RolloutPhase.WaitingForCandidate, message)
    draft.event(
        "Normal", "RolloutStarted", f"revision {draft.revision} is starting on the {state.color.value} slot"
    )
    draft.requeue(WAIT_FOR_PODS_SECONDS)


def _enter_step(draft: _Draft, index: int, promote: bool = False) -> None:
    """Step `index`; past the last step: Promoting (autoPromote or a promote request) or Paused."""
    steps = draft.spec.rollout.steps
    state = draft.state
    state.step_index, state.step_started_at, state.analysis = min(index, len(steps)), draft.now, None
    if index >= len(steps):
        if draft.spec.rollout.auto_promote or promote:
            draft.go(
                RolloutPhase.Promoting, "scaling the candidate to full size before switching all traffic"
            )
            draft.requeue(WAIT_FOR_PODS_SECONDS)
        else:
            draft.go(RolloutPhase.Paused, "waiting for promote (autoPromote is false)")
            draft.event("Normal", "RolloutPaused", "all steps passed; waiting for promote")
        return
    step = steps[index]
    where = f"step {index + 1}/{len(steps)}: {step.weight}% to the candidate"
    if step.pause_seconds is None:
        draft.go(RolloutPhase.Paused, f"{where}; held until promote")
        draft.event("Normal", "RolloutPaused", f"{where}, held until promote")
    else:
        draft.go(RolloutPhase.Stepping, f"{where} for {step.pause_seconds}s")
        draft.event("Normal", "RolloutStep", where)
        draft.requeue(step.pause_seconds)


def _after_checks(draft: _Draft, done: RolloutPhase) -> None:
    """The next pre-promotion check after `done`, or the first traffic step."""
    rollout = draft.spec.rollout
    order = [
        (RolloutPhase.SmokeTesting, rollout.smoke is not None, "running the smoke test"),
        (RolloutPhase.QualityGate, rollout.quality_gate is not None, "running the quality gate"),
        (
            RolloutPhase.Shadowing,
            rollout.shadow is not None,
            f"copying {rollout.shadow.percent if rollout.shadow else 0:g}% of answered requests to the "
            "candidate and comparing its answers",
        ),
    ]
    phases = [phase for phase, _, _ in order]
    start = phases.index(done) + 1 if done in phases else 0
    for phase, wanted, message in order[start:]:
        if wanted:
            draft.go(phase, message)
            if phase == RolloutPhase.Shadowing:
                draft.state.shadow = ShadowFigures(id=shadow_id(draft.state))
                draft.event("Normal", "ShadowStarted", message)
            draft.requeue(0 if phase != RolloutPhase.Shadowing else SHADOW_CHECK_INTERVAL_SECONDS)
            return
    _enter_step(draft, 0)


def _abort(draft: _Draft, reason: str, message: str) -> None:
    state = draft.state
    state.abort_reason = message
    state.previous_color, state.previous_revision = state.color, state.revision
    state.scale_down_at = draft.now + timedelta(seconds=draft.spec.rollout.scale_down_delay_seconds)
    draft.go(RolloutPhase.Aborted, f"aborted: {message}")
    draft.history(state.revision, Outcome.Aborted, message)
    draft.event(
        "Warning",
        reason,
        f"rollout of {state.revision} aborted, traffic back on {draft.status.active_color}: {message}",
    )


def _rollback(draft: _Draft, reason: str, message: str) -> None:
    """Right after promotion: the previous colour is still warm, switch straight back to it."""
    state, status = draft.state, draft.status
    failed_color, failed_revision = status.active_color, status.active_revision
    status.active_color, status.active_revision = state.previous_color, state.previous_revision
    state.color, state.revision = failed_color, failed_revision
    state.previous_color, state.previous_revision = failed_color, failed_revision
    state.abort_reason = message
    state.scale_down_at = draft.now + timedelta(seconds=draft.spec.rollout.scale_down_delay_seconds)
    status.candidate_revision = failed_revision
    draft.go(RolloutPhase.Aborted, f"rolled back: {message}")
    draft.history(failed_revision, Outcome.RolledBack, message)
    draft.event(
        "Warning", reason, f"rolled back from {failed_revision} to {status.active_revision}: {message}"
    )


def _why_no_rollback(draft: _Draft, observed: RolloutObservation) -> str | None:
    """None when a rollback may switch to ``previousColor``; else why not. Only the colour the serving
    revision replaced at its own promotion qualifies (an abort, a rollback or a revert leaves the colour it
    left behind there instead), and only while it is warm and runs Ready pods of that revision."""
    state, status = draft.state, draft.status
    previous, revision = state.previous_color, state.previous_revision
    promoted_here = (state.color, state.revision) == (status.active_color, status.active_revision)
    if previous is None or not revision:
        return f"{status.active_revision} replaced no colour (a first deployment, or one adopted as it ran)"
    if not promoted_here or previous == status.active_color:
        return (
            f"{status.active_revision} was not promoted by the last rollout (an abort, a rollback or a "
            "revert made it active), so there is no colour it replaced to go back to"
        )
    if not _previous_warm(state, draft.now):
        gone = f"the previous colour {previous.value} ({revision})"
        return f"{gone} has scaled down (scaleDownDelaySeconds passed)"
    seen = observed.color(previous)
    if not seen.exists or seen.revision != revision or seen.ready_replicas < 1:
        runs = f"runs {seen.revision}" if seen.exists and seen.revision != revision else "has no Ready pods"
        return f"the previous colour {previous.value} {runs}, not {revision}"
    return None


def _promote(draft: _Draft) -> None:
    state, status = draft.state, draft.status
    old_color, old_revision = status.active_color, status.active_revision
    status.active_color, status.active_revision, status.candidate_revision = state.color, state.revision, None
    state.previous_color, state.previous_revision = old_color, old_revision
    delay = draft.spec.rollout.scale_down_delay_seconds
    state.scale_down_at = draft.now + timedelta(seconds=delay)
    state.step_started_at, state.analysis = draft.now, None
    draft.history(state.revision, Outcome.Promoted, "promoted")
    draft.event(
        "Normal", "RolloutPromoted", f"revision {state.revision} on {state.color} now gets all traffic"
    )
    analysis = draft.spec.rollout.analysis
    if delay > 0 and old_color is not None:
        watching = "analysing" if analysis and analysis.post_promotion else "keeping"
        draft.go(RolloutPhase.PostPromotion, f"promoted; {watching} the previous colour warm for {delay}s")
        draft.requeue(delay)
    else:
        draft.go(RolloutPhase.Completed, "promoted")


# ---------------------------------------------------------------------------------------------------------
# checks


def _failed_analysis(draft: _Draft, observed: RolloutObservation) -> CheckResult | None:
    """Asks for / records analysis while traffic flows; the result when it failed (the caller must stop)."""
    analysis = draft.spec.rollout.analysis
    if analysis is None:
        return None
    last = draft.state.analysis
    # The first judgement waits one interval after the step began: an empty window says nothing.
    since = last.at if last and last.at else draft.state.step_started_at
    waited = _elapsed(since, draft.now) if since else analysis.interval_seconds
    if observed.analysis is None:
        if waited >= analysis.interval_seconds:
            draft.plan.check = Check.analysis
        else:
            draft.requeue(analysis.interval_seconds - waited)
        return None
    result = observed.analysis.model_copy(update={"at": observed.analysis.at or draft.now})
    draft.state.analysis = result
    draft.requeue(analysis.interval_seconds)
    return result if result.passed is False else None


def _evaluation(draft: _Draft, observed: RolloutObservation) -> CheckResult | None:
    """Regular live-model evaluation (outside a rollout in flight); the failed verdict when a rollback is
    wanted and possible (see _why_no_rollback)."""
    wanted = draft.spec.monitoring.evaluation if draft.spec.monitoring else None
    if wanted is None or not draft.status.active_revision:
        return None
    current = draft.status.evaluation
    last = current.result if current and current.revision == draft.status.active_revision else None
    if observed.evaluation is None:
        if draft.plan.check is not None:  # one check per call; this one stays due
            return None
        if last is None or last.at is None or _elapsed(last.at, draft.now) >= wanted.interval_seconds:
            draft.plan.check = Check.evaluation
        else:
            draft.requeue(wanted.interval_seconds - _elapsed(last.at, draft.now))
        return None
    result = observed.evaluation.model_copy(update={"at": observed.evaluation.at or draft.now})
    draft.status.evaluation = EvaluationStatus(revision=draft.status.active_revision, result=result)
    draft.requeue(wanted.interval_seconds)
    if result.passed is False:
        live = draft.status.active_revision
        if last is None or last.passed is not False:  # said when it starts failing, not at every interval
            draft.event("Warning", "EvaluationFailed", f"live model {live}: {result.message}")
        if not wanted.rollback_on_failure:
            return None
        why_not = _why_no_rollback(draft, observed)
        if why_not is None:
            return result
        # Late labels, a revert, a rollback already done: say why nothing rolls back (once per cause).
        message = f"live model {live} failed its evaluation; not rolled back: {why_not}"
        if draft.state.message != message:
            draft.event(
                "Warning",
                "RollbackUnavailable",
                f"{message}. Degraded until it passes or a new revision rolls out",
            )
        draft.state.message = message
        return None
    # Inconclusive (no answer, a timeout) is no pass: status shows it, no Event claims one.
    if result.passed is True and (last is None or last.passed is not True):
        draft.event(
            "Normal", "EvaluationPassed", f"live model {draft.status.active_revision}: {result.message}"
        )
    return None


def _check_phase(draft: _Draft, phase: RolloutPhase, check: Check, result: CheckResult | None) -> None:
    if result is None:
        draft.plan.check = check
        return
    result = result.model_copy(update={"at": result.at or draft.now})
    name = "smoke test" if check == Check.smoke else "quality gate"
    if check == Check.smoke:
        draft.state.smoke = result
    else:
        draft.state.quality_gate = result
    if result.passed:
        draft.event("Normal", "CheckPassed", f"{name} passed: {result.message}")
        _after_checks(draft, phase)
    else:
        reason = "SmokeTestFailed" if check == Check.smoke else "QualityGateFailed"
        _abort(draft, reason, f"{name} failed: {result.message or 'inconclusive'}")


# ---------------------------------------------------------------------------------------------------------
# control requests


def _handle_control(draft: _Draft, observed: RolloutObservation) -> bool:
    control = draft.status.rollout_control
    state = draft.state
    if control is None or control.request_id == state.handled_request_id:
        return False
    state.handled_request_id = control.request_id
    action, phase = control.action, state.phase
    if action == ControlAction.abort and phase in IN_FLIGHT:
        _abort(draft, "RolloutAborted", "aborted by request")
    elif action == ControlAction.abort and phase in (RolloutPhase.PostPromotion, RolloutPhase.Completed):
        why_not = _why_no_rollback(draft, observed)
        if why_not is None:
            _rollback(draft, "RolledBack", "rollback requested")
        else:
            draft.event("Warning", "RequestIgnored", f"abort: not rolled back: {why_not}")
    elif (
        action == ControlAction.retry
        and phase == RolloutPhase.Aborted
        and draft.revision != draft.status.active_revision
    ):
        _start_candidate(draft, "retrying")
    elif action == ControlAction.promote and phase == RolloutPhase.Shadowing:
        draft.event("Normal", "PromoteRequested", "promote requested: the shadow phase ends, steps follow")
        _after_checks(draft, RolloutPhase.Shadowing)
    elif action == ControlAction.promote and phase in (RolloutPhase.Stepping, RolloutPhase.Paused):
        draft.event("Normal", "PromoteRequested", "promote requested: going on")
        _enter_step(draft, state.step_index + 1, promote=True)
    elif action == ControlAction.promote_full and phase in IN_FLIGHT - {RolloutPhase.Promoting}:
        draft.event(
            "Normal", "PromoteRequested", "full promotion requested: skipping the remaining checks and steps"
        )
        state.step_index = len(draft.spec.rollout.steps)
        draft.go(RolloutPhase.Promoting, "full promotion requested")
        draft.requeue(WAIT_FOR_PODS_SECONDS)
    else:
        draft.event("Warning", "RequestIgnored", f"{action.value} does not apply in phase {phase.value}")
    return True


# ---------------------------------------------------------------------------------------------------------
# the step function


def _bootstrap(draft: _Draft, observed: RolloutObservation) -> None:
    stable = observed.stable_color
    obs = observed.color(stable)
    if (
        draft.status.active_color is None
        and stable
        and obs.exists
        and obs.revision
        and obs.ready_replicas > 0
    ):
        draft.status.active_color, draft.status.active_revision = stable, obs.revision
        draft.event(
            "Normal", "Adopted", f"status was empty: {stable.value} ({obs.revision}) is serving, kept active"
        )
        draft.state.revision, draft.state.color = obs.revision, stable
        draft.go(RolloutPhase.Completed, "adopted the serving colour")
        return
    if draft.status.active_color is not None:
        draft.state.revision, draft.state.color = draft.status.active_revision, draft.status.active_color
        draft.go(RolloutPhase.Completed, "resumed")
        return
    draft.state.revision, draft.state.color, draft.state.started_at = draft.revision, Color.blue, draft.now
    draft.status.candidate_revision = draft.revision
    draft.go(RolloutPhase.Deploying, f"deploying revision {draft.revision}")
    draft.requeue(WAIT_FOR_PODS_SECONDS)


def _on_new_revision(draft: _Draft) -> bool:
    """Reacts to a spec whose revision differs from what the rollout is doing; True when it acted."""
    state, status = draft.state, draft.status
    if state.phase == RolloutPhase.Deploying:
        if state.revision == draft.revision:
            return False
        state.revision, status.candidate_revision = draft.revision, draft.revision
        draft.go(
            RolloutPhase.Deploying,
            f"deploying revision {draft.revision} (spec changed before the first was Ready)",
        )
        return True
    if draft.revision == status.active_revision:
        # Completed's own work (its evaluation, the scale-down) comes in the next pass, at once: when nothing
        # about the children changes, no event would bring that pass.
        if state.phase in (IN_FLIGHT | {RolloutPhase.Aborted}):
            draft.requeue(0)
        if state.phase in IN_FLIGHT:
            state.previous_color, state.previous_revision = state.color, state.revision
            state.scale_down_at = draft.now + timedelta(seconds=draft.spec.rollout.scale_down_delay_seconds)
            draft.history(state.revision, Outcome.Superseded, "spec returned to the active revision")
            status.candidate_revision = None
            draft.go(RolloutPhase.Completed, "spec returned to the active revision; candidate scaled down")
            draft.event(
                "Normal",
                "RolloutSuperseded",
                f"spec is back at {draft.revision}; candidate {state.revision} dropped",
            )
            return True
        if state.phase == RolloutPhase.Aborted:
            status.candidate_revision = None
            draft.go(RolloutPhase.Completed, "spec returned to the active revision")
            return True
        return False
    if state.phase in IN_FLIGHT and state.revision != draft.revision:
        draft.history(state.revision, Outcome.Superseded, f"replaced by {draft.revision}")
        _start_candidate(draft, f"revision {draft.revision} replaces {state.revision}")
        return True
    if state.phase in (RolloutPhase.Completed, RolloutPhase.PostPromotion) or (
        state.phase == RolloutPhase.Aborted and state.revision != draft.revision
    ):
        _start_candidate(draft, f"new revision {draft.revision}")
        return True
    return False


def plan_rollout_step(
    spec: ModelDeploymentSpec,
    revision: str,
    status: ModelDeploymentStatus,
    observed: RolloutObservation,
    now: datetime,
) -> RolloutPlan:
    """One pass of the rollout state machine; `revision` is revision_of(spec). A control request or a new
    revision comes first; otherwise the handler of the current phase (PHASE_HANDLERS) decides."""
    draft = _Draft(spec, revision, status, now)
    if status.rollout is None:
        _bootstrap(draft, observed)
    elif not (_handle_control(draft, observed) or _on_new_revision(draft)):
        PHASE_HANDLERS[draft.state.phase](draft, observed)
    if draft.state.phase == RolloutPhase.Promoting and draft.plan.transition:
        # Just entered: with no steps the candidate is already full size and Ready, so switch in this pass.
        _promoting(draft, observed)
    return draft.plan


def _deploying(draft: _Draft, observed: RolloutObservation) -> None:
    """The first revision: it becomes active once its pods are Ready."""
    state, replicas = draft.state, draft.spec.replicas
    candidate = observed.color(state.color)
    if _ready(candidate, state.revision, replicas):
        status = draft.status
        status.active_color, status.active_revision, status.candidate_revision = (
            state.color,
            state.revision,
            None,
        )
        draft.history(state.revision, Outcome.Promoted, "first revision")
        draft.go(RolloutPhase.Completed, f"revision {state.revision} is serving")
        draft.event("Normal", "Deployed", f"revision {state.revision} is Ready on {state.color}")
        return
    if replicas == 0:
        # Parked: nothing to wait for, so no polling; raising spec.replicas (a spec change) wakes it.
        state.message = "spec.replicas is 0: nothing serves until it is raised"
        return
    deadline = draft.spec.rollout.progress_deadline_seconds
    late = _elapsed(state.phase_started_at, draft.now) > deadline
    state.message = _waiting_message(candidate, replicas, late, deadline, draft.now)
    draft.requeue(WAIT_FOR_PODS_SECONDS)


def _waiting_for_pods(draft: _Draft, observed: RolloutObservation) -> bool:
    """WaitingForCandidate and Promoting wait for the candidate's pods; True once they are Ready. Past the
    progress deadline the rollout aborts."""
    state, replicas = draft.state, draft.spec.replicas
    candidate = observed.color(state.color)
    if _ready(candidate, state.revision, replicas):
        return True
    deadline = draft.spec.rollout.progress_deadline_seconds
    waited = _elapsed(state.phase_started_at, draft.now)
    if waited > deadline:
        why = candidate.failure or _init_running(candidate, draft.now)
        why = why or f"{candidate.ready_replicas}/{replicas} pods Ready"
        _abort(draft, "ProgressDeadlineExceeded", f"candidate not Ready within {deadline}s: {why}")
    else:
        state.message = _waiting_message(candidate, replicas, False, deadline, draft.now)
        draft.requeue(min(WAIT_FOR_PODS_SECONDS, deadline - waited + 0.5))
    return False


def _waiting_for_candidate(draft: _Draft, observed: RolloutObservation) -> None:
    if _waiting_for_pods(draft, observed):
        draft.event("Normal", "CandidateReady", f"revision {draft.state.revision} is Ready on the preview")
        _after_checks(draft, RolloutPhase.WaitingForCandidate)


def _promoting(draft: _Draft, observed: RolloutObservation) -> None:
    if _waiting_for_pods(draft, observed):
        _promote(draft)


def _smoke_testing(draft: _Draft, observed: RolloutObservation) -> None:
    _check_phase(draft, RolloutPhase.SmokeTesting, Check.smoke, observed.smoke)


def _quality_gate(draft: _Draft, observed: RolloutObservation) -> None:
    _check_phase(draft, RolloutPhase.QualityGate, Check.quality_gate, observed.quality_gate)


def _shadowing(draft: _Draft, observed: RolloutObservation) -> None:
    """The gate of the shadow phase: read the active pods' counts every few seconds and judge them."""
    wanted, state = draft.spec.rollout.shadow, draft.state
    if wanted is None:  # the spec dropped the shadow phase while it ran
        _after_checks(draft, RolloutPhase.Shadowing)
        return
    last = state.shadow or ShadowFigures(id=shadow_id(state))
    if observed.shadow is None:
        waited = _elapsed(last.at or state.phase_started_at, draft.now)
        if waited >= SHADOW_CHECK_INTERVAL_SECONDS:
            draft.plan.check = Check.shadow
        else:
            draft.requeue(SHADOW_CHECK_INTERVAL_SECONDS - waited)
        return
    figures = with_agreement(
        observed.shadow.model_copy(
            update={"id": last.id, "held": last.held, "at": observed.shadow.at or draft.now}
        )
    )
    state.shadow = figures
    decision = judge_shadow(wanted, figures, _elapsed(state.phase_started_at, draft.now))
    if decision.verdict == Verdict.failed:
        _abort(draft, "ShadowDisagreement", decision.message)
    elif decision.verdict == Verdict.passed:
        draft.event("Normal", "CheckPassed", decision.message)
        _after_checks(draft, RolloutPhase.Shadowing)
    else:
        if decision.verdict == Verdict.hold and not last.held:
            state.shadow = figures.model_copy(update={"held": True})
            draft.event("Warning", "ShadowInconclusive", decision.message)
        state.message = decision.message
        draft.requeue(SHADOW_CHECK_INTERVAL_SECONDS)


def _post_promotion(draft: _Draft, observed: RolloutObservation) -> None:
    if _post_promotion_failed(draft, observed):
        return
    if not _previous_warm(draft.state, draft.now):
        draft.go(RolloutPhase.Completed, f"revision {draft.status.active_revision} is serving")
        draft.plan.check = None


def _completed(draft: _Draft, observed: RolloutObservation) -> None:
    failed = _evaluation(draft, observed)
    if failed is not None:
        _rollback(draft, "EvaluationRollback", f"live evaluation failed: {failed.message}")
    else:
        _requeue_for_scale_down(draft)


def _aborted(draft: _Draft, observed: RolloutObservation) -> None:
    # The model serving after an abort or a rollback is still evaluated; it replaced no colour, so a failure
    # never rolls "back" to the colour the abort or rollback just left (_why_no_rollback says so).
    _evaluation(draft, observed)
    _requeue_for_scale_down(draft)


def _requeue_for_scale_down(draft: _Draft) -> None:
    if _previous_warm(draft.state, draft.now) and draft.state.scale_down_at:
        draft.requeue(_elapsed(draft.now, draft.state.scale_down_at))


def _post_promotion_failed(draft: _Draft, observed: RolloutObservation) -> bool:
    analysis = draft.spec.rollout.analysis
    if analysis and analysis.post_promotion and _previous_warm(draft.state, draft.now):
        failed = _failed_analysis(draft, observed)
        why_not = _why_no_rollback(draft, observed) if failed is not None else None
        if failed is not None and why_not is None:
            _rollback(draft, "AnalysisFailed", f"post-promotion analysis failed: {failed.message}")
            return True
        if failed is not None:
            said = f"not rolled back: {why_not}" in (draft.state.message or "")
            draft.state.message = (
                f"post-promotion analysis failed: {failed.message}; not rolled back: {why_not}"
            )
            if not said:  # once per cause, not again at every analysis interval
                draft.event("Warning", "RollbackUnavailable", draft.state.message)
    evaluated = _evaluation(draft, observed)
    if evaluated is not None:
        _rollback(draft, "EvaluationRollback", f"live evaluation failed: {evaluated.message}")
        return True
    if draft.state.scale_down_at:
        draft.requeue(_elapsed(draft.now, draft.state.scale_down_at))
    return False


def _traffic_step(draft: _Draft, observed: RolloutObservation) -> None:
    state, steps = draft.state, draft.spec.rollout.steps
    failed = _failed_analysis(draft, observed)
    if failed is not None:
        _abort(draft, "AnalysisFailed", f"analysis failed at step {state.step_index + 1}: {failed.message}")
        return
    if draft.plan.check is not None or state.phase == RolloutPhase.Paused:
        return
    pause = steps[state.step_index].pause_seconds if state.step_index < len(steps) else 0
    left = (pause or 0) - _elapsed(state.step_started_at, draft.now)
    if left > 0:
        draft.requeue(left)
        return
    analysis = draft.spec.rollout.analysis
    step_end = state.step_started_at + timedelta(seconds=pause or 0) if state.step_started_at else draft.now
    if analysis and (state.analysis is None or state.analysis.at is None or state.analysis.at < step_end):
        draft.plan.check = Check.analysis  # judge the whole step before leaving it
        return
    if analysis and analysis.min_requests > 0 and (state.analysis is None or state.analysis.passed is None):
        found = state.analysis.message if state.analysis else "no analysis result"
        draft.go(RolloutPhase.Paused, f"analysis inconclusive ({found}); promote to go on or abort")
        draft.event("Warning", "AnalysisInconclusive", state.message)
        return
    _enter_step(draft, state.step_index + 1)


PhaseHandler = Callable[[_Draft, RolloutObservation], None]
# What each phase does when no control request or new revision came first; a new phase is one entry.
PHASE_HANDLERS: dict[RolloutPhase, PhaseHandler] = {
    RolloutPhase.Deploying: _deploying,
    RolloutPhase.WaitingForCandidate: _waiting_for_candidate,
    RolloutPhase.SmokeTesting: _smoke_testing,
    RolloutPhase.QualityGate: _quality_gate,
    RolloutPhase.Shadowing: _shadowing,
    RolloutPhase.Stepping: _traffic_step,
    RolloutPhase.Paused: _traffic_step,
    RolloutPhase.Promoting: _promoting,
    RolloutPhase.PostPromotion: _post_promotion,
    RolloutPhase.Completed: _completed,
    RolloutPhase.Aborted: _aborted,
}


def _init_running(obs: ColorObservation, now: datetime) -> str | None:
    """'pod P: init container C running for 73s' (a fetch that neither finishes nor fails says so)."""
    init = obs.initializing
    if init is None:
        return None
    try:
        since = datetime.fromisoformat(init.started_at.replace("Z", "+00:00"))
    except ValueError:
        return f"{init.what} running since {init.started_at}"
    return f"{init.what} running for {max(0, round(_elapsed(since, now)))}s"


def _waiting_message(obs: ColorObservation, replicas: int, late: bool, deadline: int, now: datetime) -> str:
    msg = f"waiting for pods: {obs.ready_replicas}/{replicas} Ready"
    if obs.earlier_ready:
        msg += f", {obs.earlier_ready} of an earlier revision still Ready"
    why = obs.failure or _init_running(obs, now)
    if why:
        msg += f"; {why}"
    if late:
        msg += f" (past the {deadline}s progress deadline)"
    return msg


# ---------------------------------------------------------------------------------------------------------
# the placement a status asks for


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


def plan_placement(
    spec: ModelDeploymentSpec,
    revision: str,
    status: ModelDeploymentStatus,
    observed: RolloutObservation,
    now: datetime,
) -> Placement:
    """What to run where, for the status plan_rollout_step returned (pure; safe to apply every pass)."""
    state = status.rollout or RolloutState()
    active = status.active_color
    if active is None:  # first deployment: one colour, nothing else serves
        color = state.color or Color.blue
        other = other_color(color)
        return Placement(
            colors={color: ColorPlan(revision, spec.replicas, True), other: ColorPlan(revision, 0, True)},
            stable_colors=(color,),
            preview_color=color,
            route_weights={color.value: 100, other.value: 0},
            header_color=None,
        )
    idle = other_color(active)
    active_plan = ColorPlan(status.active_revision, spec.replicas, status.active_revision == revision)
    if state.phase in IN_FLIGHT and state.color == idle:
        return _candidate_placement(spec, revision, state, observed, active, active_plan)
    if _previous_warm(state, now) and state.previous_color == idle:
        idle_plan = ColorPlan(state.previous_revision, spec.replicas, state.previous_revision == revision)
    else:
        idle_plan = ColorPlan(revision, 0, True)
    return Placement(
        colors={active: active_plan, idle: idle_plan},
        stable_colors=(active,),
        preview_color=idle if state.phase in IN_FLIGHT else active,
        route_weights={active.value: 100, idle.value: 0},
        header_color=None,
    )


def _candidate_placement(
    spec: ModelDeploymentSpec,
    revision: str,
    state: RolloutState,
    observed: RolloutObservation,
    active: Color,
    active_plan: ColorPlan,
) -> Placement:
    """A rollout in flight: the candidate on the idle colour, with its share of traffic once it has Ready
    pods (route weights with Gateway API, else a split of pods behind the stable Service)."""
    candidate = other_color(active)
    seen = observed.color(candidate)
    candidate_ready = seen.ready_replicas if seen.revision == state.revision else 0
    weight = current_weight(spec, state) if candidate_ready > 0 else 0
    replicas = spec.replicas
    candidate_replicas = replicas
    stable: tuple[Color, ...] = (active,)
    weights = {active.value: 100, candidate.value: 0}
    header: Color | None = None
    if state.phase in TRAFFIC_PHASES:
        header = candidate if candidate_ready > 0 else None
        routing = spec.rollout.traffic_routing
        if routing is not None and routing.gateway_api is not None:
            weights = {active.value: 100 - weight, candidate.value: weight}
        elif weight > 0:
            keep, candidate_replicas = replica_split(replicas, weight)
            if state.phase == RolloutPhase.Promoting:
                candidate_replicas = replicas
            # Never shrink the active colour before the candidate's pods are Ready.
            active_replicas = keep if candidate_ready >= candidate_replicas else replicas
            active_plan = ColorPlan(active_plan.revision, active_replicas, active_plan.apply_template)
            stable = (active, candidate)
    return Placement(
        colors={
            active: active_plan,
            candidate: ColorPlan(state.revision, candidate_replicas, state.revision == revision),
        },
        stable_colors=stable,
        preview_color=candidate,
        route_weights=weights,
        header_color=header,
    )


def _previous_warm(state: RolloutState, now: datetime) -> bool:
    """The colour left by the last promotion or abort still runs, until scaleDownAt."""
    return bool(
        state.previous_color and state.previous_revision and state.scale_down_at and now < state.scale_down_at
    )
