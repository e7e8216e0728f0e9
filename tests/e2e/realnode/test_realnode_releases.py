"""Releases under load on the real node: a load pod sends predictions through the stable Service's ClusterIP,
each on a new connection, while the operator (the chart's pod on `real-0`) rolls iris between models. Every
release path keeps 0 failed requests, and during a traffic step the colours answer in the planned shares.

The namespace enforces the `restricted` Pod Security Standard, so every pod here is admitted under it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from harness.demo_plan import NAME, store_url
from harness.faulty_models import ENDLESS_MARKER, FAIL_SHARE, endless_server, flaky_iris
from harness.models import IRIS_ROWS, demo_files
from harness.operator import wait_for
from harness.poll import WaitTimeout
from harness.realnode.load_pods import (
    all_answers_from,
    finish_load,
    run_load,
    start_load,
    step_windows,
    stop_load,
)
from harness.realnode.pods import pod_manifest
from harness.realnode.release_stack import (
    Stack,
    aborted_and_back,
    apply_md,
    md_status,
    operator_stack,
    stable_url,
)
from harness.realnode.startup_probe import last_not_ready, outcomes_while_not_ready, probe_until_ready
from modeldeploy.desired.pods import pod_ready

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]


RELEASE = "releases-e2e"
RATE = 30  # requests/s: the load pod, the servers and the operator share the node's two cores
RELEASE_CAP = 240  # seconds of load at most per release; the load stops a few seconds after its outcome
TAIL = 4  # seconds of load kept after the outcome: the answers after the switch are measured too
SHARE_TOLERANCE = 10  # percentage points
BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROWS[0]}]}
LANE_STARTED = time.monotonic()


def cpu_milli(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def serving_pods(cluster, namespace: str) -> list[dict]:
    return cluster.get_json("pods", "-n", namespace, "-l", f"modeldeploy.io/name={NAME}")["items"]


@pytest.fixture(scope="module")
def stack(cluster, namespace):
    """The operator pods, the model store and iris v1 Healthy, in a namespace enforcing `restricted`."""
    files = demo_files()  # the demo's models and holdout, trained here
    wrong = files["holdout.csv"].decode().splitlines()
    # The same rows with every label moved to the next class: any good model fails a gate on it.
    files["holdout-wrong.csv"] = (
        "\n".join(
            [wrong[0]] + [f"{r.rsplit(',', 1)[0]},{(int(r.rsplit(',', 1)[1]) + 1) % 3}" for r in wrong[1:]]
        ).encode()
        + b"\n"
    )
    files["iris-vflaky.joblib"] = flaky_iris()
    files["iris-vendless.joblib"] = endless_server()
    try:
        with operator_stack(cluster, namespace, RELEASE, files) as built:
            apply_md(cluster, namespace, built.spec("1"))
            wait_for(
                lambda: md_status(cluster, namespace).get("phase") == "Healthy", timeout=300, what="iris v1"
            )
            built.url = stable_url(cluster, namespace)
            yield built
    finally:
        print(f"\nrelease lane: {time.monotonic() - LANE_STARTED:.0f}s in all")


@dataclass
class Release:
    applied_at: float
    load: object  # harness.realnode.load_pods.LoadRun
    timeline: list[tuple[float, dict[str, int]]]  # (wall clock, {colour: weight}) as the test saw the status
    phases: list[tuple[float, str]]
    final: dict


def release_under_load(
    cluster,
    stack: Stack,
    name: str,
    spec: dict,
    done,
    *,
    control: tuple[str, str | Callable[[], None]] | None = None,
) -> Release:
    """Starts the load pod, applies `spec` three seconds into it, follows the status until `done(status)`,
    writes `control` ((rollout phase, action)) when that phase is reached, then stops the load TAIL seconds
    after the outcome (RELEASE_CAP bounds the whole run)."""
    duration = RELEASE_CAP
    history = len(md_status(cluster, stack.namespace).get("history", []))
    start_load(cluster, stack.namespace, name, url=stack.url, body=BODY, rate=RATE, duration=duration)
    time.sleep(3)
    applied = apply_md(cluster, stack.namespace, spec)
    timeline, phases, sent_control = [], [], False
    deadline = time.monotonic() + duration - TAIL - 5
    status = {}
    while time.monotonic() < deadline:
        status = md_status(cluster, stack.namespace)
        now = time.time()
        timeline.append((now, {t["color"]: t.get("weight", 0) for t in status.get("traffic", [])}))
        phase = status.get("rollout", {}).get("phase", "")
        if not phases or phases[-1][1] != phase:
            phases.append((now, phase))
        if control and not sent_control and phase == control[0] and now - phases[-1][0] > 8:
            if callable(control[1]):
                control[1]()
                sent_control = True
                continue
            patch = {"status": {"rolloutControl": {"action": control[1], "requestId": f"{name}-{int(now)}"}}}
            cluster.kubectl(
                "patch",
                "md",
                NAME,
                "-n",
                stack.namespace,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps(patch),
            )
            sent_control = True
        if len(status.get("history", [])) > history and done(status):  # this release's outcome
            break
        time.sleep(0.5)
    assert done(status), (
        f"release {name} did not finish within the load's {duration}s: {json.dumps(status)[:3000]}"
    )
    time.sleep(TAIL)
    stop_load(cluster, stack.namespace, name)
    load = finish_load(cluster, stack.namespace, name)
    print(
        f"\n{name}: sent {load.summary['sent']}, failed {load.summary['failed']}, "
        f"reasons {load.summary['reasons']}, colours {load.summary['colors']}, "
        f"p99 {load.summary['latency_ms']['p99']} ms; phases "
        + " -> ".join(f"{p or '-'}@{t - applied:+.1f}s" for t, p in phases)
    )
    return Release(applied, load, timeline, phases, status)


def assert_no_failures(release: Release) -> None:
    s = release.load.summary
    seconds = len(release.load.buckets)  # a gate that fails at once makes a short release
    assert seconds >= 10 and s["sent"] >= 0.8 * RATE * seconds, (seconds, s)  # the load kept its rate
    assert (s["failed"], s["unexpected"]) == (0, 0), s["failures"][:20]


def assert_step_shares(release: Release) -> None:
    """At each traffic step the colours answered within SHARE_TOLERANCE points of the planned weights."""
    windows = step_windows(release.timeline)
    assert windows, f"no traffic step observed: {release.timeline[:5]}…"
    for start, end, weights in windows:
        answered = release.load.colors_between(start, end)
        total = sum(answered.values())
        assert total >= RATE * 3, (start, end, answered)
        shares = {c: round(100 * answered.get(c, 0) / total, 1) for c in weights}
        print(f"step {weights}: {end - start:.1f}s, {total} answers, shares {shares}")
        for color, planned in weights.items():
            assert abs(shares[color] - planned) <= SHARE_TOLERANCE, (weights, shares)


def test_load_pod_reports_every_request_of_a_bounded_run_through_the_cluster_ip(cluster, stack):
    run = run_load(cluster, stack.namespace, "load-steady", url=stack.url, body=BODY, rate=RATE, duration=5)
    assert run.summary["sent"] == RATE * 5
    assert run.summary["failed"] == 0 and run.summary["ok"] == RATE * 5, run.summary
    assert run.summary["colors"] == {"blue": RATE * 5}  # v1 is blue, alone behind the stable Service
    assert sum(b["ok"] for b in run.buckets) == RATE * 5 and len(run.buckets) in (5, 6)
    print(f"\nsteady load: {run.summary['latency_ms']}")


def test_promotion_under_load_fails_no_request_and_splits_traffic_as_the_step_plans(cluster, stack):
    release = release_under_load(
        cluster,
        stack,
        "load-promote",
        stack.spec("2", steps=[{"weight": 50, "pauseSeconds": 15}]),
        done=lambda st: st.get("phase") == "Healthy" and st.get("modelVersion") == "2",
    )
    assert_no_failures(release)
    assert_step_shares(release)
    candidate = release.final["traffic"][0]["color"]
    first = min(t for key, t in release.load.summary["first_answer_at"].items() if key.startswith(candidate))
    full = all_answers_from(release.load.buckets, candidate)
    assert full is not None and first <= full
    print(
        f"kubectl apply of v2 -> first answer from {candidate} {first - release.applied_at:.1f}s, "
        f"-> 100% of answers {full - release.applied_at:.1f}s"
    )


def test_abort_during_the_traffic_step_under_load_fails_no_request(cluster, stack):
    stable = md_status(cluster, stack.namespace)["traffic"][0]["color"]
    spec = stack.spec("1", steps=[{"weight": 50, "pauseSeconds": 40}])
    release = release_under_load(
        cluster,
        stack,
        "load-abort",
        spec,
        control=("Stepping", "abort"),
        done=aborted_and_back,
    )
    assert_no_failures(release)
    assert step_windows(release.timeline), "the abort came before any traffic step"
    assert release.final["traffic"] == [
        {"color": stable, "revision": release.final["activeRevision"], "weight": 100}
    ]
    back = all_answers_from(release.load.buckets, stable)
    assert back is not None  # the last answers all came from the stable colour
    aborted_at = next(t for t, phase in release.phases if phase == "Aborted")
    print(
        f"abort: Aborted {aborted_at - release.applied_at:.1f}s after kubectl apply; every answer from "
        f"{stable} again from {back - release.applied_at:.1f}s"
    )


def test_failed_quality_gate_under_load_fails_no_request_and_keeps_traffic_on_the_stable_colour(
    cluster, stack
):
    stable = md_status(cluster, stack.namespace)["traffic"][0]["color"]
    spec = stack.spec(
        "1",
        qualityGate={
            **stack.spec("1")["rollout"]["qualityGate"],
            "datasetUri": store_url(stack.namespace, "holdout-wrong.csv"),
        },
    )
    spec["model"]["version"] = "1-gate"  # a revision of its own: the aborted v1 one stays aborted
    release = release_under_load(
        cluster,
        stack,
        "load-gate",
        spec,
        done=aborted_and_back,
    )
    assert_no_failures(release)
    assert release.load.summary["colors"] == {stable: release.load.summary["ok"]}
    gate = release.final["rollout"]["qualityGate"]
    assert gate["passed"] is False and gate["score"] < 0.8, gate
    assert step_windows(release.timeline) == []


def test_failed_analysis_under_load_aborts_and_only_the_candidates_5xx_answers_failed(cluster, stack):
    stable = md_status(cluster, stack.namespace)["traffic"][0]["color"]
    spec = stack.spec("flaky", steps=[{"weight": 50, "pauseSeconds": 30}])
    del spec["rollout"]["qualityGate"]  # the analysis, not the gate, is what judges this candidate
    release = release_under_load(cluster, stack, "load-analysis", spec, done=aborted_and_back)
    s = release.load.summary
    candidate = "green" if stable == "blue" else "blue"
    assert s["sent"] >= RATE * 20 and s["unexpected"] == 0, s
    # The flaky model's 500s are the only failures: none from the stable colour, no connection errors.
    assert s["reasons"] == {"http_500": s["failed"]}, s["reasons"]
    assert {(f["status"], f["color"]) for f in s["failures"]} == {(500, candidate)}, s["failures"][:5]
    answered_by_candidate = s["colors"].get(candidate, 0)
    assert 0 < s["failed"] < answered_by_candidate, s
    analysis = release.final["rollout"]["analysis"]
    assert analysis["passed"] is False and analysis["errorRate"] > 0.05, analysis
    assert release.final["traffic"][0]["color"] == stable
    print(
        f"failed analysis: {s['failed']} of {s['sent']} requests failed, all 500s from the candidate "
        f"{candidate} ({s['failed']}/{answered_by_candidate} of its answers, model fails {FAIL_SHARE:.0%}); "
        f"analysis: {analysis['message']}"
    )


def test_rollback_after_promotion_to_the_warm_colour_under_load_fails_no_request(cluster, stack):
    before = md_status(cluster, stack.namespace)
    stable = before["traffic"][0]["color"]
    spec = stack.spec("1", steps=[{"weight": 50, "pauseSeconds": 10}], scaleDownDelaySeconds=60)
    spec["model"]["version"] = "1-rollback"
    spec["monitoring"] = {
        "evaluation": {  # the live model, once promoted, is judged on the wrong labels: it fails
            "datasetUri": store_url(stack.namespace, "holdout-wrong.csv"),
            "labelColumn": "species",
            "metric": "accuracy",
            "threshold": 0.8,
            "intervalSeconds": 60,
            "rollbackOnFailure": True,
        }
    }
    release = release_under_load(
        cluster,
        stack,
        "load-rollback",
        spec,
        done=lambda st: aborted_and_back(st) and st["history"][0].get("outcome") == "RolledBack",
    )
    assert_no_failures(release)
    assert_step_shares(release)
    promoted = [t for t, phase in release.phases if phase in ("Promoting", "PostPromotion", "Completed")]
    assert promoted, release.phases  # the candidate was promoted before it was rolled back
    assert release.final["traffic"][0]["color"] == stable
    back = all_answers_from(release.load.buckets, stable)
    assert back is not None and back > promoted[0]
    print(
        f"rollback: promoted {promoted[0] - release.applied_at:.1f}s after kubectl apply, every answer from "
        f"{stable} again from {back - release.applied_at:.1f}s"
    )


def test_a_candidate_answering_endless_bodies_costs_the_operator_its_caps_and_never_a_restart(cluster, stack):
    restarts = {p["metadata"]["name"]: container_restarts(p) for p in operator_pods(cluster, stack.namespace)}
    before = md_status(cluster, stack.namespace)
    stable = before["traffic"][0]["color"]
    # Start from one serving revision: a previous release's warm pods on the candidate colour could answer the
    # gate through the preview Service until kube-proxy drops them (docs/analysis.md), and pass it.
    active = {before["activeRevision"]}
    wait_for(
        lambda: {revision_of_pod(p) for p in serving_pods(cluster, stack.namespace)} == active,
        timeout=150,
        what="only the active revision's pods left",
    )
    apply_md(cluster, stack.namespace, stack.spec("endless"))  # its gate reads answers that never end

    last: dict = {}

    def outcome() -> dict | None:
        status = last["status"] = md_status(cluster, stack.namespace)
        new = len(status.get("history", [])) > len(before.get("history", []))
        return status if new and aborted_and_back(status) else None

    try:
        final = wait_for(outcome, timeout=300, what="the endless candidate aborted")
    except WaitTimeout:
        pytest.fail(f"the endless candidate did not abort in 300 s; last status: {json.dumps(last)[:4000]}")
    rollout = json.dumps(final["rollout"])
    assert "larger than" in rollout, rollout[:2000]  # the cap is named, not the bytes
    assert final["traffic"][0]["color"] == stable
    assert ENDLESS_MARKER not in json.dumps(final)
    events = cluster.kubectl("get", "events", "-n", stack.namespace, "-o", "json").stdout
    assert ENDLESS_MARKER not in events
    after = operator_pods(cluster, stack.namespace)
    assert {p["metadata"]["name"]: container_restarts(p) for p in after} == restarts  # same pods, no restart
    assert all(pod_ready(p) for p in after)
    for pod in after:
        log = cluster.kubectl("logs", pod["metadata"]["name"], "-n", f"{stack.namespace}-system").stdout
        assert ENDLESS_MARKER not in log
    # The aborted candidate stays warm for scaleDownDelaySeconds; the next release starts once it is gone
    # (a check through the preview Service can reach a replaced pod until kube-proxy drops it).
    endless = final["history"][0]["revision"]
    wait_for(
        lambda: not [p for p in serving_pods(cluster, stack.namespace) if revision_of_pod(p) == endless],
        timeout=120,
        what="the endless candidate's pods gone",
    )
    print(
        f"endless answers: aborted with {final['rollout'].get('message', '')[:300]!r}; "
        f"operator restarts {restarts}"
    )


def revision_of_pod(pod: dict) -> str | None:
    return pod["metadata"].get("labels", {}).get("modeldeploy.io/revision")


def container_restarts(pod: dict) -> int:
    return sum(c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses", []))


def operator_pods(cluster, namespace: str) -> list[dict]:
    found = cluster.get_json(
        "pods", "-n", f"{namespace}-system", "-l", f"app.kubernetes.io/instance={RELEASE}"
    )
    return sorted(found["items"], key=lambda p: p["metadata"]["name"])


def test_the_active_operator_killed_mid_rollout_the_standby_finishes_it_with_no_failed_request(
    cluster, stack
):
    pods = operator_pods(cluster, stack.namespace)
    assert len(pods) == 2 and all(pod_ready(p) for p in pods), [p["metadata"]["name"] for p in pods]
    active = pods[-1]["metadata"]  # the highest ordinal has the highest peering priority
    killed: list[float] = []

    def kill_active() -> None:
        cluster.kubectl(
            "delete", "pod", active["name"], "-n", active["namespace"], "--grace-period=0", "--force"
        )
        killed.append(time.time())

    spec = stack.spec("1", steps=[{"weight": 50, "pauseSeconds": 20}])
    spec["model"]["version"] = "1-failover"
    release = release_under_load(
        cluster,
        stack,
        "load-failover",
        spec,
        control=("Stepping", kill_active),
        done=lambda st: st.get("phase") == "Healthy" and st.get("modelVersion") == "1-failover",
    )
    assert killed, release.phases
    assert_no_failures(release)
    after = [t for t, _ in release.phases if t > killed[0]]
    assert after, release.phases  # the rollout moved on after the kill: the standby took over
    standby = pods[0]["metadata"]["name"]
    log = cluster.kubectl("logs", standby, "-n", active["namespace"], "--since=10m").stdout
    assert "iris" in log, log[-2000:]  # the standby reconciled the ModelDeployment
    print(
        f"failover: {active['name']} killed {killed[0] - release.applied_at:.1f}s after kubectl apply; "
        f"next phase {after[0] - killed[0]:.1f}s later; Healthy on 1-failover"
    )


def test_restricted_namespace_rejects_a_privileged_pod_the_generated_ones_were_admitted(cluster, stack):
    labels = cluster.get_json("namespace", stack.namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    serving = cluster.get_json("pods", "-n", stack.namespace, "-l", f"modeldeploy.io/name={NAME}")["items"]
    assert serving and all(p["status"].get("phase") == "Running" for p in serving)
    control = pod_manifest(
        "privileged-control", stack.node, ["/bin/sleep", "5"], securityContext={"runAsNonRoot": False}
    )
    control["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    denied = cluster.kubectl(
        "apply", "--dry-run=server", "-n", stack.namespace, "-f", "-", input=json.dumps(control), check=False
    )
    assert denied.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in denied.stderr and "privileged" in denied.stderr


def test_a_new_pod_refuses_or_answers_503_until_ready_and_never_predicts_before(cluster, stack):
    before = {p["metadata"]["name"] for p in serving_pods(cluster, stack.namespace)}
    replicas = cluster.get_json("md", NAME, "-n", stack.namespace)["spec"]["replicas"]
    cluster.kubectl("scale", "md", NAME, "-n", stack.namespace, f"--replicas={replicas + 1}")
    try:
        pod = wait_for(
            lambda: next(
                (
                    p
                    for p in serving_pods(cluster, stack.namespace)
                    if p["metadata"]["name"] not in before and p["status"].get("podIP")
                ),
                None,
            ),
            timeout=60,
            interval=0.1,
            what="the new serving pod's IP",
        )
        port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
        attempts = probe_until_ready(pod["status"]["podIP"], port, NAME, BODY)
    finally:
        cluster.kubectl("scale", "md", NAME, "-n", stack.namespace, f"--replicas={replicas}")
    seen = outcomes_while_not_ready(attempts)
    waited = last_not_ready(attempts) - attempts[0].at
    print(
        f"\nnew pod {pod['metadata']['name']}: {len(attempts)} requests; before ready: {sorted(seen)} "
        f"for {waited:.1f}s"
    )
    assert seen and seen <= {"refused", "503"}, seen
    assert attempts[-1].path == "infer" and attempts[-1].outcome == "200"  # and then it predicts


def test_no_pod_of_the_lane_was_ever_unschedulable(cluster, stack):
    release_namespace = f"{stack.namespace}-system"
    events = [
        e
        for ns in (stack.namespace, release_namespace)
        for e in cluster.get_json("events", "-n", ns)["items"]
    ]
    assert len(events) > 20  # the lane's pods left their Scheduled/Started events here
    unschedulable = [
        f"{e['involvedObject']['name']}: {e.get('message')}"
        for e in events
        if e.get("reason") == "FailedScheduling"
    ]
    assert unschedulable == []
    pods = [
        p for ns in (stack.namespace, release_namespace) for p in cluster.get_json("pods", "-n", ns)["items"]
    ]
    assert pods
    for pod in pods:
        scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert scheduled["status"] == "True", (pod["metadata"]["name"], scheduled)
        for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            cpu = c.get("resources", {}).get("requests", {}).get("cpu", "0")
            assert cpu_milli(cpu) <= 50, (pod["metadata"]["name"], c["name"], cpu)
