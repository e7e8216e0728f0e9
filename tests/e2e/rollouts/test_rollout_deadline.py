"""progressDeadlineSeconds end to end: a candidate whose pods never become Ready (kwok makes them crash-loop
on a model that cannot load, or fail to pull their image) is aborted with the cause in status, conditions,
an Event and the history, while the stable Service's EndpointSlices stay on the active colour throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.operator import MODEL_LOAD_MESSAGE, condition, get_obj, kubectl_apply, wait_for
from harness.rollout import (
    BROKEN_IMAGES,
    EndpointWatcher,
    NamespaceWatcher,
    body,
    events,
    in_phase,
    install_image_fault_stages,
    revision,
    rollout_of,
    rollout_spec,
    serving,
    wait_rollout,
)

pytestmark = pytest.mark.e2e

DEADLINE = 10  # the smallest progressDeadlineSeconds the API accepts
BLUE = frozenset({"blue"})
ROLLOUT = {
    "steps": [{"weight": 50, "pauseSeconds": 2}],
    "scaleDownDelaySeconds": 3,
    "progressDeadlineSeconds": DEADLINE,
}


FAULTS = {
    # fault: words of the cause that status, the condition, the Event and the history must quote
    "crashloop": [MODEL_LOAD_MESSAGE, "exited with code 1", "CrashLoopBackOff"],
    "imagepull": ["ImagePullBackOff", BROKEN_IMAGES["imagepull"]],
}


@dataclass
class Rollout:
    name: str
    v1: dict
    v2: dict
    watcher: EndpointWatcher


@pytest.fixture(scope="module")
def rollouts(cluster, namespace, operator):
    """One ModelDeployment per fault, v1 serving, then every v2 at once (the deadlines run together)."""
    install_image_fault_stages(cluster)
    names = {fault: f"deadline-{fault}" for fault in FAULTS}
    watchers = NamespaceWatcher(cluster, namespace, list(names.values()))
    started: dict[str, Rollout] = {}
    for fault, name in names.items():
        v1, v2 = rollout_spec("1", ROLLOUT), rollout_spec("2", ROLLOUT)
        v2["server"] = {"image": BROKEN_IMAGES[fault]}
        started[fault] = Rollout(name, v1, v2, watchers.watchers[name])
        kubectl_apply(cluster, body(name, namespace, v1))
    for r in started.values():
        wait_rollout(cluster, namespace, r.name, serving(revision(r.v1)), what=f"{r.name} v1 serving")
    with watchers:
        for r in started.values():  # the EndpointSlices caught up with v1 before the rollout begins
            wait_for(
                lambda r=r: r.watcher.samples and r.watcher.samples[-1].colors == BLUE, what="v1 endpoints"
            )
            kubectl_apply(cluster, body(r.name, namespace, r.v2))
        yield started


@pytest.mark.parametrize("fault", FAULTS, ids=["model-load-crash-loop", "image-pull"])
def test_candidate_never_ready_is_aborted_at_the_deadline_with_the_cause(cluster, namespace, rollouts, fault):
    r, cause = rollouts[fault], FAULTS[fault]
    name, watcher = r.name, r.watcher
    md = wait_rollout(cluster, namespace, name, in_phase("Aborted"), timeout=DEADLINE + 60, what="abort")

    def candidate_scaled_down() -> bool:
        green = get_obj(cluster, "deployment", namespace, f"{name}-green") or {}
        return (green.get("spec") or {}).get("replicas") == 0

    wait_for(candidate_scaled_down, timeout=30, what="the failed candidate scaled down after the delay")

    state, status = rollout_of(md), md["status"]
    why = f"candidate not Ready within {DEADLINE}s"
    assert why in state["abortReason"], state
    for word in cause:
        assert word in state["abortReason"], state["abortReason"]
    assert status["activeRevision"] == revision(r.v1) and status["activeColor"] == "blue"
    entry = status["history"][0]
    assert (entry["revision"], entry["outcome"]) == (revision(r.v2), "Aborted")
    assert why in entry["reason"] and cause[0] in entry["reason"], entry
    degraded, progressing = condition(md, "Degraded"), condition(md, "Progressing")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolloutAborted"), degraded
    assert cause[0] in degraded["message"], degraded
    assert (progressing["status"], progressing["reason"]) == ("False", "RolloutAborted"), progressing
    assert condition(md, "Ready")["status"] == "True", "v1 still serves at full size"
    deadline_events = [
        e for e in events(cluster, namespace, name) if e["reason"] == "ProgressDeadlineExceeded"
    ]
    assert deadline_events and cause[0] in deadline_events[0]["message"], deadline_events

    assert watcher.samples, "the EndpointSlice sampler took no sample"
    assert watcher.problems() == [], watcher.problems()[:5]
    assert set(watcher.color_sequence()) == {BLUE}, "the unready candidate never got traffic"
    assert watcher.active_revisions() == [revision(r.v1)]
