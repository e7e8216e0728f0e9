"""Our own writes and their watch echoes.

A watch event whose resourceVersion is that of our last write to the object is our own echo: nothing to
reconcile. Children we wrote whose echo has not reached the indexes yet are kept (packed) by parent, and a
pass lays them over the indexes: when the watch lags in a burst, a pass must not take a child it has just
written for missing or old and write it again (each rewrite is one more lagging event)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
ParentKey = tuple[str, str]  # (namespace, name) of the ModelDeployment
ChildKey = tuple[str, str]  # (kind, name)


@dataclass
class Echoes:
    enabled: bool = True  # off: no write is remembered, echoes are reconciled (to measure what it pays)
    _written: dict[ObjectKey, str] = field(default_factory=dict)  # resourceVersion of our last write
    _unechoed: dict[ParentKey, dict[ChildKey, str]] = field(default_factory=dict)
    _by_parent: dict[ParentKey, set[ObjectKey]] = field(default_factory=dict)  # so a gone parent frees them

    def wrote(
        self, parent: ParentKey, kind: str, name: str, resource_version: str, packed: str | None
    ) -> None:
        """We wrote `kind` `name` for `parent`; `packed` is what the index will hold once the watch echoes
        it (None for kinds no index holds: passes read those afresh)."""
        if not self.enabled:
            return
        key = (kind, parent[0], name)
        self._written[key] = resource_version
        self._by_parent.setdefault(parent, set()).add(key)
        if packed is not None:
            self._unechoed.setdefault(parent, {})[(kind, name)] = packed

    def is_own_write(self, kind: str, namespace: str, name: str, resource_version: str | None) -> bool:
        return resource_version is not None and self._written.get((kind, namespace, name)) == resource_version

    def echoed(self, parent: ParentKey, kind: str, name: str) -> None:
        """The watch (and so the index) has caught up with a child we wrote, or it is gone."""
        pending = self._unechoed.get(parent)
        if pending is not None:
            pending.pop((kind, name), None)
            if not pending:
                del self._unechoed[parent]

    def deleted(self, parent: ParentKey, kind: str, name: str) -> None:
        """We deleted the child: nothing of it is awaited any more."""
        key = (kind, parent[0], name)
        self._written.pop(key, None)
        self._by_parent.get(parent, set()).discard(key)
        self.echoed(parent, kind, name)

    def unechoed(self, parent: ParentKey) -> Mapping[ChildKey, str]:
        """The children written for `parent` whose echo has not come yet (packed)."""
        return self._unechoed.get(parent, {})

    def forget_parent(self, namespace: str, name: str) -> None:
        """The ModelDeployment is gone: nothing written for its children is kept any more."""
        self._unechoed.pop((namespace, name), None)
        for key in self._by_parent.pop((namespace, name), set()):
            self._written.pop(key, None)

    def __len__(self) -> int:
        """Objects whose last write is remembered (for tests and the memory benchmark)."""
        return len(self._written)
