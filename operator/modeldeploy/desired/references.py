"""The Secrets and PersistentVolumeClaims a ModelDeployment makes its pods mount (or the operator read),
and whether each one may be used: it must exist in the ModelDeployment's own namespace (the spec names
objects only, never a namespace) and carry the label ``modeldeploy.io/usage`` with the use it is put to.

Without the label, writing a ModelDeployment would let its author mount any Secret of the namespace into
pods they control (and make the operator send an API-key Secret's first line to them): the label is the
namespace owner's consent. Pure: the caller reads the objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.api import ModelDeploymentSpec

USAGE_LABEL = "modeldeploy.io/usage"
API_KEYS = "api-keys"
IMAGE_PULL = "image-pull"
MODELS = "models"
PREDICTION_SIGNING = "prediction-signing"

_SHORT_KIND = {"Secret": "secret", "PersistentVolumeClaim": "pvc"}
_NOT_FOUND = {"Secret": "SecretNotFound", "PersistentVolumeClaim": "PVCNotFound"}
_NOT_MARKED = {"Secret": "SecretNotMarked", "PersistentVolumeClaim": "PVCNotMarked"}


@dataclass(frozen=True)
class Reference:
    kind: str  # Secret | PersistentVolumeClaim
    name: str
    usage: str  # the value USAGE_LABEL must have
    field: str  # where the spec names it

    @property
    def not_found_reason(self) -> str:
        return _NOT_FOUND[self.kind]


def references(spec: ModelDeploymentSpec) -> list[Reference]:
    """Every Secret and PVC the spec names, in the order a pass checks them."""
    refs = []
    security = spec.security
    if security is not None and security.api_key_secret_ref is not None:
        name = security.api_key_secret_ref.name
        refs.append(Reference("Secret", name, API_KEYS, "spec.security.apiKeySecretRef"))
    if security is not None and security.signing_key_secret_ref is not None:
        name = security.signing_key_secret_ref.name
        refs.append(Reference("Secret", name, PREDICTION_SIGNING, "spec.security.signingKeySecretRef"))
    for index, secret in enumerate(spec.server.image_pull_secrets or []):
        refs.append(Reference("Secret", secret.name, IMAGE_PULL, f"spec.server.imagePullSecrets[{index}]"))
    uri = spec.model.uri
    if uri.startswith("pvc://"):
        claim = uri[len("pvc://") :].split("/", 1)[0]
        refs.append(Reference("PersistentVolumeClaim", claim, MODELS, "spec.model.uri"))
    return refs


def refusal(ref: Reference, namespace: str, live: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(reason, message) when the referenced object may not be used yet; None when it may."""
    where = f"{ref.kind} {namespace}/{ref.name} (named by {ref.field})"
    if live is None:
        return ref.not_found_reason, f"{where} does not exist"
    labels = (live.get("metadata") or {}).get("labels") or {}
    marked = labels.get(USAGE_LABEL)
    if marked == ref.usage:
        return None
    now = f"is marked for {marked!r}" if marked else "is not marked for use by ModelDeployments"
    command = f"kubectl label {_SHORT_KIND[ref.kind]} {ref.name} -n {namespace} {USAGE_LABEL}={ref.usage}"
    if marked:
        command += " --overwrite"
    return _NOT_MARKED[ref.kind], f"{where} {now}; its owner may allow this use with: {command}"
