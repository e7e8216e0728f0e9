"""Where a failed live evaluation rolls back to, end to end on the real control plane.

The live evaluation (spec.monitoring.evaluation with rollbackOnFailure) reads a labelled data set whose labels
are all wrong, so every model fails it. A rollback may only go to the colour the serving revision replaced at
its own promotion, while that colour is warm and Ready: never to a colour an earlier rollout left behind in
status (an aborted candidate, a revision that failed before). kwok makes the pods Ready; real modelserve
processes on loopback answer the evaluation; the stable Service's EndpointSlices are sampled throughout.
"""

from __future__ import annotations

import pytest

from harness.operator import condition, kubectl_apply
from harness.probes import file_server
from harness.rollout import (
    BLUE,
    GREEN,
    EndpointWatcher,
    Pair,
    body,
    events,
    in_phase,
    plugin,
    revision,
    rollout_of,
    rollout_operator,
    rollout_spec,
    serving,
    serving_pairs,
    start_pair,
    train_models,
    wait_rollout,
    wait_traffic_back,
)

pytestmark = pytest.mark.e2e

THRESHOLD = 0.8  # the iris model scores ~0.95 on the true labels and ~0 on the shifted ones
WARM = {"scaleDownDelaySeconds": 300, "progressDeadlineSeconds": 120}
# One ModelDeployment per test; every colour serves the good model (the labels decide the verdicts).
NAMES = ("stale", "revert", "second")


def evaluated_spec(version: str, dataset_url: str, rollout: dict | None = None) -> dict:
    spec = rollout_spec(version, rollout or WARM)
    spec["monitoring"] = {
        "evaluation": {
            "datasetUri": dataset_url,
            "labelColumn": "species",
            "metric": "accuracy",
            "threshold": THRESHOLD,
            "intervalSeconds": 60,
            "rollbackOnFailure": True,
        }
    }
    return spec


class Env:
    def __init__(self, cluster, namespace: str, data_url: str, pairs: dict[str, Pair]) -> None:
        self.cluster, self.namespace, self.pairs = cluster, namespace, pairs
        self.wrong, self.right = f"{data_url}/holdout-wrong.csv", f"{data_url}/holdout.csv"

    def apply(self, name: str, spec: dict) -> str:
        kubectl_apply(self.cluster, body(name, self.namespace, spec))
        return revision(spec)

    def wait(self, name: str, predicate, what: str, timeout: float = 90) -> dict:
        return wait_rollout(self.cluster, self.namespace, name, predicate, timeout=timeout, what=what)

    def watch(self, name: str) -> EndpointWatcher:
        return EndpointWatcher(self.cluster, self.namespace, name)

    def messages(self, name: str, reason: str) -> list[str]:
        return [
            e.get("message", "") for e in events(self.cluster, self.namespace, name) if e["reason"] == reason
        ]

    def abort_a_held_candidate(self, name: str, version: str) -> str:
        """Rolls `version` out to the green slot, holds it at a 50% step, aborts it by request and waits
        until traffic is back on blue: status then names green (that candidate, still warm) previousColor."""
        held = rollout_spec(version, {**WARM, "steps": [{"weight": 50}]})
        candidate = self.apply(name, held)
        self.wait(name, in_phase("Paused"), f"{name}: {version} held at 50%")
        plugin(self.cluster, "abort", self.namespace, name)
        md = self.wait(name, in_phase("Aborted"), f"{name}: {version} aborted")
        assert (rollout_of(md)["previousColor"], rollout_of(md)["previousRevision"]) == ("green", candidate)
        with self.watch(name) as watcher:
            wait_traffic_back(watcher, self.cluster, self.namespace, name, "blue")
        return candidate


def evaluated(revision_: str, passed: bool):
    def check(md: dict) -> bool:
        found = (md.get("status") or {}).get("evaluation") or {}
        return found.get("revision") == revision_ and (found.get("result") or {}).get("passed") is passed

    return check


