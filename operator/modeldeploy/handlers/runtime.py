"""What every handler shares, created once at startup and carried in kopf's memo."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.reconcile import Context, KeyedSerializer

Key = tuple[str, str]  # (namespace, name) of a ModelDeployment

# kopf index ids (= handler kwarg names) of the owned kinds, and of the serving pods.
CHILD_INDEXES = ("deployment_index", "service_index", "hpa_index", "pdb_index")
POD_INDEX = "pod_index"


@dataclass
class Runtime:
    ctx: Context
    serializer: KeyedSerializer = field(default_factory=KeyedSerializer)
    phases: dict[Key, str] = field(default_factory=dict)


def runtime_of(memo: Any) -> Runtime:
    runtime = getattr(memo, "runtime", None)
    if runtime is None:
        raise RuntimeError("the startup handler did not run: no runtime in memo")
    return runtime


def indexed(kwargs: Mapping[str, Any], key: Key) -> tuple[list[dict], list[dict]]:
    """Children and pods of one ModelDeployment, from the kopf indexes in a handler's kwargs."""
    children: list[dict] = []
    for index_name in CHILD_INDEXES:
        children.extend(kwargs[index_name].get(key, ()))
    pods = list(kwargs[POD_INDEX].get(key, ()))
    return children, pods
