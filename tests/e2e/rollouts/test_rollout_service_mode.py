"""Blue/green rollouts end to end in the default (Service-based) routing mode, on the real control plane.

kwok makes pods Ready; real modelserve processes on loopback are each colour's model servers for the
operator's smoke requests, quality gate and /metrics analysis. While each rollout runs, the stable
Service's EndpointSlices are sampled: never empty, never an unready pod, and the right colours per phase.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from harness.operator import (
    OperatorProcess,
    condition,
    kubectl_apply,
    wait_for,
)
from harness.probes import file_server
from harness.rollout import (
    BLUE,
    BOTH,
    GREEN,
    EndpointWatcher,
    Pair,
    Traffic,
    body,
    event_reasons,
    in_phase,
    marker_rows,
    operator_identity,
    plugin,
    revision,
    rollout_of,
    rollout_spec,
    serving,
    serving_pairs,
    start_operator_env,
    start_pair,
    train_models,
    v2_body,
    wait_rollout,
    wait_traffic_back,
)

pytestmark = pytest.mark.e2e


def _rollout(name: str, dataset_url: str, **overrides) -> dict:
    base = {
        "steps": [{"weight": 25, "pauseSeconds": 4}, {"weight": 50, "pauseSeconds": 4}],
        "smoke": {
            "requests": [
                {
                    "path": f"/v2/models/{name}/infer",
                    "body": v2_body([5.1, 3.5, 1.4, 0.2]),
                    "expectedOutputShape": [1],
                }
            ]
        },
        "qualityGate": {
            "datasetUri": f"{dataset_url}/holdout.csv",
            "labelColumn": "species",
            "metric": "accuracy",
            "threshold": 0.8,
            "maxRegression": 0.05,
        },
        "analysis": {"maxErrorRate": 0.1, "minRequests": 5, "intervalSeconds": 1},
        "scaleDownDelaySeconds": 6,
        "progressDeadlineSeconds": 120,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


class Env:
    """Everything the module shares: the data server, the pairs, the operator (restartable)."""

    def __init__(self, cluster, namespace, workdir, dataset_url, pairs: dict[str, Pair], identity):
        self.cluster, self.namespace, self.workdir = cluster, namespace, workdir
        self.dataset_url, self.pairs, self.identity = dataset_url, pairs, identity
        self.operator: OperatorProcess | None = None

    def start_operator(self) -> OperatorProcess:
        self.operator = OperatorProcess(
            self.identity,
            self.namespace,
            self.workdir / "operator.log",
            extra_env=start_operator_env(self.namespace, list(self.pairs.values())),
        ).start()
        return self.operator

    def deploy_v1(self, name: str) -> None:
        pair = self.pairs[name]
        kubectl_apply(self.cluster, body(name, self.namespace, pair.v1))
        serving_v1 = serving(revision(pair.v1))
        wait_rollout(self.cluster, self.namespace, name, serving_v1, what=f"{name} v1 serving")

    def apply_v2(self, name: str) -> None:
        kubectl_apply(self.cluster, body(name, self.namespace, self.pairs[name].v2))

    def watch(self, name: str) -> EndpointWatcher:
        return EndpointWatcher(self.cluster, self.namespace, name)

    def traffic(self, name: str) -> Traffic:
        pair = self.pairs[name]
        return Traffic(name, [pair.blue.url, pair.green.url])


SCENARIOS = {
    # name: (green model, rollout overrides)
    "good": ("good", {}),
    "gated": ("bad", {}),
    "held": ("good", {"steps": [{"weight": 50}], "qualityGate": None}),
    "erroring": ("failing", {"steps": [{"weight": 50, "pauseSeconds": 30}], "qualityGate": None}),
    "rollback": (
        "failing",
        {
            "steps": [{"weight": 50, "pauseSeconds": 3}],
            "qualityGate": None,
            "scaleDownDelaySeconds": 60,
            "analysis": {"maxErrorRate": 0.1, "minRequests": 5, "intervalSeconds": 1, "postPromotion": True},
        },
    ),
}


@pytest.fixture(scope="module")
def env(cluster, namespace, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rollout")
    models = train_models(workdir / "models")
    with file_server(models.holdout_dir) as dataset_url:
        pairs = {}
        for name, (green, overrides) in SCENARIOS.items():
            rollout = _rollout(name, dataset_url, **overrides)
            v1, v2 = rollout_spec("1", rollout), rollout_spec("2", rollout)
            pairs[name] = start_pair(workdir, name, v1, v2, models.good, getattr(models, green), models)
        with serving_pairs(pairs):
            identity = operator_identity(cluster, namespace, workdir)
            shared = Env(cluster, namespace, workdir, dataset_url, pairs, identity)
            shared.start_operator()
            try:
                yield shared
            finally:
                if shared.operator is not None:
                    shared.operator.stop()


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _assert_traffic_was_safe(watcher: EndpointWatcher) -> None:
    assert watcher.samples, "the EndpointSlice sampler took no sample"
    assert watcher.problems() == [], watcher.problems()[:5]


def test_good_candidate_goes_through_every_step_and_is_promoted(env):
    name, pair = "good", env.pairs["good"]
    env.deploy_v1(name)
    with env.watch(name) as watcher, env.traffic(name):
        env.apply_v2(name)
        md = wait_rollout(
            env.cluster, env.namespace, name, serving(revision(pair.v2)), timeout=180, what="v2 promoted"
        )
        wait_for(lambda: watcher.samples[-1].colors == GREEN, timeout=20, what="all traffic on green")

    def all_on_green(md: dict) -> bool:
        return [(t["color"], t["weight"]) for t in md["status"].get("traffic") or []] == [("green", 100)]

    md = wait_rollout(
        env.cluster, env.namespace, name, all_on_green, timeout=30, what="status.traffic green=100"
    )
    state = rollout_of(md)
    assert state["smoke"]["passed"] is True, state["smoke"]
    assert state["qualityGate"]["passed"] is True, state["qualityGate"]
    assert state["qualityGate"]["score"] >= 0.8
    assert abs(state["qualityGate"]["score"] - state["qualityGate"]["activeScore"]) < 1e-9  # same model
    history = md["status"]["history"][0]
    assert (history["revision"], history["outcome"]) == (revision(pair.v2), "Promoted")
    assert md["status"]["activeColor"] == "green"
    reasons = event_reasons(env.cluster, env.namespace, name)
    for reason in ("RolloutStarted", "CandidateReady", "CheckPassed", "RolloutStep", "RolloutPromoted"):
        assert reason in reasons, reasons
    _assert_traffic_was_safe(watcher)
    sequence = watcher.color_sequence()
    assert sequence[0] == BLUE and sequence[-1] == GREEN and BOTH in sequence, sequence
    # Stepping: both colours, once the EndpointSlice controller caught up with the selector change.
    assert BOTH in watcher.colors_in("Stepping") and watcher.colors_in("Stepping") <= {BLUE, BOTH}
    assert watcher.colors_in("QualityGate") <= {BLUE}
    exported = [s for s in env.operator.metrics().splitlines() if f'name="{name}"' in s]
    score_lines = [s for s in exported if s.startswith("modeldeploy_check_score{")]
    promoted = [s for s in exported if s.startswith("modeldeploy_rollouts_total{")]
    assert any('outcome="Promoted"' in s and not s.endswith(" 0.0") for s in promoted), promoted
    weights = [
        s for s in exported if s.startswith("modeldeploy_traffic_weight_percent{") and f'name="{name}"' in s
    ]
    assert any('color="green"' in s and s.endswith(" 100.0") for s in weights), weights
    gate_scores = [s for s in score_lines if 'check="quality_gate"' in s and 'metric="score"' in s]
    assert gate_scores, score_lines


def test_candidate_with_lower_accuracy_is_stopped_by_the_quality_gate(env):
    name, pair = "gated", env.pairs["gated"]
    env.deploy_v1(name)
    with env.watch(name) as watcher:
        env.apply_v2(name)
        md = wait_rollout(env.cluster, env.namespace, name, in_phase("Aborted"), what="gate aborts")
        time.sleep(1)  # a few samples after the abort
    state = rollout_of(md)
    gate = state["qualityGate"]
    assert gate["passed"] is False and gate["score"] < 0.8 <= gate["activeScore"], gate
    assert "quality gate failed" in state["abortReason"]
    assert md["status"]["activeRevision"] == revision(pair.v1)
    assert md["status"]["history"][0]["outcome"] == "Aborted"
    assert condition(md, "Ready")["status"] == "True"  # v1 still serves
    assert "QualityGateFailed" in event_reasons(env.cluster, env.namespace, name)
    _assert_traffic_was_safe(watcher)
    assert set(watcher.color_sequence()) == {BLUE}, "the bad candidate never got traffic"


def test_held_split_abort_retry_restart_and_manual_promotion(env):
    name, pair = "held", env.pairs["held"]
    env.deploy_v1(name)
    with env.watch(name) as watcher, env.traffic(name):
        env.apply_v2(name)
        md = wait_rollout(env.cluster, env.namespace, name, in_phase("Paused"), what="held at 50%")
        assert "held until promote" in rollout_of(md)["message"]

        # The A/B view: both revisions serve, side by side, with their request counts.
        def ab_view(md: dict) -> bool:
            colors = {c["color"]: c for c in md["status"].get("colors") or []}
            return set(colors) == {"blue", "green"} and all(c["requests"] > 0 for c in colors.values())

        md = wait_rollout(env.cluster, env.namespace, name, ab_view, timeout=30, what="A/B stats")
        revisions = {c["color"]: c["revision"] for c in md["status"]["colors"]}
        assert revisions == {"blue": revision(pair.v1), "green": revision(pair.v2)}

        plugin(env.cluster, "abort", env.namespace, name)
        md = wait_rollout(env.cluster, env.namespace, name, in_phase("Aborted"), what="aborted")
        assert md["status"]["activeRevision"] == revision(pair.v1)
        wait_for(lambda: watcher.samples[-1].colors == BLUE, timeout=20, what="traffic back on blue")

        plugin(env.cluster, "retry", env.namespace, name)
        wait_rollout(env.cluster, env.namespace, name, in_phase("Paused"), what="held again after retry")
        wait_for(lambda: watcher.samples[-1].colors == BOTH, timeout=20, what="split again")

        # The analysis window (the /metrics snapshot at its start) is saved in status.
        def window_saved(md: dict) -> bool:
            state = rollout_of(md)
            saved = (state.get("analysisBaselines") or {}).get("green") or {}
            return bool(saved) and _time(saved["takenAt"]) >= _time(state["stepStartedAt"])

        md = wait_rollout(env.cluster, env.namespace, name, window_saved, timeout=30, what="window saved")
        window = rollout_of(md)["analysisBaselines"]["green"]["takenAt"]

        # The operator dies mid-rollout and comes back: it continues from status, traffic untouched.
        env.operator.kill()
        restarted = datetime.now(UTC)
        env.start_operator()

        def judged_after_restart(md: dict) -> bool:
            at = (rollout_of(md).get("analysis") or {}).get("at")
            return bool(at) and _time(at) > restarted

        md = wait_rollout(env.cluster, env.namespace, name, judged_after_restart, what="judged after restart")
        state = rollout_of(md)
        assert state["phase"] == "Paused" and md["status"]["activeRevision"] == revision(pair.v1)
        assert state["analysisBaselines"]["green"]["takenAt"] == window, "the window survived the restart"
        assert state["analysis"]["passed"] is True, state["analysis"]

        plugin(env.cluster, "promote", env.namespace, name)
        md = wait_rollout(env.cluster, env.namespace, name, serving(revision(pair.v2)), what="promoted")
        wait_for(lambda: watcher.samples[-1].colors == GREEN, timeout=20, what="all traffic on green")
    assert [h["outcome"] for h in md["status"]["history"][:2]] == ["Promoted", "Aborted"]
    _assert_traffic_was_safe(watcher)
    sequence = watcher.color_sequence()
    assert sequence[0] == BLUE and sequence[-1] == GREEN, sequence
    assert BOTH in watcher.colors_in("Paused") and GREEN not in watcher.colors_in("Paused")


def test_error_rate_rising_mid_steps_aborts_and_traffic_returns(env):
    name, pair = "erroring", env.pairs["erroring"]
    env.deploy_v1(name)
    with env.watch(name) as watcher, env.traffic(name) as traffic:
        # Clients of the candidate send the rows it fails on (HTTP 500).
        traffic.rows_for = lambda url: marker_rows(1)[0] if url == pair.green.url else [5.1, 3.5, 1.4, 0.2]
        env.apply_v2(name)
        md = wait_rollout(env.cluster, env.namespace, name, in_phase("Aborted"), timeout=60, what="abort")
        wait_traffic_back(watcher, env.cluster, env.namespace, name, "blue")
    state = rollout_of(md)
    assert "analysis failed at step 1" in state["abortReason"], state
    assert state["analysis"]["passed"] is False and state["analysis"]["errorRate"] > 0.1, state["analysis"]
    assert "AnalysisFailed" in event_reasons(env.cluster, env.namespace, name)
    _assert_traffic_was_safe(watcher)
    assert BOTH in watcher.color_sequence() and watcher.color_sequence()[-1] == BLUE


def test_post_promotion_failure_rolls_back_to_the_warm_colour(env):
    name, pair = "rollback", env.pairs["rollback"]
    env.deploy_v1(name)
    with env.watch(name) as watcher, env.traffic(name) as traffic:
        env.apply_v2(name)
        wait_rollout(env.cluster, env.namespace, name, in_phase("PostPromotion"), timeout=90, what="promoted")
        # Now the promoted model starts failing its clients, inside the warm window.
        traffic.rows_for = lambda url: marker_rows(1)[0] if url == pair.green.url else [5.1, 3.5, 1.4, 0.2]
        md = wait_rollout(env.cluster, env.namespace, name, in_phase("Aborted"), timeout=60, what="rollback")
        wait_for(lambda: watcher.samples[-1].colors == BLUE, timeout=20, what="traffic back on blue")
    assert md["status"]["activeRevision"] == revision(pair.v1)
    assert md["status"]["history"][0]["outcome"] == "RolledBack"
    assert "post-promotion analysis failed" in rollout_of(md)["abortReason"]
    _assert_traffic_was_safe(watcher)
    sequence = watcher.color_sequence()
    assert sequence[-2:] == [GREEN, BLUE], sequence
