"""Which pod events reconcile their ModelDeployment at once instead of after the coalescing window: the one
that completes the candidate a rollout waits for, so traffic switches as soon as its pods are Ready. Ordinary
churn (pods starting, an old colour scaling down, restarts) keeps the window: a burst still costs one pass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modeldeploy.api import RolloutPhase
from modeldeploy.desired.naming import LABEL_COLOR, LABEL_NAME, LABEL_REVISION
from modeldeploy.desired.pods import pod_ready, pods_of

# The phases that wait for the candidate's pods to be Ready (rollout._waiting_for_pods, _deploying).
WAITING_FOR_PODS = frozenset(
    {RolloutPhase.Deploying, RolloutPhase.WaitingForCandidate, RolloutPhase.Promoting}
)


def completes_candidate(
    md: Mapping[str, Any], pod: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> bool:
    """Whether `pod` (its state in the event) is Ready, runs the revision on the colour the rollout waits for,
    and with it that colour has `spec.replicas` Ready pods. `pods` are the ModelDeployment's pods as indexed,
    with or without this event's state of `pod` (it is counted once either way)."""
    state = (md.get("status") or {}).get("rollout") or {}
    if state.get("phase") not in WAITING_FOR_PODS or not pod_ready(pod):
        return False
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    color, revision = state.get("color"), state.get("revision")
    if not color or labels.get(LABEL_COLOR) != color or labels.get(LABEL_REVISION) != revision:
        return False
    name = str((md.get("metadata") or {}).get("name") or "")
    if not name or labels.get(LABEL_NAME) != name:
        return False
    others = sum(
        pod_ready(p)
        for p in pods_of(pods, name, color, revision)
        if (p.get("metadata") or {}).get("name") != meta.get("name")
    )
    replicas = int((md.get("spec") or {}).get("replicas", 1) or 0)
    return others + 1 >= max(replicas, 1)
