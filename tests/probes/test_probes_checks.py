"""run_check / color_stats: the seam the reconciler calls with plan.check, driven by a real spec and status,
against real modelserve processes (the active colour, a candidate behind the preview, candidate pods)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from harness.probes import clean_rows, marker_rows, run_probe, send_rows
from harness.rollout import drifted_rows
from modeldeploy.api import ModelDeploymentStatus, parse_spec
from modeldeploy.desired.rollout import Check
from modeldeploy.probes import StaticResolver
from modeldeploy.probes.checks import CHECK_NAMES, CheckContext, analysis_with_stats, color_stats, run_check

from .conftest import ANALYSIS_REVISION, DRIFT_REVISION, DRIFT_WINDOW_ROWS

V2 = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def _spec(dataset_url: str, max_regression: float = 0.05):
    dataset = {"datasetUri": f"{dataset_url}/holdout.csv", "labelColumn": "species", "metric": "accuracy"}
    return parse_spec(
        {
            "model": {"uri": "https://m.example/iris/model.joblib", "allowUnverifiedPickle": True},
            "replicas": 2,
            "rollout": {
                "steps": [{"weight": 50, "pauseSeconds": 60}],
                "smoke": {
                    "requests": [{"path": "/v2/models/iris/infer", "body": V2, "expectedOutputShape": [1]}]
                },
                "qualityGate": {**dataset, "threshold": 0.5, "maxRegression": max_regression},
                "analysis": {"maxErrorRate": 0.05, "minRequests": 10},
            },
            "monitoring": {"evaluation": {**dataset, "threshold": 0.9}},
        }
    )


def _status(step_started_at: datetime) -> ModelDeploymentStatus:
    return ModelDeploymentStatus.model_validate(
        {
            "activeColor": "blue",
            "activeRevision": "rev-good",
            "rollout": {
                "phase": "Stepping",
                "color": "green",
                "revision": ANALYSIS_REVISION,
                "stepStartedAt": step_started_at.isoformat(),
            },
        }
    )


def _resolver(quality_servers, candidate_pods, preview: str) -> StaticResolver:
    return StaticResolver(
        pods={"green": [p.url for p in candidate_pods], "blue": [quality_servers["blue"].url]},
        services={"iris-preview": quality_servers[preview].url, "iris-blue": quality_servers["blue"].url},
    )


def test_check_names_are_the_step_functions_checks():
    assert tuple(c.value for c in Check) == CHECK_NAMES


@pytest.mark.parametrize(
    ("preview", "check", "passed", "needle"),
    [
        ("green-good", Check.smoke, True, "1 of 1 requests passed"),
        ("green-good", Check.quality_gate, True, "(active model"),
        ("green-weaker", Check.quality_gate, False, "worse than the active model"),
        ("green-bad", Check.quality_gate, False, "< threshold 0.5"),
        (
            "green-bad",
            Check.evaluation,
            True,
            "accuracy",
        ),  # evaluation asks the active colour, not the preview
    ],
)
def test_each_check_talks_to_the_right_colour(
    quality_servers, candidate_pods, dataset_url, preview, check, passed, needle
):
    ctx = CheckContext("ml", "iris", _spec(dataset_url), _status(datetime.now(UTC)))
    run = run_probe(_resolver(quality_servers, candidate_pods, preview), lambda c: run_check(c, check, ctx))
    assert run.result.passed is passed, run.result.message
    assert needle in run.result.message
    assert run.baselines == {}


def test_analysis_keeps_its_baseline_between_passes_and_judges_the_candidate(
    quality_servers, candidate_pods, dataset_url
):
    resolver = _resolver(quality_servers, candidate_pods, "green-good")
    ctx = CheckContext("ml", "iris", _spec(dataset_url), _status(datetime.now(UTC)))
    first = run_probe(resolver, lambda c: run_check(c, Check.analysis, ctx))
    assert first.result.passed is None and set(first.baselines) == {"green"}

    assert send_rows(candidate_pods[0].url, clean_rows(10)) == [200] * 10
    assert send_rows(candidate_pods[1].url, marker_rows(2)) == [500] * 2
    send_rows(
        quality_servers["blue"].url, marker_rows(1)
    )  # the active colour's traffic is not the candidate's
    again = CheckContext("ml", "iris", ctx.spec, ctx.status, baselines=first.baselines)
    second = run_probe(resolver, lambda c: run_check(c, Check.analysis, again))
    assert second.result.passed is False
    assert second.result.requests == 12 and second.result.error_rate == pytest.approx(2 / 12)
    assert second.baselines == first.baselines


def test_color_stats_show_both_colours_side_by_side(quality_servers, candidate_pods, dataset_url):
    resolver = _resolver(quality_servers, candidate_pods, "green-good")
    ctx = CheckContext("ml", "iris", _spec(dataset_url), _status(datetime.now(UTC)))
    _, baselines = run_probe(resolver, lambda c: color_stats(c, ctx))
    assert set(baselines) == {"blue", "green"}
    send_rows(quality_servers["blue"].url, clean_rows(6))
    send_rows(candidate_pods[0].url, clean_rows(3) + marker_rows(1))
    later = CheckContext("ml", "iris", ctx.spec, ctx.status, baselines=baselines)
    stats, _ = run_probe(resolver, lambda c: color_stats(c, later))
    by_color = {s.color.value: s for s in stats}
    assert (by_color["blue"].revision, by_color["blue"].requests, by_color["blue"].error_rate) == (
        "rev-good",
        6,
        0.0,
    )
    assert (by_color["green"].revision, by_color["green"].requests) == (ANALYSIS_REVISION, 4)
    assert by_color["green"].error_rate == pytest.approx(0.25)
    assert by_color["green"].latency_p99_ms is not None


def test_analysis_with_stats_gives_the_verdict_and_both_colours_from_one_round(
    quality_servers, candidate_pods, dataset_url
):
    resolver = _resolver(quality_servers, candidate_pods, "green-good")
    ctx = CheckContext("ml", "iris", _spec(dataset_url), _status(datetime.now(UTC)))
    first, _, baselines = run_probe(resolver, lambda c: analysis_with_stats(c, ctx))
    assert first.result.passed is None and set(baselines) == {"blue", "green"}
    send_rows(quality_servers["blue"].url, clean_rows(6))
    send_rows(candidate_pods[0].url, clean_rows(9) + marker_rows(3))
    later = CheckContext("ml", "iris", ctx.spec, ctx.status, baselines=baselines)
    run, stats, kept = run_probe(resolver, lambda c: analysis_with_stats(c, later))
    assert run.result.passed is False and run.result.requests == 12
    assert kept == baselines  # the windows go on
    by_color = {s.color.value: s for s in stats}
    green = by_color["green"]  # the verdict's own figures: the candidate is scraped once
    assert (green.revision, green.requests, green.error_rate) == (
        ANALYSIS_REVISION,
        12,
        run.result.error_rate,
    )
    assert (by_color["blue"].revision, by_color["blue"].requests) == ("rev-good", 6)


def test_unknown_check_names_the_choices():
    ctx = CheckContext("ml", "iris", _spec("http://x"), _status(datetime.now(UTC)))
    with pytest.raises(ValueError, match="check: unknown check 'canary'; expected one of smoke"):
        run_probe(StaticResolver({}), lambda c: run_check(c, "canary", ctx))


def test_drift_check_reads_the_active_pods_and_names_the_shifted_feature(drift_pods):
    """One pod sees rows from the reference, the other the same rows with sepal width (feature_1) shifted by
    two standard deviations: the combined index crosses 0.25 on that feature only."""
    steady, shifted = drift_pods
    assert set(send_rows(steady.url, drifted_rows(DRIFT_WINDOW_ROWS, feature=-1, seed=1))) == {200}
    assert set(send_rows(shifted.url, drifted_rows(DRIFT_WINDOW_ROWS, feature=1, seed=2))) == {200}
    spec = parse_spec(
        {
            "model": {"uri": "https://m.example/iris/model.joblib", "allowUnverifiedPickle": True},
            "monitoring": {"drift": {"referenceUri": "https://m.example/iris/ref.csv", "sha256": "ab" * 32}},
        }
    )
    status = ModelDeploymentStatus.model_validate({"activeColor": "blue", "activeRevision": DRIFT_REVISION})
    resolver = StaticResolver(pods={"blue": [p.url for p in drift_pods]})
    run = run_probe(resolver, lambda c: run_check(c, Check.drift, CheckContext("ml", "iris", spec, status)))
    figures = run.drift
    assert figures is not None and (figures.pods, figures.rows) == (2, 2 * DRIFT_WINDOW_ROWS), figures
    psi = {f.feature: f.psi for f in figures.features}
    assert psi["feature_1"] > 0.25 and figures.features[0].feature == "feature_1", psi
    assert all(v < 0.25 for f, v in psi.items() if f != "feature_1"), psi
    assert run.result.score == figures.features[0].psi
