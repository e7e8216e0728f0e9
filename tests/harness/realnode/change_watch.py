"""A watch on one namespace's objects of one kind, stamping when each object first showed each value of one
field, as it happened: when a Service's selector switched colour, when a ModelDeployment entered a phase.

Benchmarks read where a release's cutover time went from it (with pod_watch for the pods' side).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config, watch

Extract = Callable[[dict[str, Any]], str | None]


class ChangeWatch:
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
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"{plural}-watch-{namespace}")

    def start(self) -> ChangeWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        version = ""
        while not self.stopped.is_set():
            try:
                stream = watch.Watch().stream(self._list, resource_version=version, timeout_seconds=30)
                for event in stream:
                    body = event["raw_object"]
                    version = body["metadata"]["resourceVersion"]
                    self._record(body, time.time())
                    if self.stopped.is_set():
                        return
            except client.ApiException as error:
                if error.status == 410:  # too old: list again from now
                    version = ""
                else:
                    time.sleep(0.5)

    def _list(self, **kwargs: Any) -> Any:
        return self.list(**kwargs)

    def _record(self, body: dict[str, Any], now: float) -> None:
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
