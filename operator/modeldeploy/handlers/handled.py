"""kopf's "last handled spec" (its diff-base), kept in the operator's memory instead of the object.

Passes are level-based: they read the whole spec and the live children, never a diff. kopf needs the
diff-base only to tell a new object (create handler) from an unchanged one (no handler). Kept in status
it cost one extra status patch per new ModelDeployment, in the middle of a burst, and a JSON decode on
every event. In memory it costs nothing to write; after a restart (or a failover) each ModelDeployment
looks new once, gets one pass, and that pass writes nothing when nothing has changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

import kopf

Key = tuple[str, str]  # (namespace, name) of a ModelDeployment


class HandledSpecs(kopf.DiffBaseStorage):
    def __init__(self) -> None:
        super().__init__()
        # (namespace, name) -> (uid, compact JSON): a recreated namesake (new uid) is new again.
        self._essences: dict[Key, tuple[str, str]] = {}

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> Any:
        # kopf deep-copies the whole body and then drops status: drop it first (it is most of the body).
        if not extra_fields:
            body = kopf.Body(cast(Any, {k: v for k, v in body.items() if k != "status"}))
        return super().build(body=body, extra_fields=extra_fields)

    def fetch(self, *, body: kopf.Body) -> Any:
        stored = self._essences.get(_key(body))
        if stored is None or stored[0] != body.metadata.uid:
            return None
        return json.loads(stored[1])

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        self._essences[_key(body)] = (body.metadata.uid or "", json.dumps(essence, separators=(",", ":")))

    def forget(self, key: Key) -> None:
        self._essences.pop(key, None)

    def __len__(self) -> int:
        return len(self._essences)


def _key(body: kopf.Body) -> Key:
    return body.metadata.namespace or "", body.metadata.name or ""
