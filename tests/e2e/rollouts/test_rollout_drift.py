"""Drift of the live model's inputs (spec.monitoring.drift), end to end on the real control plane.

kwok makes the pods Ready; real modelserve processes on loopback are the active colour's pods, started with
the reference file the pods' init container would have fetched (the same bytes the spec's sha256 pins).
The operator reads their /metrics: status.drift, the DriftMonitored condition and the DriftDetected Event
come from what the processes counted. A second ModelDeployment names a reference its pods could not fetch:
a kwok Stage leaves on its pods what the kubelet would (the optional fetch exited 0 with its failure line).
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.operator import (
    condition,
    drift_reference_fetch_failed_stage,
    get_obj,
    kubectl_apply,
)
from harness.probes import send_rows
from harness.rollout import (
    body,
    drifted_rows,
    events,
    revision,
    rollout_operator,
    rollout_spec,
    serving,
    serving_pairs,
    start_pair,
    train_models,
    wait_rollout,
    write_drift_reference,
)

pytestmark = pytest.mark.e2e

WINDOW, THRESHOLD, INTERVAL = 100, 0.25, 10
REFERENCE_URI = "https://models.example.internal/iris/reference.csv"
MISSING_URI = "https://models.example.internal/iris/missing-reference.csv"
FETCH_FAILED = f"fetch failed: {MISSING_URI} not found"
SHIFTED = 1  # feature_1, sepal width: barely moves the predictions, so only the input drifts


def _spec(uri: str, sha256: str) -> dict:
    spec = rollout_spec("1", {"progressDeadlineSeconds": 120}, replicas=1)
    spec["monitoring"] = {
        "drift": {
            "referenceUri": uri,
            "sha256": sha256,
            "threshold": THRESHOLD,
            "windowRows": WINDOW,
            "intervalSeconds": INTERVAL,
        }
    }
    return spec


@pytest.fixture(scope="module")
def env(cluster, namespace, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("drift")
    models = train_models(workdir / "models")
    reference = workdir / "reference.csv"
    sha256 = write_drift_reference(reference)
    specs = {"tracked": _spec(REFERENCE_URI, sha256), "unfetched": _spec(MISSING_URI, sha256)}
    # What each pod has after its init container: the reference (tracked), or nothing (unfetched).
    drift_env = {
        "tracked": {
            "MODELSERVE_DRIFT_REFERENCE_FILE": str(reference),
            "MODELSERVE_DRIFT_WINDOW_ROWS": str(WINDOW),
        },
        "unfetched": {},
    }
    pairs = {
        name: start_pair(workdir, name, spec, spec, models.good, models.good, models, drift_env[name])
        for name, spec in specs.items()
    }
    kubectl_apply(cluster, drift_reference_fetch_failed_stage(MISSING_URI, FETCH_FAILED))
    with serving_pairs(pairs), rollout_operator(cluster, namespace, workdir, pairs) as operator:
        for name, spec in specs.items():
            kubectl_apply(cluster, body(name, namespace, spec))
        for name, spec in specs.items():
            wait_rollout(cluster, namespace, name, serving(revision(spec)), what=f"{name} serving")
        yield cluster, namespace, pairs, specs, operator


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(name, labels) -> value of every sample in an exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _drift(md: dict) -> dict:
    return (md.get("status") or {}).get("drift") or {}


def _read_after(moment: str, full: bool = True):
    """status.drift read after `moment` (an RFC 3339 checkedAt), over a full window when `full`."""

    def check(md: dict) -> bool:
        drift = _drift(md)
        return drift.get("checkedAt", "") > moment and (not full or drift.get("rows", 0) >= WINDOW)

    return check


def test_the_drift_reference_reaches_the_pods_as_an_optional_fetch_and_modelserve_settings(env):
    cluster, namespace, _, specs, _ = env
    deployment = get_obj(cluster, "deployment", namespace, "tracked-blue")
    pod = deployment["spec"]["template"]["spec"]
    fetch = next(c for c in pod["initContainers"] if c["name"] == "fetch-drift-reference")
    sha256 = specs["tracked"]["monitoring"]["drift"]["sha256"]
    assert fetch["command"] == [
        "modelserve", "fetch", REFERENCE_URI, "/drift/reference.csv", "--sha256", sha256, "--optional",
    ]  # fmt: skip
    serving_env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert {k: v for k, v in serving_env.items() if k.startswith("MODELSERVE_DRIFT_")} == {
        "MODELSERVE_DRIFT_REFERENCE_FILE": "/drift/reference.csv",
        "MODELSERVE_DRIFT_WINDOW_ROWS": str(WINDOW),
        "MODELSERVE_DRIFT_MAX_FEATURES": "32",
    }
    assert {"name": "drift", "emptyDir": {}} in pod["volumes"]
    pods = cluster.get_json("pods", "-n", namespace, "-l", "modeldeploy.io/name=tracked")["items"]
    assert pods and all(
        "fetch-drift-reference" in [c["name"] for c in p["spec"]["initContainers"]] for p in pods
    )


def test_rows_like_the_reference_show_every_feature_below_the_threshold_in_status(env):
    cluster, namespace, pairs, _, _ = env
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert set(send_rows(pairs["tracked"].blue.url, drifted_rows(WINDOW, feature=-1, seed=1), "tracked")) == {
        200
    }
    md = wait_rollout(cluster, namespace, "tracked", _read_after(started), timeout=60, what="a full window")
    drift = _drift(md)
    names = {f["feature"] for f in drift["features"]}
    assert names == {"feature_0", "feature_1", "feature_2", "feature_3", "predicted_class"}, drift
    assert drift["drifting"] is False and all(f["psi"] < THRESHOLD for f in drift["features"]), drift
    assert drift["message"].startswith("worst feature ") and "on 1 pod(s)" in drift["message"], drift
    monitored = condition(md, "DriftMonitored")
    assert (monitored["status"], monitored["reason"]) == ("True", "Tracking"), monitored


def test_one_shifted_feature_crosses_the_threshold_once_with_one_event(env):
    cluster, namespace, pairs, specs, operator = env
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = drifted_rows(WINDOW, feature=SHIFTED, seed=2)  # the window now holds only shifted rows
    assert set(send_rows(pairs["tracked"].blue.url, rows, "tracked")) == {200}
    md = wait_rollout(
        cluster, namespace, "tracked", lambda m: _read_after(started)(m) and _drift(m).get("drifting"),
        timeout=60, what="drift detected",
    )  # fmt: skip
    worst = _drift(md)["features"][0]
    assert worst["feature"] == f"feature_{SHIFTED}" and worst["psi"] > THRESHOLD, _drift(md)
    inputs = [f for f in _drift(md)["features"] if f["feature"].startswith("feature_")]
    assert [f["feature"] for f in inputs if f["psi"] > THRESHOLD] == [f"feature_{SHIFTED}"], inputs
    assert condition(md, "DriftMonitored")["reason"] == "Drifting"
    assert md["status"]["phase"] == "Healthy"  # drift is a signal, never a degradation of serving
    # Another read while it stays above: still one Event for the one crossing.
    seen = _drift(md)["checkedAt"]
    wait_rollout(cluster, namespace, "tracked", _read_after(seen), timeout=60, what="the next read")
    detected = [e for e in events(cluster, namespace, "tracked") if e["reason"] == "DriftDetected"]
    assert len(detected) == 1 and detected[0].get("count", 1) == 1, detected
    assert detected[0]["type"] == "Warning" and f"worst feature feature_{SHIFTED}" in detected[0]["message"]
    live = {"namespace": namespace, "name": "tracked", "revision": revision(specs["tracked"])}
    exported = _samples(operator.metrics())
    assert exported[("modeldeploy_drift_detected", frozenset(live.items()))] == 1.0
    score = exported[
        ("modeldeploy_check_score", frozenset({**live, "check": "drift", "metric": "score"}.items()))
    ]
    assert score > THRESHOLD


def test_a_reference_the_pods_could_not_fetch_is_a_condition_and_serving_goes_on(env):
    cluster, namespace, _, _, _ = env
    md = wait_rollout(
        cluster, namespace, "unfetched",
        lambda m: (condition(m, "DriftMonitored") or {}).get("reason") == "DriftReferenceUnavailable",
        timeout=60, what="DriftMonitored=False",
    )  # fmt: skip
    monitored = condition(md, "DriftMonitored")
    assert monitored["status"] == "False" and FETCH_FAILED in monitored["message"], monitored
    assert "serving is unaffected" in monitored["message"]
    assert md["status"]["phase"] == "Healthy" and condition(md, "Ready")["status"] == "True"
