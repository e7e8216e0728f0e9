"""The newest ModelDeployment bodies the operator has seen (watch events and our own status-patch
responses), so a pass triggered by a child or a pod needs no GET: in a burst those GETs were a sixth of
the operator's requests. Kept as compact JSON strings (a nested dict costs several times its JSON size)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Key = tuple[str, str]  # (namespace, name)
# Large, never read by a pass: the server-side apply bookkeeping of every writer.
_DROPPED_METADATA = ("managedFields",)


def resource_version(body: Mapping[str, Any]) -> int | None:
    text = str(body.get("metadata", {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else None


def is_newer(candidate: int | None, known: int | None) -> bool:
    """etcd resourceVersions are increasing integers; one that is not (another storage) counts as
    newer, so the latest arrival wins."""
    return candidate is None or known is None or candidate >= known


class BodyCache:
    def __init__(self, *, enabled: bool = True) -> None:
        self._bodies: dict[Key, tuple[int | None, str]] = {}
        self._enabled = enabled  # off: keeps nothing, every pass reads (to measure what it pays)

    def remember(self, body: Mapping[str, Any]) -> None:
        """Keep `body` unless a newer version of the same object is already known."""
        if not self._enabled:
            return
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        version = resource_version(body)
        known = self._bodies.get(key)
        if known is not None and not is_newer(version, known[0]):
            return
        slim_meta = {k: v for k, v in meta.items() if k not in _DROPPED_METADATA}
        text = json.dumps({**body, "metadata": slim_meta}, separators=(",", ":"), default=dict)
        self._bodies[key] = (version, text)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        known = self._bodies.get((namespace, name))
        return json.loads(known[1]) if known is not None else None

    def forget(self, namespace: str, name: str) -> None:
        self._bodies.pop((namespace, name), None)

    def __len__(self) -> int:
        return len(self._bodies)
