"""A watch on one namespace's pods, stamping when each pod became Ready and when it was gone, as they happen.

Benchmarks read a release's timeline from it (the candidate's first Ready pod, the old pods gone) instead of
the pods' own `lastTransitionTime`, which has a resolution of one second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from kubernetes import client, config, watch


@dataclass
class PodTimes:
    name: str
    labels: dict[str, str]
    ready_at: float | None = None  # wall clock when first seen Ready
    gone_at: float | None = None  # wall clock of its DELETED event


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


class PodWatch:
    """Runs in a daemon thread from `start()` until `stop()`; every method is safe from another thread."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.namespace = namespace
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.pods: dict[str, PodTimes] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"pod-watch-{namespace}")

    def start(self) -> PodWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        version = ""
        while not self.stopped.is_set():
            try:
                stream = watch.Watch().stream(
                    self.api.list_namespaced_pod, self.namespace, resource_version=version, timeout_seconds=30
                )
                for event in stream:
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    self._record(event["type"], pod, time.time())
                    if self.stopped.is_set():
                        return
            except client.ApiException as error:
                if error.status == 410:  # too old: list again from now
                    version = ""
                else:
                    time.sleep(0.5)

    def _record(self, kind: str, pod, now: float) -> None:
        name = pod.metadata.name
        with self.lock:
            seen = self.pods.setdefault(name, PodTimes(name, dict(pod.metadata.labels or {})))
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
        with self.lock:
            times = [
                p.ready_at
                for p in self.pods.values()
                if p.name not in besides and p.ready_at and labels.items() <= p.labels.items()
            ]
        return min(times, default=None)

    def last_ready(self, labels: dict[str, str], besides: set[str]) -> float | None:
        """When the last pod carrying `labels`, other than `besides`, became Ready (None while none is)."""
        with self.lock:
            times = [
                p.ready_at
                for p in self.pods.values()
                if p.name not in besides and p.ready_at and labels.items() <= p.labels.items()
            ]
        return max(times, default=None)

    def all_gone(self, names: set[str]) -> float | None:
        """When the last of `names` was gone; None while any is left."""
        with self.lock:
            times = [self.pods[n].gone_at if n in self.pods else None for n in names]
        return None if None in times else max(times, default=0.0)
