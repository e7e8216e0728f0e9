"""A watch on one namespace's pods, stamping when each pod became Ready and when it was gone, as they happen.

Benchmarks read a release's timeline from it (the candidate's first Ready pod, the old pods gone) instead of
the pods' own `lastTransitionTime`, which has a resolution of one second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from harness.realnode.watch_thread import WatchThread


@dataclass
class PodTimes:
    name: str
    labels: dict[str, str]
    ready_at: float | None = None  # wall clock when first seen Ready
    gone_at: float | None = None  # wall clock of its DELETED event


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class PodWatch(WatchThread):
    """Runs in a daemon thread from `start()` until `stop()`; every method is safe from another thread."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        super().__init__(f"pod-watch-{namespace}")
        self.namespace = namespace
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.pods: dict[str, PodTimes] = {}

    def _list(self, **kwargs: Any) -> Any:
        return self.api.list_namespaced_pod(self.namespace, **kwargs)

    def _record(self, event: dict[str, Any], now: float) -> None:
        kind, pod = event["type"], event["raw_object"]
        name = pod["metadata"]["name"]
        with self.lock:
            seen = self.pods.setdefault(name, PodTimes(name, dict(pod["metadata"].get("labels") or {})))
            if kind == "DELETED":
                seen.gone_at = seen.gone_at or now
            elif _ready(pod) and seen.ready_at is None:
                seen.ready_at = now

    def existing(self, labels: dict[str, str]) -> set[str]:
        """Names of the pods carrying `labels` that are not gone."""
        with self.lock:
            return {
                p.name for p in self.pods.values() if p.gone_at is None and labels.items() <= p.labels.items()
            }

    def known(self) -> set[str]:
        """Every pod seen so far, gone or not."""
        with self.lock:
            return set(self.pods)

    def first_ready(self, labels: dict[str, str], besides: set[str]) -> float | None:
        """When the first pod carrying `labels`, other than `besides`, became Ready."""
        return min(self._ready_times(labels, besides), default=None)

    def last_ready(self, labels: dict[str, str], besides: set[str]) -> float | None:
        """When the last pod carrying `labels`, other than `besides`, became Ready (None while none is)."""
        return max(self._ready_times(labels, besides), default=None)

    def _ready_times(self, labels: dict[str, str], besides: set[str]) -> list[float]:
        with self.lock:
            return [
                p.ready_at
                for p in self.pods.values()
                if p.name not in besides and p.ready_at and labels.items() <= p.labels.items()
            ]

    def all_gone(self, names: set[str]) -> float | None:
        """When the last of `names` was gone; None while any is left."""
        with self.lock:
            times = [self.pods[n].gone_at if n in self.pods else None for n in names]
        return None if None in times else max(times, default=0.0)
