"""Reconciliation: observe (indexes) -> plan (desired + compare) -> apply (k8s) -> status."""

from modeldeploy.reconcile.core import Context, InvalidSpec, Outcome, WaitingFor, reconcile, reconcile_by_key
from modeldeploy.reconcile.observe import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_SELECTOR,
    crd_preserves_status_field,
    json_copy,
    owner_name,
    packed_child,
    packed_pod,
    pod_parent_name,
    slim_child,
    slim_pod,
)

__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "OWNER_SELECTOR",
    "Context",
    "InvalidSpec",
    "Outcome",
    "WaitingFor",
    "crd_preserves_status_field",
    "json_copy",
    "owner_name",
    "packed_child",
    "packed_pod",
    "pod_parent_name",
    "reconcile",
    "reconcile_by_key",
    "slim_child",
    "slim_pod",
]
