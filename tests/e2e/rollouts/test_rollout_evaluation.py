"""Regular evaluation of the live model (spec.monitoring.evaluation) end to end, on the real control plane.

kwok makes pods Ready; real modelserve processes on loopback are the colours' model servers; the labelled
data set (iris holdout, a CSV) is served over loopback HTTP. Each scenario promotes v2 while v1 stays warm
(scaleDownDelaySeconds) and reads what the operator made of the live model's score: status.evaluation,
the operator's /metrics, Events, conditions, and -- with rollbackOnFailure -- the stable Service's
EndpointSlices going back to the warm colour without its pods being replaced.

The data set server can hold requests (``DatasetServer.hold``), so a test sees the promoted colour serve
before the evaluation answers: the evaluation of a large data set takes a while, here on purpose.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.operator import (
    OperatorProcess,
    condition,
    get_obj,
    kubectl_apply,
    wait_for,
)
from harness.probes import _QuietHandler
from harness.rollout import (
    EndpointWatcher,
    Pair,
    body,
    event_reasons,
    events,
    in_phase,
    revision,
    rollout_of,
    rollout_operator,
    rollout_spec,
    serving,
    serving_pairs,
    start_pair,
    train_models,
    wait_rollout,
)

pytestmark = pytest.mark.e2e

BLUE, GREEN = frozenset({"blue"}), frozenset({"green"})
THRESHOLD = 0.8  # the good iris model scores ~0.95 on the holdout, the bad one about chance


class _HeldHandler(_QuietHandler):
    def __init__(self, *args, gate: threading.Event, **kwargs) -> None:
        self.gate = gate
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.gate.wait(timeout=30)  # never longer than the operator's probe timeout allows for
        super().do_GET()


class DatasetServer:
    """The labelled data over loopback HTTP; `hold()` makes requests wait until `release()`."""

    def __init__(self, url: str, gate: threading.Event) -> None:
        self.url, self._gate = url, gate

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()


@contextmanager
def dataset_server(directory: Path) -> Iterator[DatasetServer]:
    gate = threading.Event()
    gate.set()
    handler = functools.partial(_HeldHandler, directory=str(directory), gate=gate)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield DatasetServer(f"http://127.0.0.1:{server.server_address[1]}", gate)
    finally:
        gate.set()
        server.shutdown()
        server.server_close()


def _spec(version: str, dataset_url: str, rollback: bool) -> dict:
    spec = rollout_spec(version, {"scaleDownDelaySeconds": 120, "progressDeadlineSeconds": 120})
    spec["monitoring"] = {
        "evaluation": {
            "datasetUri": f"{dataset_url}/holdout.csv",
            "labelColumn": "species",
            "metric": "accuracy",
            "threshold": THRESHOLD,
            "intervalSeconds": 60,
            "rollbackOnFailure": rollback,
        }
    }
    return spec


# name: (green model, rollbackOnFailure); v1 is the good model on blue everywhere.
SCENARIOS = {"rollback": ("bad", True), "passing": ("good", True), "report": ("bad", False)}


class Env:
    def __init__(self, cluster, namespace, data: DatasetServer, pairs: dict[str, Pair], operator) -> None:
        self.cluster, self.namespace, self.data, self.pairs = cluster, namespace, data, pairs
        self.operator: OperatorProcess = operator

    def watch(self, name: str) -> EndpointWatcher:
        return EndpointWatcher(self.cluster, self.namespace, name)

    def evaluated(self, name: str, revision_: str, timeout: float = 60) -> dict:
        """Waits for status.evaluation of `revision_` to hold a verdict; returns the ModelDeployment."""

        def judged(md: dict) -> bool:
            found = (md.get("status") or {}).get("evaluation") or {}
            return (
                found.get("revision") == revision_ and (found.get("result") or {}).get("passed") is not None
            )

        return wait_rollout(self.cluster, self.namespace, name, judged, timeout=timeout, what="evaluation")

    def pods(self, name: str, color: str) -> dict[str, str]:
        """Pod name -> uid of one colour: a reload would replace them."""
        found = self.cluster.get_json(
            "pods", "-n", self.namespace, "-l", f"modeldeploy.io/name={name},modeldeploy.io/color={color}"
        )
        return {p["metadata"]["name"]: p["metadata"]["uid"] for p in found["items"]}

    def scores(self, name: str) -> dict[tuple[str, str], float]:
        """(revision, metric) -> value of modeldeploy_check_score{check="evaluation"} for `name`."""
        found = {}
        for line in self.operator.metrics().splitlines():
            if line.startswith("modeldeploy_check_score{") and f'name="{name}"' in line:
                labels = dict(
                    part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(",")
                )
                labels = {k: v.strip('"') for k, v in labels.items()}
                if labels.get("check") == "evaluation":
                    found[(labels["revision"], labels["metric"])] = float(line.rsplit(" ", 1)[1])
        return found

    def checks_total(self, result: str) -> float:
        wanted = f'modeldeploy_rollout_checks_total{{check="evaluation",result="{result}"}}'
        lines = [s for s in self.operator.metrics().splitlines() if s.startswith(wanted)]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


@pytest.fixture(scope="module")
def env(cluster, namespace, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("evaluation")
    models = train_models(workdir / "models")
    with dataset_server(models.holdout_dir) as data:
        pairs = {
            name: start_pair(
                workdir,
                name,
                _spec("1", data.url, rollback),
                _spec("2", data.url, rollback),
                models.good,
                getattr(models, green),
                models,
            )
            for name, (green, rollback) in SCENARIOS.items()
        }
        with serving_pairs(pairs), rollout_operator(cluster, namespace, workdir, pairs) as operator:
            shared = Env(cluster, namespace, data, pairs, operator)
            for name, pair in pairs.items():  # all v1s at once: each test then only rolls out v2
                kubectl_apply(cluster, body(name, namespace, pair.v1))
            for name, pair in pairs.items():
                wait_rollout(cluster, namespace, name, serving(revision(pair.v1)), what=f"{name} v1")
            yield shared


def _promote_v2_and_watch_it_serve(env: Env, name: str, watcher: EndpointWatcher) -> None:
    """Applies v2 with the data set held, waits until green serves alone, then lets the evaluation run."""
    env.data.hold()
    try:
        kubectl_apply(env.cluster, body(name, env.namespace, env.pairs[name].v2))
        wait_rollout(env.cluster, env.namespace, name, in_phase("PostPromotion"), what=f"{name} promoted")
        wait_for(lambda: watcher.samples and watcher.samples[-1].colors == GREEN, timeout=20, what="on green")
    finally:
        env.data.release()


def _assert_traffic_was_safe(watcher: EndpointWatcher) -> None:
    assert watcher.samples, "the EndpointSlice sampler took no sample"
    assert watcher.problems() == [], watcher.problems()[:5]


def test_live_model_is_evaluated_once_it_serves(env):
    for name, pair in env.pairs.items():
        md = env.evaluated(name, revision(pair.v1))
        result = md["status"]["evaluation"]["result"]
        assert result["passed"] is True and result["score"] >= THRESHOLD, result
        assert "EvaluationPassed" in event_reasons(env.cluster, env.namespace, name)
        assert env.scores(name)[(revision(pair.v1), "score")] == pytest.approx(result["score"])


def test_failing_evaluation_rolls_back_to_the_warm_colour_without_reloading(env):
    name, pair = "rollback", env.pairs["rollback"]
    v1, v2 = revision(pair.v1), revision(pair.v2)
    blue_pods = env.pods(name, "blue")
    blue_generation = get_obj(env.cluster, "deployment", env.namespace, f"{name}-blue")["metadata"][
        "generation"
    ]
    failed_before = env.checks_total("failed")
    with env.watch(name) as watcher:
        _promote_v2_and_watch_it_serve(env, name, watcher)
        md = wait_rollout(env.cluster, env.namespace, name, in_phase("Aborted"), what="rolled back")
        wait_for(lambda: watcher.samples[-1].colors == BLUE, timeout=20, what="traffic back on blue")

    status = md["status"]
    assert (status["activeColor"], status["activeRevision"]) == ("blue", v1)
    assert (status["history"][0]["revision"], status["history"][0]["outcome"]) == (v2, "RolledBack")
    # The restored model is due for evaluation at once, so status may already carry v1's verdict; v2's failed
    # verdict is in the Event and the score metric either way.
    evaluation = status["evaluation"]
    assert evaluation["revision"] in (v2, v1), evaluation
    if evaluation["revision"] == v2:
        assert evaluation["result"]["passed"] is False, evaluation
    failed = [
        e["message"] for e in events(env.cluster, env.namespace, name) if e["reason"] == "EvaluationFailed"
    ]
    assert any(f"live model {v2}:" in message for message in failed), failed
    assert env.scores(name)[(v2, "score")] < THRESHOLD
    assert "live evaluation failed" in rollout_of(md)["abortReason"]
    degraded = condition(md, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolloutAborted"), degraded
    assert condition(md, "Ready")["status"] == "True"  # v1 serves
    reasons = event_reasons(env.cluster, env.namespace, name)
    assert "EvaluationFailed" in reasons and "EvaluationRollback" in reasons, reasons
    assert env.checks_total("failed") > failed_before
    # Straight back to the warm colour: the same pods, the Deployment's spec never touched.
    assert env.pods(name, "blue") == blue_pods
    blue = get_obj(env.cluster, "deployment", env.namespace, f"{name}-blue")
    assert blue["metadata"]["generation"] == blue_generation
    assert blue["spec"]["template"]["metadata"]["labels"]["modeldeploy.io/revision"] == v1
    _assert_traffic_was_safe(watcher)
    assert watcher.color_sequence()[-2:] == [GREEN, BLUE], watcher.color_sequence()


def test_passing_evaluation_leaves_the_promoted_model_alone(env):
    name, pair = "passing", env.pairs["passing"]
    v2 = revision(pair.v2)
    with env.watch(name) as watcher:
        _promote_v2_and_watch_it_serve(env, name, watcher)
        md = env.evaluated(name, v2)
        judged = len(watcher.samples)
        wait_for(lambda: len(watcher.samples) >= judged + 3, timeout=20, what="samples after the verdict")
    status = md["status"]
    result = status["evaluation"]["result"]
    assert result["passed"] is True and result["score"] >= THRESHOLD, result
    assert (status["activeColor"], status["activeRevision"]) == ("green", v2)
    assert rollout_of(md)["phase"] in ("PostPromotion", "Completed")
    assert condition(md, "Degraded")["status"] == "False"
    assert status["history"][0]["outcome"] == "Promoted"
    assert "EvaluationRollback" not in event_reasons(env.cluster, env.namespace, name)
    _assert_traffic_was_safe(watcher)
    assert watcher.color_sequence()[-1] == GREEN and BLUE not in watcher.color_sequence()[1:]


def test_failing_evaluation_without_rollback_only_reports(env):
    name, pair = "report", env.pairs["report"]
    v2 = revision(pair.v2)
    with env.watch(name) as watcher:
        _promote_v2_and_watch_it_serve(env, name, watcher)
        md = env.evaluated(name, v2)

        def degraded(md: dict) -> bool:
            return condition(md, "Degraded").get("reason") == "EvaluationFailed"

        md = wait_rollout(env.cluster, env.namespace, name, degraded, timeout=20, what="Degraded condition")
    status = md["status"]
    result = status["evaluation"]["result"]
    assert result["passed"] is False and result["score"] < THRESHOLD, result
    assert (status["activeColor"], status["activeRevision"]) == ("green", v2), "no rollback was asked for"
    cond = condition(md, "Degraded")
    assert cond["status"] == "True" and v2 in cond["message"], cond
    assert condition(md, "Ready")["status"] == "True"
    assert status["phase"] in ("Progressing", "Degraded"), status["phase"]  # PostPromotion, then Completed
    reasons = event_reasons(env.cluster, env.namespace, name)
    assert "EvaluationFailed" in reasons and "EvaluationRollback" not in reasons, reasons
    _assert_traffic_was_safe(watcher)
    assert watcher.color_sequence()[-1] == GREEN
