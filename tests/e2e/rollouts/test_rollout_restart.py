"""The operator SIGKILLed and restarted in every phase of a rollout, on the real control plane.

One ModelDeployment per phase; each is held in its phase by real means, all are killed by one SIGKILL
and picked up by one restarted operator (so the whole table costs one restart):
- Deploying / WaitingForCandidate: the pods' nodeSelector matches no node until a kwok node is labelled;
- Promoting: the candidate's pods may not share a node, and during its 25% step (one pod) every other
  node loses the label they need, so the second pod promotion asks for waits until it is back;
- SmokeTesting / QualityGate: the local model server the check talks to is stopped (SIGSTOP), so the
  check hangs in flight (the candidate's server for the smoke test, the active one for the gate's
  champion score);
- Stepping (a weighted step with a pause, analysed), Paused (waiting for promote), PostPromotion (the warm
  window) and Aborted (candidate still warm): held by their own durations or by nobody promoting.
After the restart each continues from status: the same rollout completes (or stays aborted), the active
revision is never lost, and the stable Service's EndpointSlices never point at an unready colour.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.operator import (
    OperatorProcess,
    get_md,
    get_obj,
    kubectl_apply,
    wait_for,
)
from harness.probes import file_server
from harness.rollout import (
    BLUE,
    BOTH,
    GREEN,
    EndpointWatcher,
    NamespaceWatcher,
    Traffic,
    body,
    in_phase,
    operator_identity,
    plugin,
    revision,
    rollout_of,
    rollout_spec,
    serving,
    start_pair,
    train_models,
    v2_body,
    wait_all_ready,
    wait_rollout,
)
from harness.serving import Server

pytestmark = pytest.mark.e2e

HOLD_LABEL = "e2e.modeldeploy.io/restart-hold"
ONE_NODE_LABEL = "e2e.modeldeploy.io/restart-hold-one"  # nodes the Promoting scenario's candidate may use
# Phases that end by time alone are set up last and killed in at once; long enough for a busy machine,
# and to tell "resumed" from "started over" after the restart.
HELD_SECONDS = 30


@dataclass(frozen=True)
class Scenario:
    phase: str  # rollout phase the operator is killed in
    rollout: dict[str, Any]
    servers: str | None = None  # whose local model servers sit behind the colours (scenarios with checks)
    held_v1: bool = False  # v1 itself waits for the node label (the Deploying scenario has no v2)
    held_v2: bool = False  # v2's pods wait for the node label
    one_pod_v2: bool = False  # v2 pods one per labelled node (the fixture unlabels all nodes but one)
    timed: bool = False  # the phase ends by time: set up last
    ends: str = "promoted"  # promoted | aborted | deployed


def _scenarios(dataset_url: str) -> dict[str, Scenario]:
    gate = {
        "datasetUri": f"{dataset_url}/holdout.csv",
        "labelColumn": "species",
        "metric": "accuracy",
        "threshold": 0.8,
        "maxRegression": 0.05,
    }
    # The smoke scenario borrows the gate scenario's servers (fewer processes): its request names their model.
    smoke = {"requests": [{"path": "/v2/models/gate/infer", "body": v2_body([5.1, 3.5, 1.4, 0.2])}]}
    short = {"steps": [{"weight": 50, "pauseSeconds": 1}], "scaleDownDelaySeconds": 1}
    held = {"steps": [{"weight": 50}], "scaleDownDelaySeconds": HELD_SECONDS}
    return {
        "deploying": Scenario("Deploying", short, held_v1=True, ends="deployed"),
        "waiting": Scenario("WaitingForCandidate", short, held_v2=True),
        "smoke": Scenario("SmokeTesting", {**short, "smoke": smoke}, servers="gate"),
        "gate": Scenario("QualityGate", {**short, "qualityGate": gate}, servers="gate"),
        "paused": Scenario("Paused", {**held, "scaleDownDelaySeconds": 1}),
        # 25% of 2 replicas is one candidate pod; promoting wants the second one back.
        "promoting": Scenario(
            "Promoting",
            {"steps": [{"weight": 25, "pauseSeconds": 6}], "scaleDownDelaySeconds": 1},
            one_pod_v2=True,
        ),
        "stepping": Scenario(
            "Stepping",
            {
                "steps": [{"weight": 50, "pauseSeconds": HELD_SECONDS}],
                "analysis": {"maxErrorRate": 0.1, "minRequests": 3, "intervalSeconds": 1},
                "scaleDownDelaySeconds": 1,
            },
            servers="stepping",
            timed=True,
        ),
        "warm": Scenario("PostPromotion", {"steps": [], "scaleDownDelaySeconds": HELD_SECONDS}, timed=True),
        "aborted": Scenario("Aborted", held, timed=True, ends="aborted"),
    }


@dataclass
class Rollout:
    name: str
    scenario: Scenario
    v1: dict[str, Any]
    v2: dict[str, Any]
    watcher: EndpointWatcher
    at_kill: dict[str, Any] = field(default_factory=dict)  # the ModelDeployment when the operator died


@dataclass
class World:
    cluster: Any
    namespace: str
    rollouts: dict[str, Rollout]
    killed_utc: datetime  # to the second, as the operator stamps status
    restarted_utc: datetime
    restarted_at: float  # time.monotonic() when the new operator was healthy
    stepping_judged: dict[str, Any] = field(default_factory=dict)  # stepping's first pass by the new operator


def _spec(name: str, version: str, scenario: Scenario, hold: str) -> dict:
    spec = rollout_spec(version, scenario.rollout)
    if (scenario.held_v1 and version == "1") or (scenario.held_v2 and version == "2"):
        spec["server"] = {"nodeSelector": {HOLD_LABEL: hold}}
    if scenario.one_pod_v2 and version == "2":
        own_pods = {"matchLabels": {"modeldeploy.io/name": name, "modeldeploy.io/color": "green"}}
        one_per_node = {"labelSelector": own_pods, "topologyKey": "kubernetes.io/hostname"}
        spec["server"] = {
            "nodeSelector": {ONE_NODE_LABEL: hold},
            "affinity": {
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [one_per_node]}
            },
        }
    return spec


def _freeze(server: Server) -> None:
    """The model server stopped (SIGSTOP): requests to it hang, as to a wedged process."""
    os.kill(server.process.pid, signal.SIGSTOP)


def _thaw(server: Server) -> None:
    os.kill(server.process.pid, signal.SIGCONT)


def _kwok_nodes(cluster) -> list[str]:
    found = cluster.kubectl("get", "nodes", "-l", "type=kwok", "-o", "jsonpath={.items[*].metadata.name}")
    nodes = sorted(found.stdout.split())
    assert len(nodes) >= 2, f"the Promoting scenario needs two kwok nodes, found {nodes}"
    return nodes


def _label_node(cluster, node: str, key: str, value: str | None) -> None:
    change = f"{key}={value}" if value is not None else f"{key}-"
    cluster.kubectl("label", "node", node, change, "--overwrite", check=value is not None)


def _keep_one_node(cluster, namespace: str, name: str, nodes: list[str]) -> None:
    """During the step (one candidate pod), take the label off every node but that pod's: the second pod
    Promoting asks for then has nowhere to go."""

    def single_pod_node() -> str | None:
        pods = cluster.get_json(
            "pods", "-n", namespace, "-l", f"modeldeploy.io/name={name},modeldeploy.io/color=green"
        )
        alive = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        return alive[0]["spec"].get("nodeName") if len(alive) == 1 else None

    keep = wait_for(single_pod_node, timeout=30, what=f"{name}: one candidate pod during the step")
    for node in nodes:
        if node != keep:
            _label_node(cluster, node, ONE_NODE_LABEL, None)


@pytest.fixture(scope="module")
def world(cluster, namespace, tmp_path_factory):
    """Every scenario brought to its phase, one SIGKILL, one restart, the holds released."""
    workdir = tmp_path_factory.mktemp("restart")
    models = train_models(workdir / "models")
    hold = namespace  # the label value only this module's pods wait for
    nodes = _kwok_nodes(cluster)
    with file_server(models.holdout_dir) as dataset_url, contextlib.ExitStack() as stack:
        scenarios = _scenarios(dataset_url)
        watchers = NamespaceWatcher(cluster, namespace, list(scenarios))
        rollouts = {
            name: Rollout(
                name,
                scenario,
                _spec(name, "1", scenario, hold),
                _spec(name, "2", scenario, hold),
                watchers.watchers[name],
            )
            for name, scenario in scenarios.items()
        }
        pairs = {
            name: start_pair(workdir, name, r.v1, r.v2, models.good, models.good, models)
            for name, r in rollouts.items()
            if r.scenario.servers == name
        }
        for pair in pairs.values():
            stack.callback(pair.stop)
        addresses = {
            f"{namespace}/{n}": pairs[s.servers].addresses for n, s in scenarios.items() if s.servers
        }
        identity = operator_identity(cluster, namespace, workdir)
        env = {
            "MODELDEPLOY_PROBE_ADDRESSES": json.dumps(addresses),
            # A frozen server must hold its check in flight until the kill, not fail it.
            "MODELDEPLOY_PROBE_TIMEOUT_SECONDS": "300",
            "MODELDEPLOY_CHECK_BUDGET_SECONDS": "300",
        }

        def start_operator() -> OperatorProcess:
            started = OperatorProcess(identity, namespace, workdir / "operator.log", extra_env=env).start()
            stack.callback(started.kill)  # the clean stop is not what this module tests (and is slow here)
            return started

        operator = start_operator()
        for node in nodes:
            for key in (HOLD_LABEL, ONE_NODE_LABEL):
                stack.callback(_label_node, cluster, node, key, None)
        for node in nodes:
            _label_node(cluster, node, ONE_NODE_LABEL, hold)
        for r in rollouts.values():
            kubectl_apply(cluster, body(r.name, namespace, r.v1))
        stack.enter_context(watchers)
        for r in rollouts.values():
            if not r.scenario.held_v1:
                wait_rollout(cluster, namespace, r.name, serving(revision(r.v1)), what=f"{r.name} v1")

        wait_all_ready(list(pairs.values()))  # they started while the v1s were deployed

        # Phases held until released (and the aborted one, held in a split until its abort) go first.
        frozen = [pairs["gate"].green, pairs["gate"].blue]  # the smoke test's target, the gate's champion
        for server in frozen:
            _freeze(server)
            stack.callback(_thaw, server)
        untimed = [r for r in rollouts.values() if not r.scenario.held_v1 and not r.scenario.timed]
        for r in [*untimed, rollouts["aborted"]]:
            kubectl_apply(cluster, body(r.name, namespace, r.v2))
        wait_rollout(cluster, namespace, "promoting", in_phase("Stepping"), what="promoting: its step")
        _keep_one_node(cluster, namespace, "promoting", nodes)
        for r in untimed:
            wait_rollout(cluster, namespace, r.name, in_phase(r.scenario.phase), what=f"{r.name} held")
        wait_rollout(cluster, namespace, "aborted", in_phase("Paused"), what="aborted: split held")
        # Then the phases that end by time, the abort last (it is the quickest to reach).
        stepping = pairs["stepping"]
        stack.enter_context(Traffic("stepping", [stepping.blue.url, stepping.green.url], rate=10))
        for name in ("stepping", "warm"):
            kubectl_apply(cluster, body(name, namespace, rollouts[name].v2))
        for name in ("stepping", "warm"):
            wait_rollout(cluster, namespace, name, in_phase(scenarios[name].phase), what=f"{name} held")
        plugin(cluster, "abort", namespace, "aborted")
        wait_rollout(cluster, namespace, "aborted", in_phase("Aborted"), what="aborted")

        operator.kill()
        killed = datetime.now(UTC).replace(microsecond=0)
        for r in rollouts.values():
            r.at_kill = get_md(cluster, namespace, r.name) or {}
        start_operator()
        shared = World(cluster, namespace, rollouts, killed, datetime.now(UTC), time.monotonic())

        _label_node(cluster, nodes[0], HOLD_LABEL, hold)
        for node in nodes:
            _label_node(cluster, node, ONE_NODE_LABEL, hold)
        for server in frozen:
            _thaw(server)
        plugin(cluster, "promote", namespace, "paused")

        def judged_again(md: dict) -> bool:
            state = rollout_of(md)
            at = (state.get("analysis") or {}).get("at")
            return state.get("phase") != "Stepping" or bool(at and _time(at) >= killed)

        shared.stepping_judged = wait_rollout(
            cluster, namespace, "stepping", judged_again, what="judged again"
        )
        yield shared


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _replicas(world: World, name: str, color: str) -> int | None:
    found = get_obj(world.cluster, "deployment", world.namespace, f"{name}-{color}") or {}
    return (found.get("spec") or {}).get("replicas")


def _end(world: World, r: Rollout) -> dict:
    """Waits for the scenario's end state; returns the ModelDeployment."""
    cluster, namespace, name = world.cluster, world.namespace, r.name
    if r.scenario.ends == "deployed":
        return wait_rollout(cluster, namespace, name, serving(revision(r.v1)), what="v1 deployed")
    if r.scenario.ends == "aborted":
        wait_for(
            lambda: _replicas(world, name, "green") == 0, timeout=60, what="aborted candidate scaled down"
        )
        return get_md(cluster, namespace, name) or {}

    def completed(md: dict) -> bool:
        return (
            md["status"].get("activeRevision") == revision(r.v2)
            and rollout_of(md).get("phase") == "Completed"
        )

    md = wait_rollout(cluster, namespace, name, completed, timeout=90, what="v2 promoted and completed")
    wait_for(lambda: _replicas(world, name, "blue") == 0, timeout=30, what="previous colour scaled down")
    return md