@pytest.fixture(scope="module")
def env(cluster, namespace, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rollback-target")
    models = train_models(workdir / "models")
    v1 = rollout_spec("1", WARM)
    pairs = {
        name: start_pair(workdir, name, v1, rollout_spec("2", WARM), models.good, models.good, models)
        for name in NAMES
    }
    with (
        serving_pairs(pairs),
        rollout_operator(cluster, namespace, workdir, pairs),
        file_server(models.holdout_dir) as data_url,
    ):
        shared = Env(cluster, namespace, data_url, pairs)
        for name in NAMES:  # v1, healthy, on blue everywhere; no evaluation yet
            shared.apply(name, v1)
        for name in NAMES:
            shared.wait(name, serving(revision(v1)), f"{name} v1")
        yield shared


def test_a_failed_live_evaluation_rolls_back_to_the_colour_the_rollout_replaced_not_an_earlier_ones(env):
    """An earlier rollout (aborted) left green in status as previousColor; v2 then takes green, is promoted,
    fails its live evaluation, and goes back to blue (v1), the colour it replaced. The restored v1 fails
    the same data set too: it stays, and the Events say why nothing rolls back again."""
    name, v1 = "stale", revision(rollout_spec("1", WARM))
    aborted = env.abort_a_held_candidate(name, "1b")
    with env.watch(name) as watcher:
        v2 = env.apply(name, evaluated_spec("2", env.wrong))
        md = env.wait(name, in_phase("Aborted"), "v2 rolled back")
        wait_traffic_back(watcher, env.cluster, env.namespace, name, "blue")
        md = env.wait(name, evaluated(v1, False), "the restored v1 judged too", timeout=60)
        settled = len(watcher.samples)
        env.wait(
            name, lambda _: len(watcher.samples) >= settled + 3, "samples after v1's verdict", timeout=20
        )
    status = md["status"]
    assert (status["activeColor"], status["activeRevision"]) == ("blue", v1)
    assert [(h["revision"], h["outcome"]) for h in status["history"][:3]] == [
        (v2, "RolledBack"),
        (v2, "Promoted"),
        (aborted, "Aborted"),
    ]
    why = status["history"][0]["reason"]
    assert why.startswith("live evaluation failed: ") and f"threshold {THRESHOLD}" in why, why
    assert rollout_of(md)["abortReason"] == why
    assert any(f"rolled back from {v2} to {v1}" in m for m in env.messages(name, "EvaluationRollback"))
    # v1 failed as well, but it replaced nothing: it is not "rolled back" onto v2 (green, still warm).
    unavailable = env.messages(name, "RollbackUnavailable")
    assert any(f"live model {v1} failed its evaluation; not rolled back" in m for m in unavailable), (
        unavailable
    )
    assert rollout_of(md)["previousColor"] == "green" and rollout_of(md)["previousRevision"] == v2
    assert condition(md, "Degraded")["status"] == "True"
    assert watcher.problems() == [], watcher.problems()[:5]
    assert watcher.color_sequence() == [BLUE, GREEN, BLUE], watcher.color_sequence()


def test_a_revert_after_an_aborted_rollout_is_never_rolled_back_onto_the_aborted_candidate(env):
    """v1b (green) aborted and still warm; the spec goes back to v1 with the evaluation: v1 fails it and
    stays on blue, Degraded, with a RollbackUnavailable Event saying why, never switching to green."""
    name, v1 = "revert", revision(rollout_spec("1", WARM))
    aborted = env.abort_a_held_candidate(name, "1b")
    with env.watch(name) as watcher:
        assert env.apply(name, evaluated_spec("1", env.wrong)) == v1  # monitoring is no part of the revision
        md = env.wait(name, evaluated(v1, False), "v1 judged on the wrong labels", timeout=60)
        md = env.wait(
            name, lambda m: condition(m, "Degraded").get("reason") == "EvaluationFailed", "Degraded"
        )
        settled = len(watcher.samples)
        env.wait(name, lambda _: len(watcher.samples) >= settled + 3, "samples after the verdict", timeout=20)
    status = md["status"]
    assert (status["activeColor"], status["activeRevision"]) == ("blue", v1)
    assert rollout_of(md)["phase"] == "Completed"
    assert (rollout_of(md)["previousColor"], rollout_of(md)["previousRevision"]) == ("green", aborted)
    assert "RolledBack" not in [h["outcome"] for h in status["history"]]
    assert env.messages(name, "EvaluationRollback") == []
    unavailable = env.messages(name, "RollbackUnavailable")
    assert any("was not promoted by the last rollout" in m for m in unavailable), unavailable
    assert "not rolled back" in rollout_of(md)["message"]
    assert v1 in condition(md, "Degraded")["message"]
    assert watcher.problems() == [], watcher.problems()[:5]
    assert watcher.color_sequence() == [BLUE], watcher.color_sequence()


def test_a_second_rollout_rolls_back_to_its_own_previous_colour(env):
    """v1 (blue) -> v2 (green) completes, its evaluation passing and blue scaled down; v3 then goes to blue,
    fails its evaluation and rolls back to green (v2): the colour v3 replaced, not v1's."""
    name = "second"
    v2 = env.apply(name, evaluated_spec("2", env.right, {**WARM, "scaleDownDelaySeconds": 3}))
    env.wait(name, lambda m: serving(v2)(m) and in_phase("Completed")(m), "v2 completed")
    env.wait(name, evaluated(v2, True), "v2 passes on the true labels", timeout=60)
    with env.watch(name) as watcher:
        v3 = env.apply(name, evaluated_spec("3", env.wrong))
        md = env.wait(name, in_phase("Aborted"), "v3 rolled back")
        wait_traffic_back(watcher, env.cluster, env.namespace, name, "green")
    status = md["status"]
    assert (status["activeColor"], status["activeRevision"]) == ("green", v2)
    assert [(h["revision"], h["outcome"]) for h in status["history"][:2]] == [
        (v3, "RolledBack"),
        (v3, "Promoted"),
    ]
    assert status["history"][0]["reason"].startswith("live evaluation failed: ")
    assert any(f"rolled back from {v3} to {v2}" in m for m in env.messages(name, "EvaluationRollback"))
    assert watcher.problems() == [], watcher.problems()[:5]
    assert watcher.color_sequence() == [GREEN, BLUE, GREEN], watcher.color_sequence()
