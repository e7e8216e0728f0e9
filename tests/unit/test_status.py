"""Truthful status: pod failure causes quoted, conditions per API conventions, effective traffic, and the
whole pure pass (rollout step + children + status) over plain dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldeploy.api import CheckResult, Color, ColorStats, DriftFeature, DriftStatus, parse_spec
from modeldeploy.desired import CheckReport, rollout_pass
from modeldeploy.desired.deployment import build_deployment
from modeldeploy.desired.params import BuildParams
from modeldeploy.desired.pods import InitRunning, longest_init, pod_failure
from modeldeploy.desired.revision import revision_of
from modeldeploy.desired.rollout import Check

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
PARAMS = BuildParams(default_image="modelserve:test")
URI = "https://models.example/iris/model.onnx"


def pod(name="iris-blue-1", color="blue", revision="r", ready=False, init=None, main=None, conditions=()):
    status: dict[str, Any] = {"phase": "Running" if ready else "Pending"}
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}, *conditions]
    if init is not None:
        status["initContainerStatuses"] = [{"name": "fetch-model", **init}]
    if main is not None:
        status["containerStatuses"] = [{"name": "modelserve", **main}]
    labels = {
        "modeldeploy.io/name": "iris",
        "modeldeploy.io/color": color,
        "modeldeploy.io/revision": revision,
    }
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def crashloop(code: int, message: str = "", reason: str = "Error") -> dict[str, Any]:
    return {
        "state": {
            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}
        },
        "lastState": {"terminated": {"exitCode": code, "reason": reason, "message": message}},
    }


FAILURES = [
    ("model load failure quotes the termination message",
     pod(main=crashloop(1, "cannot load /models/model.onnx: not an ONNX file\n")), "ModelLoadFailed",
     "exited with code 1: cannot load /models/model.onnx: not an ONNX file (CrashLoopBackOff)"),
    ("failed warm-up quotes the prediction error",
     pod(main=crashloop(5, "model warm-up failed: prediction on a sample row raised ValueError: bad shape")),
     "WarmupFailed", "exited with code 5: model warm-up failed: prediction on a sample row raised"),
    ("warm-up failed, not yet crash looping",
     pod(main={"state": {"terminated": {"exitCode": 5, "message": "model warm-up failed: boom"}}}),
     "WarmupFailed", "container modelserve exited with code 5: model warm-up failed: boom"),
    ("bad configuration", pod(main=crashloop(2, "MODELSERVE_WORKERS: must be >= 1")), "InvalidConfiguration",
     "MODELSERVE_WORKERS: must be >= 1"),
    ("oom killed while crash looping", pod(main=crashloop(137, reason="OOMKilled")), "OOMKilled",
     "was OOM-killed; raise resources.limits.memory"),
    ("oom killed, running again", pod(main={"state": {"running": {}}, "lastState": {"terminated": {
        "exitCode": 137, "reason": "OOMKilled"}}}), "OOMKilled", "OOM-killed"),
    ("image pull back-off", pod(main={"state": {"waiting": {"reason": "ImagePullBackOff",
                                                            "message": 'Back-off pulling image "nope:1"'}}}),
     "ImagePullBackOff", 'container modelserve ImagePullBackOff: Back-off pulling image "nope:1"'),
    ("err image pull", pod(main={"state": {"waiting": {"reason": "ErrImagePull"}}}), "ErrImagePull",
     "ErrImagePull"),
    ("image absent with pull policy Never", pod(main={"state": {"waiting": {
        "reason": "ErrImageNeverPull",
        "message": 'Container image "localhost/absent:1" is not present with pull policy of Never'}}}),
     "ErrImageNeverPull", 'container modelserve ErrImageNeverPull: Container image "localhost/absent:1"'),
    ("checksum mismatch in the fetch init container",
     pod(init={"state": {"terminated": {"exitCode": 3, "message": "sha256 mismatch: got ab12, want 4f2c"}}}),
     "ChecksumMismatch", "container fetch-model exited with code 3: sha256 mismatch: got ab12, want 4f2c"),
    ("checksum mismatch, the fetch running again after it",
     pod(init={"state": {"running": {"startedAt": "2026-01-01T12:00:00Z"}}, "ready": False,
               "restartCount": 2,
               "lastState": {"terminated": {"exitCode": 3, "message": "digest mismatch: 4f2c"}}}),
     "ChecksumMismatch", "fetch-model exited with code 3: digest mismatch: 4f2c (restarts: 2)"),
    ("download failure, fetch crash looping", pod(init=crashloop(4, "GET https://m/x: 404")),
     "ModelDownloadFailed", "GET https://m/x: 404"),
    ("missing secret", pod(main={"state": {"waiting": {"reason": "CreateContainerConfigError",
                                                       "message": 'secret "iris-keys" not found'}}}),
     "CreateContainerConfigError", 'secret "iris-keys" not found'),
    ("unschedulable", pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                       "message": "0/2 nodes are available: 2 Insufficient memory."}]),
     "Unschedulable", "Insufficient memory"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "reason", "quote"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_pod_failure_names_the_cause(body, reason, quote):
    found = pod_failure(body)
    assert found is not None
    assert found.reason == reason
    assert quote in found.message and "iris-blue-1" in found.message


@pytest.mark.parametrize(
    "body",
    [
        pod(ready=True, main={"state": {"running": {}}}),
        pod(main={"state": {"waiting": {"reason": "ContainerCreating"}}}),
        pod(
            init={"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            main={"state": {"running": {}}},
        ),
        pod(
            ready=True,
            main={
                "state": {"running": {}},
                "ready": True,
                "restartCount": 1,
                "lastState": {"terminated": {"exitCode": 1, "message": "a crash long ago"}},
            },
        ),
    ],
    ids=["ready", "starting", "fetch finished", "ready again after a crash"],
)
def test_healthy_or_starting_pod_has_no_failure(body):
    assert pod_failure(body) is None


def test_longest_running_init_container_is_named_with_its_start():
    fetching = [
        pod("iris-blue-2", init={"state": {"running": {"startedAt": "2026-01-01T12:00:30Z"}}}),
        pod("iris-blue-1", init={"state": {"running": {"startedAt": "2026-01-01T12:00:05Z"}}}),
        pod("iris-blue-3", init={"state": {"terminated": {"exitCode": 0}}}, main={"state": {"running": {}}}),
    ]
    assert longest_init(fetching) == InitRunning(
        "pod iris-blue-1: init container fetch-model", "2026-01-01T12:00:05Z"
    )
    assert longest_init(fetching[2:]) is None


def test_long_termination_message_is_shortened():
    found = pod_failure(pod(main=crashloop(1, "x" * 2000)))
    assert found is not None and len(found.message) < 500 and found.message.endswith("... (CrashLoopBackOff)")


# ---------------------------------------------------------------------------------------------------------
# the whole pass


@dataclass
class Observed:
    children: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)


def body(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {"name": "iris", "namespace": "ml", "uid": "u-1", "generation": 7}
    out = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "metadata": meta, "spec": spec}
    if status is not None:
        out["status"] = status
    return out


def live(children: list[dict[str, Any]], ready: dict[str, int] | None = None) -> dict[tuple[str, str], dict]:
    """What the API server would hold after applying `children`, with Deployment status filled in."""
    out = {}
    for child in children:
        copy = {**child, "metadata": {**child["metadata"], "generation": 1}}
        if child["kind"] == "Deployment":
            color = child["metadata"]["labels"]["modeldeploy.io/color"]
            n = (ready or {}).get(color, 0)
            copy["status"] = {"observedGeneration": 1, "replicas": child["spec"]["replicas"],
                              "updatedReplicas": child["spec"]["replicas"], "readyReplicas": n}  # fmt: skip
        out[(child["kind"], child["metadata"]["name"])] = copy
    return out


def ready_pods(color: str, revision: str, n: int) -> list[dict[str, Any]]:
    return [
        pod(f"iris-{color}-{i}", color, revision, ready=True, main={"state": {"running": {}}})
        for i in range(n)
    ]


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


SPEC = {"model": {"uri": URI, "version": "3"}, "replicas": 2}
REV = revision_of(parse_spec(SPEC))


def converge(spec: dict[str, Any], passes: int, ready: dict[str, int], now: datetime = T0):
    """Runs the pass repeatedly as the reconciler would: apply children, persist status."""
    status = None
    observed = Observed()
    result = None
    for i in range(passes):
        result = rollout_pass(
            body(spec, status), parse_spec(spec), observed, PARAMS, now + timedelta(seconds=i)
        )
        rev = revision_of(parse_spec(spec))
        observed = Observed(
            live(result.children, ready), [p for c, n in ready.items() for p in ready_pods(c, rev, n)]
        )
        status = result.status
    return result, observed


def test_first_pass_is_pending_and_says_what_it_waits_for():
    result = rollout_pass(body(SPEC), parse_spec(SPEC), Observed(), PARAMS, T0)
    status = result.status
    assert status["phase"] == "Pending" and status["observedGeneration"] == 7
    ready = conditions(status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "NoRevisionServing")
    assert conditions(status)["Progressing"]["status"] == "True"
    assert conditions(status)["Degraded"]["status"] == "False"
    kinds = sorted((c["kind"], c["metadata"]["name"]) for c in result.children)
    assert ("Deployment", "iris-blue") in kinds and ("Deployment", "iris-green") in kinds
    assert ("PodDisruptionBudget", "iris") in kinds


def test_ready_pods_make_it_healthy_with_url_selector_and_traffic():
    result, _ = converge(SPEC, 3, {"blue": 2})
    status = result.status
    assert status["phase"] == "Healthy"
    assert conditions(status)["Ready"] == {
        **conditions(status)["Ready"],
        "status": "True",
        "reason": "AllReplicasReady",
    }
    assert (status["activeColor"], status["activeRevision"], status["modelVersion"]) == ("blue", REV, "3")
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert status["selector"] == "modeldeploy.io/name=iris,modeldeploy.io/color=blue"
    assert status["url"] == "http://iris.ml.svc"
    assert status["traffic"] == [{"color": "blue", "revision": REV, "weight": 100}]
    assert status["trafficSummary"] == "blue=100"


def test_steady_state_status_does_not_change_and_keeps_transition_times():
    first, observed = converge(SPEC, 3, {"blue": 2})
    later = rollout_pass(
        body(SPEC, first.status), parse_spec(SPEC), observed, PARAMS, T0 + timedelta(hours=5)
    )
    assert later.status == first.status  # nothing to write
    assert later.children == first.children


def test_crash_looping_pods_make_it_degraded_with_the_quoted_cause():
    result, observed = converge(SPEC, 3, {"blue": 2})
    observed.pods[0] = pod(
        "iris-blue-0", "blue", REV, main=crashloop(1, "model load failed: bad magic number")
    )
    observed.children[("Deployment", "iris-blue")]["status"]["readyReplicas"] = 1
    after = rollout_pass(
        body(SPEC, result.status), parse_spec(SPEC), observed, PARAMS, T0 + timedelta(minutes=1)
    )
    degraded = conditions(after.status)["Degraded"]
    assert degraded["status"] == "True" and degraded["reason"] == "ModelLoadFailed"
    assert "bad magic number" in degraded["message"] and degraded["message"].startswith("active blue:")
    assert after.status["phase"] == "Degraded"
    assert conditions(after.status)["Ready"]["status"] == "False"
    assert degraded["lastTransitionTime"] == "2026-01-01T12:01:00Z"
    assert conditions(after.status)["Progressing"]["lastTransitionTime"] == first_time(
        result.status, "Progressing"
    )


def first_time(status: dict[str, Any], ctype: str) -> str:
    return conditions(status)[ctype]["lastTransitionTime"]


def test_nothing_ready_and_failing_first_deployment_is_failed():
    broken = [
        pod("iris-blue-0", "blue", REV, init={"state": {"terminated": {"exitCode": 3, "message": "digest"}}})
    ]
    result = rollout_pass(body(SPEC), parse_spec(SPEC), Observed(pods=broken), PARAMS, T0)
    assert result.status["phase"] == "Failed"
    assert conditions(result.status)["Degraded"]["reason"] == "ChecksumMismatch"


def test_spec_change_starts_candidate_on_green_and_only_scales_blue():
    result, observed = converge(SPEC, 3, {"blue": 2})
    new_spec = {**SPEC, "model": {"uri": URI, "version": "4"}}
    new_rev = revision_of(parse_spec(new_spec))
    after = rollout_pass(
        body(new_spec, result.status), parse_spec(new_spec), observed, PARAMS, T0 + timedelta(1)
    )
    assert after.transition == "Completed -> WaitingForCandidate"
    deployments = {c["metadata"]["name"]: c for c in after.children if c["kind"] == "Deployment"}
    assert deployments["iris-green"]["metadata"]["labels"]["modeldeploy.io/revision"] == new_rev
    assert deployments["iris-green"]["spec"]["replicas"] == 2
    assert deployments["iris-blue"] == observed_manifest(
        observed, "iris-blue"
    )  # old revision rebuilt as it was
    assert after.status["candidateRevision"] == new_rev and after.status["activeRevision"] == REV
    stable = next(c for c in after.children if c["kind"] == "Service" and c["metadata"]["name"] == "iris")
    assert stable["spec"]["selector"]["modeldeploy.io/color"] == "blue"
    preview = next(c for c in after.children if c["metadata"]["name"] == "iris-preview")
    assert preview["spec"]["selector"]["modeldeploy.io/color"] == "green"


def observed_manifest(observed: Observed, name: str) -> dict[str, Any]:
    live_obj = observed.children[("Deployment", name)]
    out = {k: v for k, v in live_obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in live_obj["metadata"].items() if k != "generation"}
    return out


def test_old_revision_is_rebuilt_from_its_saved_spec_even_after_image_default_changes():
    spec = parse_spec(SPEC)
    old = build_deployment(body(SPEC), spec, Color.blue, REV, 2, PARAMS)
    new_params = BuildParams(default_image="modelserve:next")
    new_spec = {**SPEC, "model": {"uri": URI, "version": "4"}}
    status = {"activeColor": "blue", "activeRevision": REV, "rollout": {"phase": "Completed", "revision": REV,
                                                                        "color": "blue"}}  # fmt: skip
    observed = Observed({("Deployment", "iris-blue"): old}, ready_pods("blue", REV, 2))
    after = rollout_pass(body(new_spec, status), parse_spec(new_spec), observed, new_params, T0)
    blue = next(c for c in after.children if c["metadata"]["name"] == "iris-blue")
    assert blue == old
    green = next(c for c in after.children if c["metadata"]["name"] == "iris-green")
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == "modelserve:next"


@pytest.mark.parametrize("saved", ["{not json", '{"spec": {"replicas": "many"}}', '["a list"]', "{}"])
def test_an_unreadable_saved_spec_scales_the_live_copy_instead_of_failing_the_pass(saved):
    spec = parse_spec(SPEC)
    old = build_deployment(body(SPEC), spec, Color.blue, REV, 2, PARAMS)
    old["metadata"]["annotations"]["modeldeploy.io/template-spec"] = saved  # edited by someone
    new_spec = {**SPEC, "model": {"uri": URI, "version": "4"}}
    status = {"activeColor": "blue", "activeRevision": REV, "rollout": {"phase": "Completed", "revision": REV,
                                                                        "color": "blue"}}  # fmt: skip
    observed = Observed({("Deployment", "iris-blue"): old}, ready_pods("blue", REV, 2))
    after = rollout_pass(body(new_spec, status), parse_spec(new_spec), observed, PARAMS, T0)
    blue = next(c for c in after.children if c["metadata"]["name"] == "iris-blue")
    assert blue["spec"]["template"] == old["spec"]["template"]
    assert after.status["rollout"]["phase"] == "WaitingForCandidate"


def test_rollout_control_written_by_a_person_survives_the_status_write():
    control = {"action": "abort", "requestId": "7"}
    result, observed = converge(SPEC, 3, {"blue": 2})
    after = rollout_pass(
        body(SPEC, {**result.status, "rolloutControl": control}), parse_spec(SPEC), observed, PARAMS
    )
    assert after.status["rolloutControl"] == control
    assert after.status["rollout"]["handledRequestId"] == "7"


def test_service_based_split_reports_ready_endpoint_share():
    spec = {**SPEC, "rollout": {"steps": [{"weight": 50, "pauseSeconds": 600}]}}
    new_rev = "feedface00"
    status = {"activeColor": "blue", "activeRevision": REV, "candidateRevision": new_rev,
              "rollout": {"phase": "Stepping", "revision": new_rev, "color": "green", "stepIndex": 0,
                          "stepStartedAt": "2026-01-01T12:00:00Z",
                          "phaseStartedAt": "2026-01-01T12:00:00Z"}}  # fmt: skip
    services = {
        ("Service", "iris"): {"kind": "Service", "spec": {"selector": {"modeldeploy.io/name": "iris"}}}
    }
    deployments = {
        ("Deployment", f"iris-{c}"): {"metadata": {"labels": {}}, "spec": {
            "replicas": 2, "template": {"metadata": {"labels": {"modeldeploy.io/revision": r}}}}}
        for c, r in (("blue", REV), ("green", new_rev))
    }  # fmt: skip
    pods = ready_pods("blue", REV, 2) + ready_pods("green", new_rev, 1)
    observed = Observed({**services, **deployments}, pods)
    after = rollout_pass(body(spec, status), parse_spec(spec), observed, PARAMS, T0 + timedelta(seconds=10))
    assert after.status["traffic"] == [
        {"color": "blue", "revision": REV, "weight": 67},
        {"color": "green", "revision": new_rev, "weight": 33},
    ]
    assert after.status["trafficSummary"] == "blue=67 green=33"


def test_a_requested_check_runs_between_two_calls_of_the_same_pass():
    spec = {
        **SPEC,
        "model": {"uri": URI, "version": "4"},
        "rollout": {"smoke": {"requests": [{"body": [1]}]}},
    }
    new_rev = revision_of(parse_spec(spec))
    status = {"activeColor": "blue", "activeRevision": REV, "candidateRevision": new_rev,
              "rollout": {"phase": "SmokeTesting", "revision": new_rev, "color": "green"}}  # fmt: skip
    observed = Observed(pods=ready_pods("blue", REV, 2) + ready_pods("green", new_rev, 2))
    asked = rollout_pass(body(spec, status), parse_spec(spec), observed, PARAMS, T0)
    assert asked.check == Check.smoke and asked.status["rollout"]["phase"] == "SmokeTesting"
    result = CheckResult(passed=True, message="1/1 requests answered 200 with shape [1]")
    report = CheckReport(results={Check.smoke: result})
    done = rollout_pass(body(spec, status), parse_spec(spec), observed, PARAMS, T0, report)
    assert done.check is None and done.transition == "SmokeTesting -> Promoting"
    assert done.status["rollout"]["smoke"]["passed"] is True
    assert [e.reason for e in done.events] == ["CheckPassed"]


def test_per_colour_stats_show_side_by_side_and_persist_when_not_rescraped():
    result, observed = converge(SPEC, 3, {"blue": 2})
    stats = [
        ColorStats(color=Color.blue, revision=REV, requests=120, error_rate=0.0, latency_p99_ms=12.5),
        ColorStats(color=Color.green, revision="x", requests=118, error_rate=0.01, latency_p99_ms=14.0),
    ]
    scraped = rollout_pass(
        body(SPEC, result.status), parse_spec(SPEC), observed, PARAMS, T0, CheckReport(color_stats=stats)
    )
    assert [c["requests"] for c in scraped.status["colors"]] == [120, 118]
    quiet = rollout_pass(body(SPEC, scraped.status), parse_spec(SPEC), observed, PARAMS, T0 + timedelta(1))
    assert quiet.status == scraped.status


def test_a_check_report_puts_analysis_windows_into_the_same_status_and_an_equal_one_changes_nothing():
    result, observed = converge(SPEC, 3, {"blue": 2})
    windows = {"green": {"takenAt": "2026-01-01T12:00:04Z", "pods": {"10.0.0.1": {"requests": 5}}}}
    report = CheckReport(baselines=windows)
    saved = rollout_pass(body(SPEC, result.status), parse_spec(SPEC), observed, PARAMS, T0, report)
    assert saved.status["rollout"]["analysisBaselines"] == windows
    again = rollout_pass(body(SPEC, saved.status), parse_spec(SPEC), observed, PARAMS, T0, report)
    assert again.status == saved.status
    assert (
        "analysisBaselines"
        not in rollout_pass(
            body(SPEC, result.status), parse_spec(SPEC), observed, PARAMS, T0, CheckReport(baselines={})
        ).status["rollout"]
    )


EVALUATED = {
    **SPEC,
    "monitoring": {
        "evaluation": {
            "datasetUri": "https://d.example/fresh.csv",
            "labelColumn": "y",
            "metric": "accuracy",
            "threshold": 0.9,
        }
    },
}
BELOW = {"passed": False, "message": "accuracy 0.61 < 0.9 (120 rows)", "score": 0.61}
ABOVE = {"passed": True, "message": "accuracy 0.95 >= 0.9 (120 rows)", "score": 0.95}


@pytest.mark.parametrize(
    ("revision", "result", "degraded", "reason"),
    [
        (REV, BELOW, "True", "EvaluationFailed"),
        (REV, ABOVE, "False", "AsExpected"),
        (REV, {"passed": None, "message": "inconclusive: dataset 404"}, "False", "AsExpected"),
        ("rolledback", BELOW, "False", "AsExpected"),  # a verdict on a revision that no longer serves
    ],
    ids=["below threshold", "above threshold", "inconclusive", "verdict on another revision"],
)
def test_live_model_below_its_evaluation_threshold_is_degraded(revision, result, degraded, reason):
    first, observed = converge(EVALUATED, 3, {"blue": 2})
    at = "2026-01-01T12:00:05Z"
    status = {**first.status, "evaluation": {"revision": revision, "result": {**result, "at": at}}}
    after = rollout_pass(
        body(EVALUATED, status), parse_spec(EVALUATED), observed, PARAMS, T0 + timedelta(minutes=1)
    )
    cond = conditions(after.status)["Degraded"]
    assert (cond["status"], cond["reason"]) == (degraded, reason)
    assert conditions(after.status)["Ready"]["status"] == "True"
    if degraded == "True":
        assert REV in cond["message"] and "accuracy 0.61 < 0.9" in cond["message"]
        assert after.status["phase"] == "Degraded"


# ---------------------------------------------------------------------------------------------------------
# drift of the live revision


DRIFT = {"referenceUri": "https://d.example/iris/reference.csv", "sha256": "ab" * 32, "windowRows": 100,
         "threshold": 0.25, "intervalSeconds": 60}  # fmt: skip
DRIFT_SPEC = {**SPEC, "monitoring": {"drift": DRIFT}}
DRIFT_REV = revision_of(parse_spec(DRIFT_SPEC))


def drift_figures(at: datetime, rows: int, **psi: float) -> DriftStatus:
    worst = sorted(psi.items(), key=lambda item: -item[1])
    return DriftStatus(
        revision=DRIFT_REV, rows=rows, pods=2, checked_at=at,
        features=[DriftFeature(feature=name, psi=value) for name, value in worst],
    )  # fmt: skip


def drift_pass(status: dict, observed, at: datetime, report: CheckReport | None = None):
    return rollout_pass(body(DRIFT_SPEC, status), parse_spec(DRIFT_SPEC), observed, PARAMS, at, report)


def test_drift_is_read_once_a_revision_serves_and_again_after_the_interval():
    result, observed = converge(DRIFT_SPEC, 3, {"blue": 2})
    assert result.check == Check.drift
    assert conditions(result.status)["DriftMonitored"]["reason"] == "Waiting"
    read = drift_pass(result.status, observed, T0, CheckReport(drift=drift_figures(T0, 150, a=0.02)))
    assert read.status["drift"]["checkedAt"] == "2026-01-01T12:00:00Z"
    assert (read.check, read.requeue_after) == (None, 60)
    assert conditions(read.status)["DriftMonitored"]["reason"] == "Tracking"
    assert drift_pass(read.status, observed, T0 + timedelta(seconds=59)).check is None
    assert drift_pass(read.status, observed, T0 + timedelta(seconds=60)).check == Check.drift


# (psi of the worst feature per read, rows) -> Events of each read: one per crossing, none while it stays.
CROSSINGS = [
    ([(0.05, 150), (0.6, 150), (0.7, 150), (0.1, 150)], [[], ["DriftDetected"], [], ["DriftCleared"]]),
    ([(0.9, 40), (0.9, 150)], [[], ["DriftDetected"]]),  # a window not yet full gives no verdict
    ([(0.6, 150), (0.6, 40), (0.6, 150)], [["DriftDetected"], [], []]),  # a short window keeps the verdict
]


@pytest.mark.parametrize(("reads", "events"), CROSSINGS, ids=["up and down", "short window", "kept"])
def test_drift_event_once_per_crossing(reads, events):
    result, observed = converge(DRIFT_SPEC, 3, {"blue": 2})
    status, seen = result.status, []
    for i, (psi, rows) in enumerate(reads):
        at = T0 + timedelta(minutes=i)
        read = drift_pass(status, observed, at, CheckReport(drift=drift_figures(at, rows, sepal=psi, b=0.01)))
        seen.append([event.reason for event in read.events])
        status = read.status
    assert seen == events


def test_drift_above_the_threshold_is_in_status_and_the_event_names_the_feature():
    result, observed = converge(DRIFT_SPEC, 3, {"blue": 2})
    figures = drift_figures(T0, 200, petal_length=0.8123, sepal_width=0.03)
    read = drift_pass(result.status, observed, T0, CheckReport(drift=figures))
    drift = read.status["drift"]
    assert drift["drifting"] is True
    assert [f["feature"] for f in drift["features"]] == ["petal_length", "sepal_width"]
    message = "worst feature petal_length: PSI 0.8123 > threshold 0.25 over 200 rows on 2 pod(s)"
    assert drift["message"].startswith(message)
    assert [(e.type, e.reason) for e in read.events] == [("Warning", "DriftDetected")]
    assert read.events[0].message.startswith(message)
    assert conditions(read.status)["DriftMonitored"]["reason"] == "Drifting"
    assert read.status["phase"] == "Healthy"  # drift is reported, it never degrades serving


def test_a_reference_the_pods_could_not_fetch_is_a_condition_and_serving_goes_on():
    result, observed = converge(DRIFT_SPEC, 3, {"blue": 2})
    said = "fetch failed: https://d.example/iris/reference.csv not found"
    observed.pods[0]["status"]["initContainerStatuses"] = [
        {"name": "fetch-model", "state": {"terminated": {"exitCode": 0}}},
        {"name": "fetch-drift-reference", "state": {"terminated": {"exitCode": 0, "message": said + "\n"}}},
    ]
    after = drift_pass(result.status, observed, T0 + timedelta(seconds=5))
    drift = conditions(after.status)["DriftMonitored"]
    assert (drift["status"], drift["reason"]) == ("False", "DriftReferenceUnavailable")
    assert f"pod iris-blue-0: {said}" in drift["message"] and "serving is unaffected" in drift["message"]
    assert after.status["phase"] == "Healthy" and conditions(after.status)["Degraded"]["status"] == "False"


def test_pods_that_export_no_drift_figures_say_so():
    result, observed = converge(DRIFT_SPEC, 3, {"blue": 2})
    read = drift_pass(result.status, observed, T0, CheckReport(drift=drift_figures(T0, 0)))
    drift = conditions(read.status)["DriftMonitored"]
    assert (drift["status"], drift["reason"]) == ("False", "DriftNotTracked")
    assert "drift_disabled" in drift["message"]


def test_dropping_drift_from_the_spec_drops_its_condition_and_figures():
    result, observed = converge(DRIFT_SPEC, 3, {"blue": 2})
    read = drift_pass(result.status, observed, T0, CheckReport(drift=drift_figures(T0, 150, a=0.02)))
    after = rollout_pass(body(SPEC, read.status), parse_spec(SPEC), observed, PARAMS, T0)
    assert "DriftMonitored" not in conditions(after.status) and "drift" not in after.status


# (spec the old colour ran, spec now): the old colour keeps the reference its pods were built with.
REBUILT = [
    (SPEC, DRIFT_SPEC),
    (DRIFT_SPEC, SPEC),
    (DRIFT_SPEC, {**SPEC, "monitoring": {"drift": {**DRIFT, "referenceUri": "https://d.example/ref-2.csv"}}}),
]


@pytest.mark.parametrize(("was", "now"), REBUILT, ids=["drift added", "drift dropped", "reference changed"])
def test_the_previous_colour_is_rebuilt_with_the_drift_reference_it_ran_with(was, now):
    rev = revision_of(parse_spec(was))
    old = build_deployment(body(was), parse_spec(was), Color.blue, rev, 2, PARAMS)
    status = {"activeColor": "blue", "activeRevision": rev, "rollout": {"phase": "Completed", "revision": rev,
                                                                        "color": "blue"}}  # fmt: skip
    observed = Observed({("Deployment", "iris-blue"): old}, ready_pods("blue", rev, 2))
    after = rollout_pass(body(now, status), parse_spec(now), observed, PARAMS, T0)
    assert after.status["rollout"]["phase"] == "WaitingForCandidate"
    blue = next(c for c in after.children if c["metadata"]["name"] == "iris-blue")
    assert blue == old


def test_figures_read_from_another_revision_wait_for_the_live_ones():
    result, observed = converge(DRIFT_SPEC, 3, {"blue": 2})
    older = drift_figures(T0, 150, a=0.02).model_copy(update={"revision": "0ld0ld0ld0"})
    read = drift_pass(result.status, observed, T0, CheckReport(drift=older))
    drift = conditions(read.status)["DriftMonitored"]
    assert (drift["status"], drift["reason"]) == ("Unknown", "Waiting")
    assert DRIFT_REV in drift["message"]


def test_ready_pods_of_an_earlier_revision_on_the_candidates_colour_are_counted_apart():
    from modeldeploy.desired.status import observe_rollout

    deployment = {
        "metadata": {"name": "iris-green", "generation": 2},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"modeldeploy.io/revision": "new"}}}},
    }
    pods = [
        pod("iris-green-a", "green", "new", ready=True),
        pod("iris-green-b", "green", "new", ready=True),
        pod("iris-green-c", "green", "old", ready=True),  # the rolling update has not removed it yet
        pod("iris-blue-a", "blue", "old", ready=True),
    ]
    green = observe_rollout("iris", {("Deployment", "iris-green"): deployment}, pods).color(Color.green)
    assert (green.ready_replicas, green.earlier_ready) == (2, 1)
