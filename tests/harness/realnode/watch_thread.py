"""A watch on one namespace in a daemon thread, handing each event with its wall-clock time to `_record`.

Base of `pod_watch.PodWatch` and `change_watch.ChangeWatch`; their methods are safe from another thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client, watch


class WatchThread:
    """Runs from `start()` until `stop()`; lists again from now when the API says the version is too old."""

    def __init__(self, name: str) -> None:
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> Any:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _list(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _record(self, event: dict[str, Any], now: float) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        version = ""
        while not self.stopped.is_set():
            try:
                stream = watch.Watch().stream(self._list, resource_version=version, timeout_seconds=30)
                for event in stream:
                    version = event["raw_object"]["metadata"]["resourceVersion"]
                    self._record(event, time.time())
                    if self.stopped.is_set():
                        return
            except client.ApiException as error:
                if error.status == 410:  # too old: list again from now
                    version = ""
                else:
                    time.sleep(0.5)
