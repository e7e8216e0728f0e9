"""Which pod events reconcile at once: only the one that completes the candidate the rollout waits for."""

from __future__ import annotations

import pytest

from modeldeploy.desired.wake import completes_candidate

NEW, OLD = "rev-new", "rev-old"


def md(phase: str | None, replicas: int | None = 2, color: str = "green", revision: str = NEW) -> dict:
    spec = {} if replicas is None else {"replicas": replicas}
    rollout = None if phase is None else {"phase": phase, "color": color, "revision": revision}
    return {"metadata": {"name": "iris"}, "spec": spec, "status": {"rollout": rollout} if rollout else {}}


def pod(
    name: str, ready: bool = True, color: str = "green", revision: str = NEW, owner: str = "iris"
) -> dict:
    labels = {
        "modeldeploy.io/name": owner,
        "modeldeploy.io/color": color,
        "modeldeploy.io/revision": revision,
    }
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


READY_1 = pod("p1")
CASES = [
    # (id, ModelDeployment, the event's pod, the indexed pods, reconcile at once)
    ("the last candidate pod Ready while waiting", md("WaitingForCandidate"), pod("p2"), [READY_1], True),
    ("the index already holds the event's state", md("WaitingForCandidate"), pod("p2"), [READY_1, pod("p2")],
     True),
    ("Promoting: the last pod of the full-size candidate", md("Promoting"), pod("p2"), [READY_1], True),
    ("Deploying: the first revision's last pod", md("Deploying"), pod("p2"), [READY_1], True),
    ("one replica: its only pod", md("WaitingForCandidate", replicas=1), pod("p1"), [], True),
    ("replicas left out count as one", md("WaitingForCandidate", replicas=None), pod("p1"), [], True),
    ("the first of two pods Ready: wait for the window", md("WaitingForCandidate"), pod("p1"), [], False),
    ("a Ready pod counted twice is still one", md("WaitingForCandidate"), pod("p1"), [READY_1], False),
    ("the candidate's pod not Ready", md("WaitingForCandidate"), pod("p2", ready=False), [READY_1], False),
    ("a pod of the active colour", md("WaitingForCandidate"), pod("p2", color="blue"), [READY_1], False),
    ("a pod of an earlier revision on the candidate's colour", md("WaitingForCandidate"),
     pod("p2", revision=OLD), [READY_1], False),
    ("an old candidate pod not Ready does not count", md("WaitingForCandidate"), pod("p2"),
     [pod("p1", ready=False)], False),
    ("another ModelDeployment's pod", md("WaitingForCandidate"), pod("p2", owner="wine"), [READY_1], False),
    ("Stepping: traffic already moves by steps", md("Stepping"), pod("p2"), [READY_1], False),
    ("Completed: ordinary churn", md("Completed"), pod("p2"), [READY_1], False),
    ("no rollout state yet", md(None), pod("p2"), [READY_1], False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("md_body", "event_pod", "indexed", "now"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_pod_event_reconciles_at_once_only_when_it_completes_the_waited_candidate(
    md_body, event_pod, indexed, now
):
    assert completes_candidate(md_body, event_pod, indexed) is now
