"""The rollout step function, phase by phase and event by event, and the placement each status asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldeploy.api import (
    CheckResult,
    Color,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Outcome,
    RolloutControl,
    RolloutPhase,
    RolloutState,
    parse_spec,
)
from modeldeploy.desired.pods import InitRunning
from modeldeploy.desired.rollout import (
    IN_FLIGHT,
    Check,
    ColorObservation,
    RolloutObservation,
    plan_placement,
    plan_rollout_step,
    replica_split,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
OLD, NEW, NEWER = "old0000000", "new0000000", "newer00000"
PASS = CheckResult(passed=True, message="ok")
FAIL = CheckResult(passed=False, message="accuracy 0.61 < 0.9")
INCONCLUSIVE = CheckResult(passed=None, message="3 requests, need 20")
Ph = RolloutPhase


def spec(**rollout: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"uri": "https://m.example/iris/model.onnx"},
        "replicas": 2,
        "rollout": rollout,
    }
    monitoring = rollout.pop("monitoring", None)
    if monitoring:
        body["monitoring"] = monitoring
    return parse_spec(body)


SMOKE = {"requests": [{"body": {"instances": [[1, 2, 3, 4]]}}]}
GATE = {
    "datasetUri": "https://d.example/holdout.csv",
    "labelColumn": "y",
    "metric": "accuracy",
    "threshold": 0.9,
}
STEPS = [{"weight": 10, "pauseSeconds": 60}, {"weight": 50, "pauseSeconds": 60}]


def status(phase: RolloutPhase, *, since: datetime = T0, **state: Any) -> ModelDeploymentStatus:
    """blue serves OLD; the candidate (if any) is NEW on green."""
    defaults: dict[str, Any] = {
        "revision": NEW,
        "color": Color.green,
        "phase_started_at": since,
        "started_at": since,
    }
    if phase in (Ph.Stepping, Ph.Paused):
        defaults["step_started_at"] = since
    defaults.update(state)
    control = defaults.pop("control", None)
    st = ModelDeploymentStatus(
        active_color=Color.blue,
        active_revision=OLD,
        candidate_revision=NEW,
        rollout=RolloutState(phase=phase, **defaults),
        rollout_control=control,
    )
    return st


def promoted(phase: RolloutPhase = Ph.PostPromotion, *, scale_down_in: float = 30) -> ModelDeploymentStatus:
    """green serves NEW after promotion; blue (OLD) warm until scale_down_at."""
    return ModelDeploymentStatus(
        active_color=Color.green,
        active_revision=NEW,
        rollout=RolloutState(
            phase=phase,
            revision=NEW,
            color=Color.green,
            phase_started_at=T0,
            step_started_at=T0,
            previous_color=Color.blue,
            previous_revision=OLD,
            scale_down_at=T0 + timedelta(seconds=scale_down_in),
        ),
    )


def observe(blue: tuple[str, int] | None = (OLD, 2), green: tuple[str, int] | None = None, **kw: Any):
    colors = {}
    for color, seen in ((Color.blue, blue), (Color.green, green)):
        if seen:
            colors[color] = ColorObservation(
                True,
                seen[0],
                2,
                seen[1],
                kw.pop(f"{color.value}_failure", None),
                kw.pop(f"{color.value}_init", None),
            )
    return RolloutObservation(colors=colors, **kw)


def control(action: str, request_id: str = "r1") -> RolloutControl:
    return RolloutControl.model_validate({"action": action, "requestId": request_id})


# ---------------------------------------------------------------------------------------------------------
# first deployment and adoption


def test_empty_status_starts_deploying_on_blue():
    plan = plan_rollout_step(spec(), NEW, ModelDeploymentStatus(), observe(None), T0)
    assert plan.status.rollout.phase == Ph.Deploying
    assert (plan.status.rollout.color, plan.status.rollout.revision) == (Color.blue, NEW)
    assert plan.status.active_color is None


def test_deploying_becomes_completed_when_pods_ready():
    st = ModelDeploymentStatus(rollout=RolloutState(phase=Ph.Deploying, revision=NEW, color=Color.blue))
    plan = plan_rollout_step(spec(), NEW, st, observe((NEW, 2)), T0)
    assert plan.status.rollout.phase == Ph.Completed
    assert (plan.status.active_color, plan.status.active_revision) == (Color.blue, NEW)
    assert plan.status.history[0].outcome == Outcome.Promoted


def test_deploying_past_deadline_says_why_and_keeps_waiting():
    st = ModelDeploymentStatus(
        rollout=RolloutState(phase=Ph.Deploying, revision=NEW, color=Color.blue, phase_started_at=T0)
    )
    seen = observe(
        (NEW, 0), blue_failure="pod iris-blue-x: container modelserve exited with code 1: bad model"
    )
    plan = plan_rollout_step(spec(), NEW, st, seen, T0 + timedelta(seconds=601))
    assert plan.status.rollout.phase == Ph.Deploying
    assert "bad model" in plan.status.rollout.message
    assert "progress deadline" in plan.status.rollout.message


def test_a_candidate_stuck_in_its_fetch_is_aborted_at_the_deadline_naming_the_container_and_how_long():
    stuck = InitRunning("pod iris-green-x: init container fetch-model", "2026-01-01T12:00:02Z")
    seen = observe(green=(NEW, 0), green_init=stuck)
    waiting = plan_rollout_step(spec(), NEW, status(Ph.WaitingForCandidate), seen, T0 + timedelta(seconds=60))
    assert waiting.status.rollout.message == (
        "waiting for pods: 0/2 Ready; pod iris-green-x: init container fetch-model running for 58s"
    )
    late = plan_rollout_step(spec(), NEW, status(Ph.WaitingForCandidate), seen, T0 + timedelta(seconds=601))
    assert late.status.rollout.phase == Ph.Aborted
    assert late.status.history[0].reason == (
        "candidate not Ready within 600s: pod iris-green-x: init container fetch-model running for 599s"
    )


def test_a_candidate_is_not_ready_while_pods_of_an_earlier_revision_still_serve_on_its_colour():
    from dataclasses import replace

    seen = observe(green=(NEW, 2))
    mixed = RolloutObservation(
        colors={**seen.colors, Color.green: replace(seen.colors[Color.green], earlier_ready=1)}
    )
    waiting = plan_rollout_step(spec(qualityGate=GATE), NEW, status(Ph.WaitingForCandidate), mixed, T0)
    assert waiting.status.rollout.phase == Ph.WaitingForCandidate  # the gate would reach the earlier pod
    assert (
        waiting.status.rollout.message == "waiting for pods: 2/2 Ready, 1 of an earlier revision still Ready"
    )
    gone = plan_rollout_step(spec(qualityGate=GATE), NEW, status(Ph.WaitingForCandidate), seen, T0)
    assert gone.status.rollout.phase == Ph.QualityGate


def test_a_new_deployment_with_zero_replicas_is_parked_without_polling():
    parked = parse_spec({"model": {"uri": "https://m.example/iris/model.onnx"}, "replicas": 0})
    st = ModelDeploymentStatus(rollout=RolloutState(phase=Ph.Deploying, revision=NEW, color=Color.blue))
    plan = plan_rollout_step(parked, NEW, st, observe((NEW, 0)), T0 + timedelta(seconds=900))
    assert plan.status.rollout.phase == Ph.Deploying and plan.status.active_color is None
    assert plan.status.rollout.message == "spec.replicas is 0: nothing serves until it is raised"
    assert plan.requeue_after is None  # raising spec.replicas is a spec change: that wakes it


def test_deploying_follows_a_spec_change_in_place():
    st = ModelDeploymentStatus(rollout=RolloutState(phase=Ph.Deploying, revision=NEW, color=Color.blue))
    plan = plan_rollout_step(spec(), NEWER, st, observe((NEW, 0)), T0)
    assert (plan.status.rollout.phase, plan.status.rollout.revision) == (Ph.Deploying, NEWER)


def test_lost_status_adopts_the_colour_the_stable_service_selects():
    seen = observe((OLD, 0), (NEW, 2), stable_color=Color.green)
    plan = plan_rollout_step(spec(), NEW, ModelDeploymentStatus(), seen, T0)
    assert (plan.status.active_color, plan.status.active_revision) == (Color.green, NEW)
    assert plan.status.rollout.phase == Ph.Completed


# ---------------------------------------------------------------------------------------------------------
# phases x events


CASES = [
    # (id, spec kwargs, status, observation, now offset s, results, expected phase, expected check)
    ("completed, spec unchanged->stays", {}, promoted(Ph.Completed, scale_down_in=-1),
     observe((OLD, 0), (NEW, 2)),
     0, {}, Ph.Completed, None),
    ("waiting+not ready->waits", {}, status(Ph.WaitingForCandidate), observe(green=(NEW, 1)), 10, {},
     Ph.WaitingForCandidate, None),
    ("waiting+ready, no checks, no steps->promoted in the same pass", {}, status(Ph.WaitingForCandidate),
     observe(green=(NEW, 2)), 10, {}, Ph.PostPromotion, None),
    ("waiting+ready+smoke->smoke", {"smoke": SMOKE}, status(Ph.WaitingForCandidate), observe(green=(NEW, 2)),
     10, {}, Ph.SmokeTesting, None),
    ("waiting+ready+gate only->gate", {"qualityGate": GATE}, status(Ph.WaitingForCandidate),
     observe(green=(NEW, 2)), 10, {}, Ph.QualityGate, None),
    ("waiting+ready, autoPromote false->paused", {"autoPromote": False}, status(Ph.WaitingForCandidate),
     observe(green=(NEW, 2)), 10, {}, Ph.Paused, None),
    ("waiting+ready+steps->stepping", {"steps": STEPS}, status(Ph.WaitingForCandidate),
     observe(green=(NEW, 2)),
     10, {}, Ph.Stepping, None),
    ("waiting+ready pods of another revision->waits", {}, status(Ph.WaitingForCandidate),
     observe(green=(NEWER, 2)), 10, {}, Ph.WaitingForCandidate, None),
    ("waiting past deadline->aborted", {}, status(Ph.WaitingForCandidate), observe(green=(NEW, 0)), 601, {},
     Ph.Aborted, None),
    ("smoke without result->asks for smoke", {"smoke": SMOKE}, status(Ph.SmokeTesting),
     observe(green=(NEW, 2)),
     1, {}, Ph.SmokeTesting, Check.smoke),
    ("smoke pass+gate->gate", {"smoke": SMOKE, "qualityGate": GATE}, status(Ph.SmokeTesting),
     observe(green=(NEW, 2)), 1, {"smoke": PASS}, Ph.QualityGate, None),
    ("smoke fail->aborted", {"smoke": SMOKE}, status(Ph.SmokeTesting), observe(green=(NEW, 2)), 1,
     {"smoke": FAIL}, Ph.Aborted, None),
    ("gate without result->asks for gate", {"qualityGate": GATE}, status(Ph.QualityGate),
     observe(green=(NEW, 2)), 1, {}, Ph.QualityGate, Check.quality_gate),
    ("gate pass+steps->stepping", {"qualityGate": GATE, "steps": STEPS}, status(Ph.QualityGate),
     observe(green=(NEW, 2)), 1, {"quality_gate": PASS}, Ph.Stepping, None),
    ("gate fail->aborted", {"qualityGate": GATE}, status(Ph.QualityGate), observe(green=(NEW, 2)), 1,
     {"quality_gate": FAIL}, Ph.Aborted, None),
    ("gate inconclusive->aborted (fail closed)", {"qualityGate": GATE}, status(Ph.QualityGate),
     observe(green=(NEW, 2)), 1, {"quality_gate": INCONCLUSIVE}, Ph.Aborted, None),
    ("stepping within pause->stays", {"steps": STEPS}, status(Ph.Stepping), observe(green=(NEW, 2)), 30, {},
     Ph.Stepping, None),
    ("stepping pause over->next step", {"steps": STEPS}, status(Ph.Stepping), observe(green=(NEW, 2)), 61, {},
     Ph.Stepping, None),
    ("last step over+autoPromote, candidate not full->promoting", {"steps": STEPS},
     status(Ph.Stepping, step_index=1), observe(green=(NEW, 1)), 61, {}, Ph.Promoting, None),
    ("last step over+autoPromote, candidate full and Ready->promoted in the same pass", {"steps": STEPS},
     status(Ph.Stepping, step_index=1), observe(green=(NEW, 2)), 61, {}, Ph.PostPromotion, None),
    ("last step over, autoPromote false->paused", {"steps": STEPS, "autoPromote": False},
     status(Ph.Stepping, step_index=1), observe(green=(NEW, 2)), 61, {}, Ph.Paused, None),
    ("stepping+analysis due->asks for analysis", {"steps": STEPS, "analysis": {"maxErrorRate": 0.01}},
     status(Ph.Stepping), observe(green=(NEW, 2)), 30, {}, Ph.Stepping, Check.analysis),
    ("stepping+analysis fail->aborted", {"steps": STEPS, "analysis": {"maxErrorRate": 0.01}},
     status(Ph.Stepping), observe(green=(NEW, 2)), 30, {"analysis": FAIL}, Ph.Aborted, None),
    ("pause over+analysis pass->next", {"steps": STEPS, "analysis": {"maxErrorRate": 0.01}},
     status(Ph.Stepping), observe(green=(NEW, 2)), 61, {"analysis": PASS}, Ph.Stepping, None),
    ("pause over+analysis inconclusive->paused", {"steps": STEPS, "analysis": {"maxErrorRate": 0.01}},
     status(Ph.Stepping), observe(green=(NEW, 2)), 61, {"analysis": INCONCLUSIVE}, Ph.Paused, None),
    ("paused A/B hold+analysis fail->aborted",
     {"steps": [{"weight": 50}], "analysis": {"maxErrorRate": 0.01}},
     status(Ph.Paused), observe(green=(NEW, 2)), 3600, {"analysis": FAIL}, Ph.Aborted, None),
    ("paused stays paused without promote", {"steps": [{"weight": 50}]}, status(Ph.Paused),
     observe(green=(NEW, 2)), 86400, {}, Ph.Paused, None),
    ("promoting+ready->post-promotion", {}, status(Ph.Promoting), observe(green=(NEW, 2)), 5, {},
     Ph.PostPromotion, None),
    ("promoting+not ready past deadline->aborted", {}, status(Ph.Promoting), observe(green=(NEW, 1)), 601, {},
     Ph.Aborted, None),
    ("promoting+ready, no delay->completed", {"scaleDownDelaySeconds": 0}, status(Ph.Promoting),
     observe(green=(NEW, 2)), 5, {}, Ph.Completed, None),
    ("post-promotion+analysis due->asks", {"analysis": {"maxErrorRate": 0.01}}, promoted(),
     observe((OLD, 2), (NEW, 2)), 15, {}, Ph.PostPromotion, Check.analysis),
    ("post-promotion, first interval not over->waits", {"analysis": {"maxErrorRate": 0.01}}, promoted(),
     observe((OLD, 2), (NEW, 2)), 5, {}, Ph.PostPromotion, None),
    ("stepping, first interval not over->no analysis yet",
     {"steps": STEPS, "analysis": {"maxErrorRate": 0.01}},
     status(Ph.Stepping), observe(green=(NEW, 2)), 5, {}, Ph.Stepping, None),
    ("pause over, last analysis before step end->fresh analysis",
     {"steps": STEPS, "analysis": {"maxErrorRate": 0.01}},
     status(Ph.Stepping, analysis=CheckResult(passed=True, at=T0 + timedelta(seconds=55))),
     observe(green=(NEW, 2)), 61, {}, Ph.Stepping, Check.analysis),
    ("post-promotion+analysis fail->rolled back", {"analysis": {"maxErrorRate": 0.01}}, promoted(),
     observe((OLD, 2), (NEW, 2)), 5, {"analysis": FAIL}, Ph.Aborted, None),
    ("post-promotion window over->completed", {}, promoted(), observe((OLD, 2), (NEW, 2)), 31, {},
     Ph.Completed, None),
    ("aborted+same revision->stays aborted", {}, status(Ph.Aborted), observe((OLD, 2), (NEW, 0)), 9999, {},
     Ph.Aborted, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rollout", "before", "seen", "after_s", "results", "phase", "check"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_step_function(rollout, before, seen, after_s, results, phase, check):
    import dataclasses

    seen = dataclasses.replace(seen, **results)
    revision = NEW
    plan = plan_rollout_step(spec(**rollout), revision, before, seen, T0 + timedelta(seconds=after_s))
    assert plan.status.rollout.phase == phase, plan.status.rollout.message
    assert plan.check == check


def test_completed_with_new_revision_starts_candidate_on_idle_colour():
    st = status(Ph.Completed, revision=OLD, color=Color.blue)
    st.candidate_revision = None
    plan = plan_rollout_step(spec(), NEW, st, observe(), T0)
    assert plan.status.rollout.phase == Ph.WaitingForCandidate
    assert (plan.status.rollout.color, plan.status.rollout.revision) == (Color.green, NEW)
    assert plan.status.candidate_revision == NEW
    assert [e.reason for e in plan.events] == ["RolloutStarted"]


def test_deadline_abort_quotes_the_candidate_failure():
    seen = observe(
        green=(NEW, 0), green_failure="pod iris-green-x: container fetch-model exited with code 3: digest"
    )
    plan = plan_rollout_step(spec(), NEW, status(Ph.WaitingForCandidate), seen, T0 + timedelta(seconds=601))
    assert "exited with code 3: digest" in plan.status.rollout.abort_reason
    assert plan.events[-1].type == "Warning" and plan.events[-1].reason == "ProgressDeadlineExceeded"
    assert plan.status.history[0].outcome == Outcome.Aborted
    assert plan.status.active_color == Color.blue  # traffic stays where it was


def test_quality_gate_scores_land_in_status():
    result = CheckResult(passed=True, message="0.95 >= 0.9", score=0.95, active_score=0.94)
    plan = plan_rollout_step(
        spec(qualityGate=GATE), NEW, status(Ph.QualityGate), observe(green=(NEW, 2), quality_gate=result), T0
    )
    assert plan.status.rollout.quality_gate.score == 0.95
    assert plan.status.rollout.quality_gate.active_score == 0.94


def test_promotion_swaps_active_and_keeps_previous_warm():
    plan = plan_rollout_step(spec(), NEW, status(Ph.Promoting), observe(green=(NEW, 2)), T0)
    st = plan.status
    assert (st.active_color, st.active_revision, st.candidate_revision) == (Color.green, NEW, None)
    assert (st.rollout.previous_color, st.rollout.previous_revision) == (Color.blue, OLD)
    assert st.rollout.scale_down_at == T0 + timedelta(seconds=30)


def test_post_promotion_failure_rolls_back_to_warm_previous():
    seen = observe((OLD, 2), (NEW, 2), analysis=FAIL)
    plan = plan_rollout_step(
        spec(analysis={"maxErrorRate": 0.01}), NEW, promoted(), seen, T0 + timedelta(seconds=5)
    )
    st = plan.status
    assert (st.active_color, st.active_revision) == (Color.blue, OLD)
    assert st.history[0].outcome == Outcome.RolledBack
    assert st.rollout.phase == Ph.Aborted and st.rollout.revision == NEW


def test_post_promotion_analysis_failure_with_the_previous_colour_not_ready_says_why_and_stays():
    seen = observe((OLD, 0), (NEW, 2), analysis=FAIL)
    plan = plan_rollout_step(
        spec(analysis={"maxErrorRate": 0.01}), NEW, promoted(), seen, T0 + timedelta(seconds=5)
    )
    st = plan.status
    assert (st.active_color, st.active_revision, st.rollout.phase) == (Color.green, NEW, Ph.PostPromotion)
    assert [e.reason for e in plan.events] == ["RollbackUnavailable"]
    assert "not rolled back: the previous colour blue has no Ready pods" in plan.events[0].message
    again = plan_rollout_step(
        spec(analysis={"maxErrorRate": 0.01}), NEW, plan.status, seen, T0 + timedelta(seconds=15)
    )
    assert again.status.rollout.phase == Ph.PostPromotion
    assert "RollbackUnavailable" not in [e.reason for e in again.events]  # said once, not every interval


# ---------------------------------------------------------------------------------------------------------
# promote / abort / retry through status.rolloutControl


CONTROL_CASES = [
    ("abort while stepping", {"steps": STEPS}, status(Ph.Stepping, control=control("abort")), Ph.Aborted),
    ("abort while waiting", {}, status(Ph.WaitingForCandidate, control=control("abort")), Ph.Aborted),
    ("promote ends a step early", {"steps": STEPS}, status(Ph.Stepping, control=control("promote")),
     Ph.Stepping),
    ("promote a held step->next", {"steps": [{"weight": 20}, {"weight": 60}]},
     status(Ph.Paused, control=control("promote")), Ph.Paused),
    ("promote after last step, candidate full and Ready->promoted", {"steps": STEPS, "autoPromote": False},
     status(Ph.Paused, step_index=2, control=control("promote")), Ph.PostPromotion),
    ("promote with no steps, autoPromote false->promoted", {"autoPromote": False},
     status(Ph.Paused, control=control("promote")), Ph.PostPromotion),
    ("promoteFull skips the checks", {"smoke": SMOKE, "steps": STEPS},
     status(Ph.SmokeTesting, control=control("promoteFull")), Ph.PostPromotion),
    ("retry an aborted rollout", {}, status(Ph.Aborted, control=control("retry")), Ph.WaitingForCandidate),
    ("retry when nothing failed is ignored", {}, status(Ph.Stepping, control=control("retry")), Ph.Stepping),
    ("promote while waiting is ignored", {}, status(Ph.WaitingForCandidate, control=control("promote")),
     Ph.WaitingForCandidate),
    ("already handled request does nothing", {"steps": STEPS},
     status(Ph.Stepping, control=control("abort"), handled_request_id="r1"), Ph.Stepping),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rollout", "before", "phase"), [c[1:] for c in CONTROL_CASES], ids=[c[0] for c in CONTROL_CASES]
)
def test_control_requests(rollout, before, phase):
    plan = plan_rollout_step(spec(**rollout), NEW, before, observe(green=(NEW, 2)), T0 + timedelta(seconds=1))
    assert plan.status.rollout.phase == phase
    assert plan.status.rollout.handled_request_id == "r1"


def test_ignored_request_is_acknowledged_with_a_warning():
    plan = plan_rollout_step(spec(), NEW, status(Ph.Stepping, control=control("retry")), observe(), T0)
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "RequestIgnored")]


def test_abort_right_after_promotion_rolls_back():
    st = promoted()
    st.rollout_control = control("abort")
    plan = plan_rollout_step(spec(), NEW, st, observe((OLD, 2), (NEW, 2)), T0 + timedelta(seconds=1))
    assert (plan.status.active_color, plan.status.active_revision) == (Color.blue, OLD)
    assert plan.status.history[0].outcome == Outcome.RolledBack


def test_retry_starts_the_same_revision_again_with_checks_cleared():
    st = status(Ph.Aborted, control=control("retry"), smoke=FAIL, abort_reason="smoke test failed")
    plan = plan_rollout_step(spec(smoke=SMOKE), NEW, st, observe(green=(NEW, 0)), T0)
    assert plan.status.rollout.phase == Ph.WaitingForCandidate
    assert plan.status.rollout.smoke is None and plan.status.rollout.abort_reason is None


# ---------------------------------------------------------------------------------------------------------
# spec changes in the middle, and restarts


def test_spec_back_to_active_revision_drops_the_candidate():
    plan = plan_rollout_step(spec(steps=STEPS), OLD, status(Ph.Stepping), observe(green=(NEW, 2)), T0)
    st = plan.status
    assert st.rollout.phase == Ph.Completed and st.candidate_revision is None
    assert st.history[0].outcome == Outcome.Superseded


@pytest.mark.parametrize("phase", [Ph.Stepping, Ph.Aborted])
def test_a_revert_asks_for_the_next_pass_at_once_so_completed_evaluates(phase):
    """Nothing about the children may change (an aborted candidate stays warm either way): no event would
    bring the pass in which Completed asks for its evaluation."""
    reverted = plan_rollout_step(spec(monitoring=EVAL), OLD, status(phase), observe(green=(NEW, 2)), T0)
    assert reverted.status.rollout.phase == Ph.Completed
    assert reverted.requeue_after is not None and reverted.requeue_after <= 1
    following = plan_rollout_step(spec(monitoring=EVAL), OLD, reverted.status, observe(green=(NEW, 2)), T0)
    assert following.check == Check.evaluation


def test_newer_revision_replaces_the_candidate_in_flight():
    plan = plan_rollout_step(spec(steps=STEPS), NEWER, status(Ph.Stepping), observe(green=(NEW, 2)), T0)
    st = plan.status
    assert (st.rollout.phase, st.rollout.revision, st.rollout.color) == (
        Ph.WaitingForCandidate,
        NEWER,
        Color.green,
    )
    assert st.history[0].outcome == Outcome.Superseded and st.history[0].revision == NEW


@pytest.mark.parametrize(
    ("spec_revision", "phase"), [(NEWER, Ph.WaitingForCandidate), (OLD, Ph.Completed), (NEW, Ph.Aborted)]
)
def test_aborted_waits_for_a_new_revision_a_revert_or_retry(spec_revision, phase):
    plan = plan_rollout_step(spec(), spec_revision, status(Ph.Aborted), observe(), T0 + timedelta(hours=1))
    assert plan.status.rollout.phase == phase


@pytest.mark.parametrize("phase", list(RolloutPhase))
def test_restarted_operator_decides_the_same_from_status(phase):
    """Killed at any moment: the next process sees the same status and observation and does the same."""
    before = status(phase, step_index=0)
    seen = observe((OLD, 2), (NEW, 1))
    now = T0 + timedelta(seconds=20)
    first = plan_rollout_step(spec(steps=STEPS), NEW, before, seen, now)
    again = plan_rollout_step(spec(steps=STEPS), NEW, before, seen, now)
    assert first.status == again.status and first.check == again.check
    placement = plan_placement(spec(steps=STEPS), NEW, first.status, seen, now)
    ready_colors = {c for c, o in seen.colors.items() if o.ready_replicas > 0}
    assert set(placement.stable_colors) <= ready_colors | {first.status.active_color}


def test_history_is_capped_and_newest_first():
    st = status(Ph.WaitingForCandidate)
    plan = None
    for i in range(5):
        st.rollout.revision = f"rev{i}"
        st.rollout.phase = Ph.WaitingForCandidate
        plan = plan_rollout_step(spec(historyLimit=3), f"rev{i + 1}", st, observe(), T0)
        st = plan.status
    assert [h.revision for h in st.history] == ["rev4", "rev3", "rev2"]


# ---------------------------------------------------------------------------------------------------------
# evaluation of the live model


EVAL = {"evaluation": {**GATE, "intervalSeconds": 3600, "rollbackOnFailure": True}}


def test_live_evaluation_is_requested_when_due():
    plan = plan_rollout_step(spec(monitoring=EVAL), NEW, promoted(Ph.Completed), observe(), T0)
    assert plan.check == Check.evaluation


def test_failing_evaluation_rolls_back_while_previous_is_warm():
    seen = observe((OLD, 2), (NEW, 2), evaluation=FAIL)
    plan = plan_rollout_step(
        spec(monitoring=EVAL), NEW, promoted(Ph.Completed), seen, T0 + timedelta(seconds=5)
    )
    assert plan.status.active_revision == OLD
    assert plan.status.evaluation.result.passed is False


def test_failing_evaluation_after_scale_down_only_reports_and_says_why_nothing_rolls_back():
    seen = observe((OLD, 0), (NEW, 2), evaluation=FAIL)
    plan = plan_rollout_step(
        spec(monitoring=EVAL), NEW, promoted(Ph.Completed), seen, T0 + timedelta(hours=1)
    )
    assert plan.status.active_revision == NEW
    assert [e.reason for e in plan.events] == ["EvaluationFailed", "RollbackUnavailable"]
    assert "has scaled down (scaleDownDelaySeconds passed)" in plan.events[-1].message


def test_an_evaluation_that_keeps_failing_without_a_rollback_says_so_once_not_at_every_interval():
    seen = observe((OLD, 0), (NEW, 2), evaluation=FAIL)
    first = plan_rollout_step(
        spec(monitoring=EVAL), NEW, promoted(Ph.Completed), seen, T0 + timedelta(hours=1)
    )
    again = plan_rollout_step(spec(monitoring=EVAL), NEW, first.status, seen, T0 + timedelta(hours=2))
    assert [e.reason for e in first.events] == ["EvaluationFailed", "RollbackUnavailable"]
    assert again.events == [] and again.status.evaluation.result.passed is False
    assert again.status.rollout.message == first.status.rollout.message


def test_restored_model_is_evaluated_after_an_evaluation_rollback_and_never_rolled_back_again():
    seen = observe((OLD, 2), (NEW, 2), evaluation=FAIL)
    rolled_back = plan_rollout_step(
        spec(monitoring=EVAL), NEW, promoted(Ph.Completed), seen, T0 + timedelta(seconds=5)
    ).status
    assert rolled_back.rollout.phase == Ph.Aborted and rolled_back.active_revision == OLD
    due = plan_rollout_step(spec(monitoring=EVAL), NEW, rolled_back, observe((OLD, 2), (NEW, 2)), T0)
    assert due.check == Check.evaluation
    failed_again = plan_rollout_step(
        spec(monitoring=EVAL), NEW, rolled_back, seen, T0 + timedelta(seconds=10)
    )
    assert failed_again.status.active_revision == OLD
    assert failed_again.status.evaluation.revision == OLD
    assert "EvaluationFailed" in [e.reason for e in failed_again.events]


# ---------------------------------------------------------------------------------------------------------
# the placement


@pytest.mark.parametrize(
    ("replicas", "weight", "split"),
    [(2, 0, (2, 0)), (2, 10, (2, 1)), (4, 20, (4, 1)), (2, 50, (2, 2)), (2, 90, (1, 2)), (4, 75, (2, 4)),
     (3, 100, (0, 3))],
)  # fmt: skip
def test_replica_split_approximates_the_weight(replicas, weight, split):
    assert replica_split(replicas, weight) == split


GATEWAY = {
    "trafficRouting": {
        "gatewayAPI": {"parentRefs": [{"name": "gw"}], "headerMatch": {"name": "x-canary", "value": "1"}}
    }
}


def test_gateway_world_splits_by_weight_once_candidate_is_ready():
    placement = plan_placement(
        spec(steps=STEPS, **GATEWAY), NEW, status(Ph.Stepping), observe(green=(NEW, 2)), T0
    )
    assert placement.route_weights == {"blue": 90, "green": 10}
    assert placement.stable_colors == (Color.blue,) and placement.header_color == Color.green
    assert placement.colors[Color.green].replicas == 2 and placement.colors[Color.blue].replicas == 2


def test_world_never_routes_to_a_colour_without_ready_pods():
    for routing in ({}, GATEWAY):
        placement = plan_placement(
            spec(steps=STEPS, **routing), NEW, status(Ph.Stepping), observe(green=(NEW, 0)), T0
        )
        assert placement.route_weights["green"] == 0
        assert placement.stable_colors == (Color.blue,)
        assert placement.header_color is None


def test_service_world_keeps_active_full_until_candidate_pods_ready():
    steps = [{"weight": 90, "pauseSeconds": 60}]
    shrinking = plan_placement(spec(steps=steps), NEW, status(Ph.Stepping), observe(green=(NEW, 1)), T0)
    assert shrinking.colors[Color.blue].replicas == 2  # candidate has 1 of 2 Ready: do not shrink yet
    assert set(shrinking.stable_colors) == {Color.blue, Color.green}
    shrunk = plan_placement(spec(steps=steps), NEW, status(Ph.Stepping), observe(green=(NEW, 2)), T0)
    assert shrunk.colors[Color.blue].replicas == 1


def test_world_during_checks_previews_candidate_and_keeps_traffic_on_active():
    placement = plan_placement(spec(smoke=SMOKE), NEW, status(Ph.SmokeTesting), observe(green=(NEW, 2)), T0)
    assert placement.preview_color == Color.green and placement.stable_colors == (Color.blue,)
    assert placement.colors[Color.green].apply_template and not placement.colors[Color.blue].apply_template


def test_previous_colour_stays_warm_then_scales_to_zero():
    warm = plan_placement(spec(), NEW, promoted(), observe((OLD, 2), (NEW, 2)), T0 + timedelta(seconds=10))
    assert warm.colors[Color.blue].replicas == 2 and warm.colors[Color.blue].revision == OLD
    assert not warm.colors[Color.blue].apply_template  # the old revision is only scaled, never re-templated
    cold = plan_placement(
        spec(), NEW, promoted(Ph.Completed), observe((OLD, 2), (NEW, 2)), T0 + timedelta(seconds=31)
    )
    assert cold.colors[Color.blue].replicas == 0
    assert cold.stable_colors == (Color.green,)


def test_first_deployment_world_uses_one_colour():
    placement = plan_placement(spec(), NEW, ModelDeploymentStatus(), observe(None), T0)
    assert placement.colors[Color.blue].replicas == 2 and placement.colors[Color.green].replicas == 0
    assert placement.stable_colors == (Color.blue,) and placement.preview_color == Color.blue


@pytest.mark.parametrize(
    ("result", "event"),
    [
        (CheckResult(passed=True, message="0.97 >= 0.9"), "EvaluationPassed"),
        (CheckResult(passed=False, message="0.5 < 0.9"), "EvaluationFailed"),
        (CheckResult(passed=None, message="inconclusive: dataset timed out"), None),
    ],
)
def test_only_a_conclusive_evaluation_is_announced_and_inconclusive_is_never_a_pass(result, event):
    seen = observe((OLD, 0), (NEW, 2), evaluation=result)
    plan = plan_rollout_step(
        spec(monitoring=EVAL), NEW, promoted(Ph.Completed), seen, T0 + timedelta(hours=1)
    )
    reasons = [e.reason for e in plan.events]
    assert "EvaluationPassed" not in reasons or event == "EvaluationPassed"
    assert (event in reasons) if event else not [r for r in reasons if r.startswith("Evaluation")]


# A check message that fits its own field (4096) but not once a verdict prefixes it.
def test_an_aborted_gate_with_a_message_just_under_the_limit_still_gives_a_valid_status():
    seen = observe(green=(NEW, 2), quality_gate=CheckResult(passed=False, message="x" * 4090))
    plan = plan_rollout_step(spec(qualityGate=GATE), NEW, status(Ph.QualityGate), seen, T0)
    assert plan.status.rollout is not None and plan.status.rollout.phase == Ph.Aborted
    dumped = plan.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert ModelDeploymentStatus.model_validate(dumped) == plan.status  # round-trips: the API server takes it
    assert len(plan.status.history[0].reason) <= 4096
    assert len(plan.status.rollout.abort_reason or "") <= 4096


# ---------------------------------------------------------------------------------------------------------
# where a rollback goes: only to the colour the serving revision replaced at its own promotion


def _aborted_then_reverted() -> ModelDeploymentStatus:
    """blue serves OLD; a rollout of NEW on green was aborted (green warm), then the spec went back to OLD."""
    aborted = plan_rollout_step(
        spec(), NEW, status(Ph.Stepping, control=control("abort")), observe(green=(NEW, 2)), T0
    ).status
    return plan_rollout_step(
        spec(), OLD, aborted, observe((OLD, 2), (NEW, 2)), T0 + timedelta(seconds=1)
    ).status


def _dropped_by_a_revert() -> ModelDeploymentStatus:
    """blue serves OLD; the spec went back to OLD while NEW was stepping on green (green warm)."""
    return plan_rollout_step(spec(steps=STEPS), OLD, status(Ph.Stepping), observe(green=(NEW, 2)), T0).status


def _rolled_back_then_reverted() -> ModelDeploymentStatus:
    """NEW was promoted on green, failed its evaluation and was rolled back to blue (OLD); then the spec went
    back to OLD too (green, the failed revision, still warm)."""
    seen = observe((OLD, 2), (NEW, 2), evaluation=FAIL)
    rolled_back = plan_rollout_step(spec(monitoring=EVAL), NEW, promoted(Ph.Completed), seen, T0).status
    assert rolled_back.active_color == Color.blue
    return plan_rollout_step(
        spec(monitoring=EVAL), OLD, rolled_back, observe((OLD, 2), (NEW, 2)), T0 + timedelta(seconds=1)
    ).status


def _second_rollout_promoted() -> tuple[ModelDeploymentStatus, RolloutObservation]:
    """OLD (blue) -> NEW (green) completed, blue scaled down; NEWER then promoted on blue: green warm."""
    later = T0 + timedelta(minutes=5)
    started = plan_rollout_step(
        spec(), NEWER, promoted(Ph.Completed), observe((OLD, 0), (NEW, 2)), later
    ).status
    assert (started.rollout.phase, started.rollout.color) == (Ph.WaitingForCandidate, Color.blue)
    done = plan_rollout_step(spec(), NEWER, started, observe((NEWER, 2), (NEW, 2)), later).status
    assert done.rollout.phase == Ph.PostPromotion  # Ready at full size: promoted in the same pass
    assert (done.active_color, done.rollout.previous_color) == (Color.blue, Color.green)
    done.rollout.scale_down_at = T0 + timedelta(seconds=30)  # the table's clock: warm until T0 + 30 s
    return done, observe((NEWER, 2), (NEW, 2))


SECOND, SECOND_SEEN = _second_rollout_promoted()

# name, status before, what runs, spec revision -> (active colour, active revision) after a failed live
# evaluation with rollbackOnFailure, and the Event that says what happened (or why nothing rolled back).
BOTH_UP, BACK, NOT_BACK = observe((OLD, 2), (NEW, 2)), "EvaluationRollback", "RollbackUnavailable"
ROLLBACK_TARGETS = [
    ("promoted, the replaced colour warm and Ready: back to it",
     promoted(Ph.Completed), BOTH_UP, NEW, (Color.blue, OLD), BACK),
    ("during scaleDownDelaySeconds: back to the replaced colour",
     promoted(Ph.PostPromotion), BOTH_UP, NEW, (Color.blue, OLD), BACK),
    ("second rollout: back to ITS previous colour, not the first one's",
     SECOND, SECOND_SEEN, NEWER, (Color.green, NEW), BACK),
    ("an aborted candidate left warm, spec reverted: never onto the aborted candidate",
     _aborted_then_reverted(), BOTH_UP, OLD, (Color.blue, OLD), NOT_BACK),
    ("a candidate dropped by a revert: never onto the dropped candidate",
     _dropped_by_a_revert(), BOTH_UP, OLD, (Color.blue, OLD), NOT_BACK),
    ("restored by a rollback, spec reverted: never back onto the revision that failed",
     _rolled_back_then_reverted(), BOTH_UP, OLD, (Color.blue, OLD), NOT_BACK),
    ("the replaced colour has no Ready pods: no switch to an empty colour",
     promoted(Ph.Completed), observe((OLD, 0), (NEW, 2)), NEW, (Color.green, NEW), NOT_BACK),
    ("the replaced colour runs another revision now: no switch to it",
     promoted(Ph.Completed), observe((NEWER, 2), (NEW, 2)), NEW, (Color.green, NEW), NOT_BACK),
    ("scaleDownDelaySeconds passed: nothing to switch to",
     promoted(Ph.Completed, scale_down_in=1), BOTH_UP, NEW, (Color.green, NEW), NOT_BACK),
]  # fmt: skip


@pytest.mark.parametrize(
    ("before", "seen", "revision", "active", "event"),
    [c[1:] for c in ROLLBACK_TARGETS],
    ids=[c[0] for c in ROLLBACK_TARGETS],
)
def test_a_failed_live_evaluation_rolls_back_only_to_the_colour_the_serving_revision_replaced(
    before, seen, revision, active, event
):
    failed = RolloutObservation(colors=seen.colors, evaluation=FAIL)
    plan = plan_rollout_step(spec(monitoring=EVAL), revision, before, failed, T0 + timedelta(seconds=5))
    st = plan.status
    assert (st.active_color, st.active_revision) == active
    reasons = [e.reason for e in plan.events]
    assert reasons == ["EvaluationFailed", event], plan.events
    assert st.evaluation.result.passed is False
    if event == BACK:
        assert st.rollout.phase == Ph.Aborted and st.history[0].outcome == Outcome.RolledBack
        assert FAIL.message in st.history[0].reason  # why, with the figures
        assert (st.rollout.previous_color, st.rollout.previous_revision) == (before.active_color, revision)
    else:
        assert st.rollout.previous_color is None or st.rollout.previous_color != st.active_color
        assert [h.outcome for h in st.history] == [h.outcome for h in before.history]  # nothing rolled back
        assert "not rolled back" in plan.events[-1].message and "not rolled back" in st.rollout.message


ABORT_TARGETS = [c for c in ROLLBACK_TARGETS if c[1].rollout.phase != Ph.Aborted]


@pytest.mark.parametrize(
    ("before", "seen", "revision", "active", "event"),
    [c[1:] for c in ABORT_TARGETS],
    ids=[c[0] for c in ABORT_TARGETS],
)
def test_an_abort_request_after_promotion_rolls_back_by_the_same_rule(before, seen, revision, active, event):
    requested = before.model_copy(update={"rollout_control": control("abort", "late-abort")})
    plan = plan_rollout_step(spec(), revision, requested, seen, T0 + timedelta(seconds=5))
    assert (plan.status.active_color, plan.status.active_revision) == active
    expected = "RolledBack" if event == BACK else "RequestIgnored"
    assert [e.reason for e in plan.events] == [expected], plan.events


# What an earlier rollout left in status: green (NEWER) warm.
STALE = {"previous_color": Color.green, "previous_revision": NEWER, "scale_down_at": T0 + timedelta(hours=1)}


@pytest.mark.parametrize("phase", sorted(IN_FLIGHT))
def test_live_evaluation_waits_while_a_rollout_is_in_flight_and_never_acts_on_an_earlier_rollouts_colour(
    phase,
):
    """blue serves OLD, NEW is the candidate on green; status still names green (NEWER) from an earlier
    rollout as previous colour. A failed verdict arriving now changes nothing and is not asked for."""
    before = status(phase, step_index=0, **STALE)
    seen = observe((OLD, 2), (NEW, 1), evaluation=FAIL)  # the candidate not all Ready: Promoting waits
    plan = plan_rollout_step(spec(steps=STEPS, monitoring=EVAL), NEW, before, seen, T0 + timedelta(seconds=1))
    assert (plan.status.active_color, plan.status.active_revision) == (Color.blue, OLD)
    assert plan.check != Check.evaluation
    assert plan.status.evaluation is None
    assert not [e for e in plan.events if e.reason.startswith(("Evaluation", "Rollback", "RolledBack"))]


def test_a_new_rollout_forgets_the_previous_colour_of_the_last_one():
    """The candidate takes the slot the last rollout kept warm: that colour is no rollback target any more."""
    plan = plan_rollout_step(spec(), NEWER, promoted(Ph.PostPromotion), observe((OLD, 2), (NEW, 2)), T0)
    state = plan.status.rollout
    assert (state.phase, state.color) == (Ph.WaitingForCandidate, Color.blue)
    assert (state.previous_color, state.previous_revision, state.scale_down_at) == (None, None, None)