def _timeline(watcher: EndpointWatcher) -> list[tuple[float, str | None, list[str], list[str]]]:
    """What the sampler saw, one line per change: (seconds, phase, colours, problems)."""
    lines: list[tuple[float, str | None, list[str], list[str]]] = []
    for s in watcher.samples:
        line = (round(s.at - watcher.samples[0].at, 1), s.phase, sorted(s.colors), s.problems)
        if not lines or lines[-1][1:] != line[1:]:
            lines.append(line)
    return lines


ACTIVE = {"deployed": ["v1"], "promoted": ["v1", "v2"], "aborted": ["v1"]}  # revisions ever active


@pytest.mark.parametrize("name", list(_scenarios("")))
def test_operator_killed_in_each_phase_continues_from_status(world, name):
    r, ends = world.rollouts[name], world.rollouts[name].scenario.ends
    before = rollout_of(r.at_kill)
    assert before.get("phase") == r.scenario.phase, f"the kill missed {r.scenario.phase}: {before}"
    md = _end(world, r)
    state, status = rollout_of(md), md["status"]

    # The same rollout went on: not started again from scratch by the new operator.
    if ends == "aborted":
        assert state["phase"] == "Aborted" and status["history"][0] == r.at_kill["status"]["history"][0]
        after = {s.phase for s in r.watcher.samples if s.at >= world.restarted_at and s.phase}
        assert after == {"Aborted"}, _timeline(r.watcher)
        warm_until = _time(before["scaleDownAt"])
        assert warm_until > world.killed_utc, "the candidate was warm at the kill: the new operator scaled it"
    else:
        entry = status["history"][0]
        assert entry["outcome"] == "Promoted" and entry["startedAt"] == before["startedAt"], entry

    # Traffic: never an unready pod, never no endpoint once something served, the active revision kept.
    watcher = r.watcher
    active = [revision(r.v1 if version == "v1" else r.v2) for version in ACTIVE[ends]]
    final = GREEN if ends == "promoted" else BLUE
    wait_for(
        lambda: watcher.samples[-1].colors == final and watcher.samples[-1].active_revision == active[-1],
        timeout=30,
        what=f"the sampler sees {sorted(final)} serving {active[-1]}",
    )
    served = next(i for i, s in enumerate(watcher.samples) if s.colors)  # "never empty" once it served
    problems = [(s.phase, s.problems) for s in watcher.samples[served:] if s.problems]
    assert problems == [], (problems[:5], _timeline(watcher))
    revisions = watcher.active_revisions()
    assert revisions[revisions[0] is None :] == active, "the active revision was lost or changed"
    sequence = watcher.color_sequence()
    assert sequence[-1] == final and GREEN not in sequence[:-1], sequence

    if name in ("smoke", "gate"):  # the check cut short by the kill ran again, to its verdict
        result = state["smoke" if name == "smoke" else "qualityGate"]
        assert result["passed"] is True and _time(result["at"]) >= world.killed_utc, result
    if name == "stepping":  # the step kept its start (not begun again by the new operator), and its length
        assert BOTH in watcher.colors_in("Stepping")
        judged = rollout_of(world.stepping_judged)
        if judged["phase"] == "Stepping":
            assert judged["stepStartedAt"] == before["stepStartedAt"], (before, judged)
        promoted_at = _time(status["history"][0]["finishedAt"])
        assert promoted_at >= _time(before["stepStartedAt"]) + timedelta(seconds=HELD_SECONDS)
    if name == "promoting":  # held at the split while the second candidate pod could not start
        held = {s.colors for s in watcher.samples if s.phase == "Promoting" and s.at < world.restarted_at}
        assert held == {BOTH}, _timeline(watcher)
    if name == "warm":  # the previous colour stayed warm for the whole window
        assert _time(state["phaseStartedAt"]) >= _time(before["scaleDownAt"]), state
