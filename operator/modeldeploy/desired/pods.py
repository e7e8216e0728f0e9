"""Why a serving pod is not getting Ready, read from its status (pure).

Public: ``pod_failure(pod) -> Failure | None``, ``first_failure(pods) -> Failure | None``,
``longest_init(pods) -> InitRunning | None``, ``pod_ready(pod)``, ``pods_of(pods, name, color=None,
revision=None)``, ``Failure``, ``InitRunning``, ``EXIT_REASONS``.

Quotes the container's termination message (modelserve writes the cause there: load failure, failed
warm-up, checksum mismatch, download failure), and names OOM kills, image pull failures, config errors and
unschedulable pods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.desired.naming import LABEL_COLOR, LABEL_NAME, LABEL_REVISION

# modelserve's exit codes (serving contract) -> condition reason.
EXIT_REASONS = {
    1: "ModelLoadFailed",
    2: "InvalidConfiguration",
    3: "ChecksumMismatch",
    4: "ModelDownloadFailed",
    5: "WarmupFailed",
}
FETCH_EXIT_REASONS = {3: "ChecksumMismatch", 4: "ModelDownloadFailed"}
BAD_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
MAX_QUOTE = 300


@dataclass(frozen=True)
class Failure:
    reason: str  # CamelCase, for the Degraded condition
    message: str  # names the pod and container, quotes the cause

    def __str__(self) -> str:
        return self.message


def _quote(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


def _terminated_failure(
    pod: str, cs: Mapping[str, Any], term: Mapping[str, Any], init: bool
) -> Failure | None:
    code = term.get("exitCode", 0)
    if term.get("reason") == "OOMKilled":
        return Failure(
            "OOMKilled", f"pod {pod}: container {cs['name']} was OOM-killed; raise resources.limits.memory"
        )
    if not code:
        return None
    reasons = FETCH_EXIT_REASONS if init else EXIT_REASONS
    reason = reasons.get(code, "InitContainerFailed" if init else "ContainerFailed")
    said = _quote(term.get("message"))
    return Failure(
        reason, f"pod {pod}: container {cs['name']} exited with code {code}" + (f": {said}" if said else "")
    )


def _container_failure(pod: str, cs: Mapping[str, Any], init: bool) -> Failure | None:
    state = cs.get("state") or {}
    waiting = state.get("waiting") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    terminated = state.get("terminated") or {}
    if terminated:
        found = _terminated_failure(pod, cs, terminated, init)
        if found:
            return found
    if waiting.get("reason") in BAD_WAITING:
        if waiting["reason"] == "CrashLoopBackOff" and last:
            found = _terminated_failure(pod, cs, last, init)
            if found:
                return Failure(found.reason, f"{found.message} (CrashLoopBackOff)")
        said = _quote(waiting.get("message"))
        return Failure(
            waiting["reason"],
            f"pod {pod}: container {cs['name']} {waiting['reason']}" + (f": {said}" if said else ""),
        )
    if last and not cs.get("ready"):  # started again after a failure and not ready: that failure is why
        found = _terminated_failure(pod, cs, last, init)
        if found:
            return Failure(found.reason, f"{found.message} (restarts: {cs.get('restartCount', 0)})")
    if last.get("reason") == "OOMKilled":  # running again, but it was killed for memory
        return _terminated_failure(pod, cs, last, init)
    return None


def pod_failure(pod: Mapping[str, Any]) -> Failure | None:
    name = (pod.get("metadata") or {}).get("name", "?")
    status = pod.get("status") or {}
    for cs in status.get("initContainerStatuses") or []:
        found = _container_failure(name, cs, init=True)
        if found:
            return found
    for cs in status.get("containerStatuses") or []:
        found = _container_failure(name, cs, init=False)
        if found:
            return found
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return Failure("Unschedulable", f"pod {name} cannot be scheduled: {_quote(cond.get('message'))}")
    if status.get("phase") == "Failed":
        return Failure(
            status.get("reason") or "PodFailed", f"pod {name} failed: {_quote(status.get('message'))}"
        )
    return None


@dataclass(frozen=True)
class InitRunning:
    """An init container still running (e.g. a fetch stuck on an unreachable model store) and since when."""

    what: str  # "pod P: init container C"
    started_at: str  # RFC 3339, from the container's state.running.startedAt


def longest_init(pods: Iterable[Mapping[str, Any]]) -> InitRunning | None:
    """The init container that has been running longest among `pods`, if any runs."""
    running = [
        InitRunning(
            f"pod {(p.get('metadata') or {}).get('name', '?')}: init container {cs.get('name', '?')}",
            ((cs.get("state") or {}).get("running") or {})["startedAt"],
        )
        for p in pods
        for cs in (p.get("status") or {}).get("initContainerStatuses") or []
        if ((cs.get("state") or {}).get("running") or {}).get("startedAt")
    ]
    return min(running, key=lambda r: r.started_at) if running else None


def first_failure(pods: Iterable[Mapping[str, Any]]) -> Failure | None:
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        found = pod_failure(pod)
        if found:
            return found
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pods_of(
    pods: Iterable[Mapping[str, Any]], name: str, color: str | None = None, revision: str | None = None
) -> list[Mapping[str, Any]]:
    out = []
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_NAME) != name:
            continue
        if color and labels.get(LABEL_COLOR) != str(color):
            continue
        if revision and labels.get(LABEL_REVISION) != revision:
            continue
        out.append(pod)
    return out
