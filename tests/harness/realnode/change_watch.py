"""A watch on one namespace's objects of one kind, stamping when each object first showed each value of one
field, as it happened: when a Service's selector switched colour, when a ModelDeployment entered a phase.

Benchmarks read where a release's cutover time went from it (with pod_watch for the pods' side).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client, config

from harness.realnode.watch_thread import WatchThread

Extract = Callable[[dict[str, Any]], str | None]


class ChangeWatch(WatchThread):
    """Runs in a daemon thread from `start()` until `stop()`; every method is safe from another thread.
    `plural` is "services" or a custom resource's plural in `group`/`version`."""

    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        plural: str,
        extract: Extract,
        group: str = "",
        version: str = "v1",
    ) -> None:
        super().__init__(f"{plural}-watch-{namespace}")
        api_client = config.new_client_from_config(config_file=kubeconfig)
        self.namespace, self.extract = namespace, extract
        if group:
            custom = client.CustomObjectsApi(api_client)
            self.list = lambda **kw: custom.list_namespaced_custom_object(
                group, version, namespace, plural, **kw
            )
        else:
            core = client.CoreV1Api(api_client)
            self.list = lambda **kw: core.list_namespaced_service(namespace, **kw)
        self.seen: dict[str, list[tuple[float, str]]] = {}  # name -> (wall clock, value) when first shown

    def _list(self, **kwargs: Any) -> Any:
        return self.list(**kwargs)

    def _record(self, event: dict[str, Any], now: float) -> None:
        body = event["raw_object"]
        value = self.extract(body)
        if value is None:
            return
        with self.lock:
            changes = self.seen.setdefault(body["metadata"]["name"], [])
            if not changes or changes[-1][1] != value:
                changes.append((now, value))

    def first(self, name: str, value: str, since: float) -> float | None:
        """When `name` first showed `value` at or after `since`."""
        with self.lock:
            return next((t for t, v in self.seen.get(name, []) if v == value and t >= since), None)

    def first_change(self, name: str, before: str | None, since: float) -> float | None:
        """When `name` first showed a value other than `before` at or after `since`."""
        with self.lock:
            return next((t for t, v in self.seen.get(name, []) if v != before and t >= since), None)

    def last_value(self, name: str) -> str | None:
        with self.lock:
            changes = self.seen.get(name, [])
            return changes[-1][1] if changes else None
