"""The shadow phase of the rollout step function: when it starts, what the gate decides on the figures the
active pods counted, the pause for a person, and the ConfigMap that switches modelserve's copy."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from test_rollout import GATE, NEW, STEPS, T0, control, observe, spec, status

from modeldeploy.api import Color, Phase, RolloutPhase, Shadow, ShadowFigures, parse_spec
from modeldeploy.desired.rollout import Check, plan_placement, plan_rollout_step
from modeldeploy.desired.shadow import (
    Verdict,
    build_shadow_config,
    judge_shadow,
    shadow_id,
    shadow_settings,
)
from modeldeploy.desired.status import overall_phase

Ph = RolloutPhase
SHADOW = {"percent": 10, "minRequests": 100, "minAgreement": 0.97, "maxSeconds": 600}


def figures(compared: int, agreed: int, **kw: Any) -> ShadowFigures:
    return ShadowFigures(compared=compared, agreed=agreed, **kw)


GATE_CASES = [
    # name, compared, agreed, held, elapsed, verdict
    ("too few rows keeps copying", 99, 99, False, 10, Verdict.wait),
    ("enough rows, 97% agree passes", 100, 97, False, 10, Verdict.passed),
    ("enough rows, 96% agree fails", 100, 96, False, 10, Verdict.failed),
    ("shuffled labels fail", 300, 110, False, 10, Verdict.failed),
    ("too few rows after maxSeconds holds", 40, 40, False, 600, Verdict.hold),
    ("held stays held even once enough rows arrive", 500, 500, True, 700, Verdict.hold),
    ("a verdict before maxSeconds wins over the clock", 100, 100, False, 601, Verdict.passed),
]  # fmt: skip


@pytest.mark.parametrize(
    ("compared", "agreed", "held", "elapsed", "verdict"),
    [c[1:] for c in GATE_CASES],
    ids=[c[0] for c in GATE_CASES],
)
def test_gate_decisions(compared, agreed, held, elapsed, verdict):
    decision = judge_shadow(Shadow.model_validate(SHADOW), figures(compared, agreed, held=held), elapsed)
    assert decision.verdict == verdict
    assert f"{agreed}/{compared} rows agreed" in decision.message


def shadowing(since_s: float = 0, **state: Any):
    return status(Ph.Shadowing, since=T0 - timedelta(seconds=since_s), **state)


STEP_CASES = [
    # name, rollout spec, status before, counted figures, phase after, check asked
    ("ready candidate goes to shadow before any step", {"steps": STEPS, "shadow": SHADOW},
     status(Ph.WaitingForCandidate), None, Ph.Shadowing, None),
    ("quality gate passed goes to shadow", {"steps": STEPS, "qualityGate": GATE, "shadow": SHADOW},
     status(Ph.QualityGate), "gate-pass", Ph.Shadowing, None),
    ("shadow asks for counts once the interval passed", {"steps": STEPS, "shadow": SHADOW},
     shadowing(6), None, Ph.Shadowing, Check.shadow),
    ("shadow waits within the interval", {"steps": STEPS, "shadow": SHADOW},
     shadowing(1), None, Ph.Shadowing, None),
    ("agreement enters the first step", {"steps": STEPS, "shadow": SHADOW},
     shadowing(30), figures(150, 149), Ph.Stepping, None),
    ("agreement without steps promotes", {"shadow": SHADOW},
     shadowing(30), figures(150, 149), Ph.PostPromotion, None),
    ("disagreement aborts", {"steps": STEPS, "shadow": SHADOW},
     shadowing(30), figures(150, 60), Ph.Aborted, None),
    ("too few rows keeps shadowing", {"steps": STEPS, "shadow": SHADOW},
     shadowing(30), figures(20, 20), Ph.Shadowing, None),
    ("spec without shadow leaves the phase", {"steps": STEPS},
     shadowing(30), None, Ph.Stepping, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rollout", "before", "seen", "phase", "check"),
    [c[1:] for c in STEP_CASES],
    ids=[c[0] for c in STEP_CASES],
)
def test_step_function_in_and_out_of_the_shadow_phase(rollout, before, seen, phase, check):
    observed = observe(green=(NEW, 2))
    if seen == "gate-pass":
        from test_rollout import PASS

        observed = observed.with_results({Check.quality_gate: PASS})
    elif seen is not None:
        observed = observed.__class__(**{**observed.__dict__, "shadow": seen})
    plan = plan_rollout_step(spec(**rollout), NEW, before, observed, T0)
    assert plan.status.rollout.phase == phase
    assert plan.check == check


def with_shadow(observed, seen: ShadowFigures):
    return observed.__class__(**{**observed.__dict__, "shadow": seen})


def test_disagreement_aborts_with_reason_and_figures_in_the_message():
    plan = plan_rollout_step(
        spec(steps=STEPS, shadow=SHADOW),
        NEW,
        shadowing(30),
        with_shadow(observe(green=(NEW, 2)), figures(200, 70, dropped=3)),
        T0,
    )
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "ShadowDisagreement")]
    assert "70/200 rows agreed (35.0%)" in plan.status.rollout.abort_reason
    assert "3 copies dropped" in plan.status.rollout.abort_reason
    assert plan.status.rollout.shadow.agreement == pytest.approx(0.35)
    assert plan.status.history[0].outcome == "Aborted"


def test_inconclusive_after_max_seconds_pauses_for_a_person_once():
    observed = with_shadow(observe(green=(NEW, 2)), figures(12, 12))
    plan = plan_rollout_step(spec(steps=STEPS, shadow=SHADOW), NEW, shadowing(601), observed, T0)
    state = plan.status.rollout
    assert state.phase == Ph.Shadowing and state.shadow.held
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "ShadowInconclusive")]
    assert "promote to go on" in state.message
    assert overall_phase(spec(shadow=SHADOW), plan.status, 2, False, True) == Phase.Paused
    again = plan_rollout_step(
        spec(steps=STEPS, shadow=SHADOW), NEW, plan.status, observed, T0 + timedelta(seconds=6)
    )
    assert again.events == [] and again.status.rollout.shadow.held


@pytest.mark.parametrize(
    ("action", "phase"), [("promote", Ph.Stepping), ("abort", Ph.Aborted), ("promoteFull", Ph.PostPromotion)]
)
def test_promote_and_abort_work_in_the_shadow_phase(action, phase):
    before = shadowing(700, control=control(action), shadow=figures(3, 3, held=True))
    plan = plan_rollout_step(spec(steps=STEPS, shadow=SHADOW), NEW, before, observe(green=(NEW, 2)), T0)
    assert plan.status.rollout.phase == phase


def test_the_shadow_phase_sends_no_traffic_to_the_candidate():
    placement = plan_placement(
        spec(steps=STEPS, shadow=SHADOW), NEW, shadowing(30), observe(green=(NEW, 2)), T0
    )
    assert placement.route_weights == {"blue": 100, "green": 0}
    assert placement.stable_colors == (Color.blue,)


def test_a_retry_starts_with_fresh_figures_and_a_new_phase_id():
    aborted = status(Ph.Aborted, control=control("retry"), shadow=figures(200, 70))
    plan = plan_rollout_step(spec(steps=STEPS, shadow=SHADOW), NEW, aborted, observe(green=(NEW, 2)), T0)
    assert plan.status.rollout.phase == Ph.WaitingForCandidate and plan.status.rollout.shadow is None


MD = {"metadata": {"name": "iris", "namespace": "ml", "uid": "u-1"}}


def test_config_map_turns_the_copy_on_only_in_the_shadow_phase():
    wanted = spec(steps=STEPS, shadow=SHADOW)
    on = shadow_settings(MD, wanted, shadowing(30))
    assert on["enabled"] and on["url"] == "http://iris-green.ml.svc:80" and on["percent"] == 10
    assert on["id"] == shadow_id(shadowing(30).rollout)
    for phase in (Ph.Stepping, Ph.WaitingForCandidate, Ph.Completed):
        assert shadow_settings(MD, wanted, status(phase)) == {"enabled": False}
    built = build_shadow_config(MD, wanted, shadowing(30))
    assert built["kind"] == "ConfigMap" and built["metadata"]["name"] == "iris-shadow"
    assert json.loads(built["data"]["shadow.json"]) == on


def test_the_token_differs_per_object_and_per_phase():
    wanted = spec(steps=STEPS, shadow=SHADOW)
    token = shadow_settings(MD, wanted, shadowing(30))["token"]
    other_uid = {"metadata": {**MD["metadata"], "uid": "u-2"}}
    assert shadow_settings(other_uid, wanted, shadowing(30))["token"] != token
    assert shadow_settings(MD, wanted, shadowing(90))["token"] != token


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("percent", 0, "greater than 0"),
        ("percent", 101, "less than or equal to 100"),
        ("minAgreement", 1.5, "less than or equal to 1"),
        ("minRequests", 0, "greater than or equal to 1"),
        ("maxSeconds", 5, "greater than or equal to 10"),
    ],
)
def test_shadow_bounds_are_refused_with_the_field_named(field, value, rule):
    with pytest.raises(ValueError) as err:
        parse_spec({"model": {"uri": "https://m.example/m.onnx"}, "rollout": {"shadow": {field: value}}})
    assert field in str(err.value) and rule in str(err.value)


_LABELS = 'version="3",revision="old",color="blue"'
EXPOSITION = "\n".join(
    [
        "# TYPE modelserve_shadow_copies_total counter",
        f'modelserve_shadow_copies_total{{model="iris",{_LABELS},shadow="p1",outcome="sent"}} 40.0',
        f'modelserve_shadow_copies_total{{model="iris",{_LABELS},shadow="p1",outcome="dropped"}} 2.0',
        f'modelserve_shadow_copies_total{{model="iris",{_LABELS},shadow="p0",outcome="sent"}} 900.0',
        "# TYPE modelserve_shadow_rows_total counter",
        f'modelserve_shadow_rows_total{{model="iris",{_LABELS},shadow="p1",outcome="agreed"}} 38.0',
        f'modelserve_shadow_rows_total{{model="iris",{_LABELS},shadow="p1",outcome="disagreed"}} 5.0',
        f'modelserve_shadow_rows_total{{model="other",{_LABELS},shadow="p1",outcome="agreed"}} 7.0',
        f'modelserve_requests_total{{model="iris",{_LABELS},route="/predict",status_code="200"}} 5.0',
        "",
    ]
)


def test_only_the_current_phase_of_this_model_is_counted():
    from modeldeploy.probes.shadow import parse_shadow_counts

    assert parse_shadow_counts(EXPOSITION, "p1", "iris") == {
        "sent": 40,
        "dropped": 2,
        "agreed": 38,
        "disagreed": 5,
    }
