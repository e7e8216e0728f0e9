"""The revision: a short hash of everything that changes the serving pods.

Public: ``revision_of(spec) -> str``, ``POD_FIELDS``.
Replicas, autoscaling, rollout and monitoring settings are not part of it: changing them never starts a
rollout. Neither is the operator's default image: the revision must not depend on operator settings (every
caller computes the same one), and an operator upgrade rolls the new image in place (maxUnavailable 0).
"""

from __future__ import annotations

import hashlib
import json

from modeldeploy.api import ModelDeploymentSpec

POD_FIELDS = ("model", "resources", "server", "service_account_name", "security", "logging")
REVISION_LENGTH = 10


def revision_of(spec: ModelDeploymentSpec) -> str:
    # Defaults left out: a new defaulted field in an operator upgrade must not roll every model out.
    doc = spec.model_dump(
        by_alias=True, exclude_none=True, exclude_defaults=True, mode="json", include=set(_python_names())
    )
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def _python_names() -> list[str]:
    return [name for name in POD_FIELDS if name in ModelDeploymentSpec.model_fields]
