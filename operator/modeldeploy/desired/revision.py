"""The revision: a short hash of everything that changes the serving pods.

Public: ``revision_of(spec) -> str``, ``pod_fields(spec, exclude_defaults)``, ``POD_FIELDS``,
``DRIFT_POD_FIELDS``.
Replicas, autoscaling, rollout and monitoring settings are not part of it: changing them never starts a
rollout -- except the parts of ``monitoring.drift`` the pods use (the reference, its digest, the features
and the window: an init container and environment variables), so that one revision is one pod template
and the warm previous colour is rebuilt as it ran; the threshold and interval only steer the operator.
Neither is the operator's default image: the revision must not depend on operator settings (every
caller computes the same one), and an operator upgrade rolls the new image in place (maxUnavailable 0).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modeldeploy.api import ModelDeploymentSpec

POD_FIELDS = ("model", "resources", "server", "service_account_name", "security", "logging")
DRIFT_POD_FIELDS = ("reference_uri", "sha256", "features", "window_rows")
REVISION_LENGTH = 10


def pod_fields(spec: ModelDeploymentSpec, exclude_defaults: bool) -> dict[str, Any]:
    """The pod-relevant spec as stored JSON (camelCase); `monitoring` only when it holds a drift reference."""
    include: dict[str, Any] = {name: True for name in _python_names()}
    include["monitoring"] = {"drift": set(DRIFT_POD_FIELDS)}
    doc = spec.model_dump(
        by_alias=True, exclude_none=True, exclude_defaults=exclude_defaults, mode="json", include=include
    )
    if not (doc.get("monitoring") or {}).get("drift"):
        doc.pop("monitoring", None)  # specs without drift keep the revision they had before it existed
    return doc


def revision_of(spec: ModelDeploymentSpec) -> str:
    # Defaults left out: a new defaulted field in an operator upgrade must not roll every model out.
    canonical = json.dumps(pod_fields(spec, exclude_defaults=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def _python_names() -> list[str]:
    return [name for name in POD_FIELDS if name in ModelDeploymentSpec.model_fields]
