"""Reconciliation, one module per step of a pass (``core`` drives them in this order, each once):
``observe`` (indexes, the few reads beyond them) -> plan (the pure ``desired`` pass, then ``plan``: compare
with what exists) -> ``apply`` (k8s writes) -> ``status`` (the one status write). ``checks`` runs the
check a plan asks for; a pass that ran one writes status and ends (the next pass applies)."""

from modeldeploy.reconcile.core import (
    Context,
    InvalidSpec,
    PassOutcome,
    WaitingFor,
    reconcile,
    reconcile_by_key,
)
from modeldeploy.reconcile.observe import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_SELECTOR,
    crd_preserves_status_field,
    json_copy,
    owner_name,
    packed_child,
    packed_pod,
    pod_completes_candidate,
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
    "PassOutcome",
    "WaitingFor",
    "crd_preserves_status_field",
    "json_copy",
    "owner_name",
    "packed_child",
    "packed_pod",
    "pod_completes_candidate",
    "pod_parent_name",
    "reconcile",
    "reconcile_by_key",
    "slim_child",
    "slim_pod",
]
