"""The Secrets, PersistentVolumeClaims and ServiceAccounts a ModelDeployment makes its pods use (or the
operator read), and whether each one may be used: it must exist in the ModelDeployment's own namespace (the
spec names objects only, never a namespace) and carry the label ``modeldeploy.io/usage`` with the use it is
put to. A model-credentials Secret must also be Opaque and hold the keys its URI scheme needs, and no others.

Without the label, writing a ModelDeployment would let its author mount any Secret of the namespace into
pods they control (and make the operator send an API-key Secret's first line to them), or run their image
under a powerful ServiceAccount: the label is the namespace owner's consent. Pure: the caller reads the
objects. Messages name keys, never values.
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
MODEL_CREDENTIALS = "model-credentials"
MODEL_PODS = "model-pods"
PREDICTION_SIGNING = "prediction-signing"

# Keys of a model-credentials Secret per URI scheme: (required, optional).
S3_KEYS = (
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"),
)
HTTP_KEYS = (("Authorization",), ())
GCS_KEYS = (("GOOGLE_APPLICATION_CREDENTIALS_JSON",), ("STORAGE_EMULATOR_HOST",))
AZURE_SECRETS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN")
AZURE_KEYS = ((), (*AZURE_SECRETS, "AZURE_STORAGE_BLOB_ENDPOINT"))
CREDENTIAL_KEYS = {"s3": S3_KEYS, "gs": GCS_KEYS, "azure": AZURE_KEYS, "https": HTTP_KEYS, "http": HTTP_KEYS}
# Schemes whose Secret must hold exactly one of these keys (alternative ways to sign the same request).
ONE_OF_KEYS = {"azure": AZURE_SECRETS}
OPAQUE = "Opaque"


@dataclass(frozen=True)
class Kind:
    short: str  # kubectl's short name
    not_found: str
    not_marked: str


KINDS = {
    "Secret": Kind("secret", "SecretNotFound", "SecretNotMarked"),
    "PersistentVolumeClaim": Kind("pvc", "PVCNotFound", "PVCNotMarked"),
    "ServiceAccount": Kind("serviceaccount", "ServiceAccountNotFound", "ServiceAccountNotMarked"),
}


@dataclass(frozen=True)
class Reference:
    kind: str  # Secret | PersistentVolumeClaim | ServiceAccount
    name: str
    usage: str  # the value USAGE_LABEL must have
    field: str  # where the spec names it
    scheme: str = ""  # model-credentials: the model URI's scheme, which decides the keys

    @property
    def not_found_reason(self) -> str:
        return KINDS[self.kind].not_found


def references(spec: ModelDeploymentSpec) -> list[Reference]:
    """Every Secret, PVC and ServiceAccount the spec names, in the order a pass checks them."""
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
    if spec.model.credentials is not None:
        name, scheme = spec.model.credentials.secret_ref.name, uri.split("://", 1)[0]
        refs.append(Reference("Secret", name, MODEL_CREDENTIALS, "spec.model.credentials.secretRef", scheme))
    if spec.service_account_name:
        refs.append(
            Reference("ServiceAccount", spec.service_account_name, MODEL_PODS, "spec.serviceAccountName")
        )
    return refs


def refusal(ref: Reference, namespace: str, live: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(reason, message) when the referenced object may not be used yet; None when it may."""
    where = f"{ref.kind} {namespace}/{ref.name} (named by {ref.field})"
    if live is None:
        return ref.not_found_reason, f"{where} does not exist"
    labels = (live.get("metadata") or {}).get("labels") or {}
    marked = labels.get(USAGE_LABEL)
    if marked != ref.usage:
        now = f"is marked for {marked!r}" if marked else "is not marked for use by ModelDeployments"
        command = f"kubectl label {KINDS[ref.kind].short} {ref.name} -n {namespace} {USAGE_LABEL}={ref.usage}"
        if marked:
            command += " --overwrite"
        return KINDS[ref.kind].not_marked, f"{where} {now}; its owner may allow this use with: {command}"
    if ref.usage == MODEL_CREDENTIALS:
        problem = credentials_problem(ref.scheme, live)
        if problem is not None:
            return "CredentialsInvalid", f"{where} {problem}"
    return None


def credentials_problem(scheme: str, secret: Mapping[str, Any]) -> str | None:
    """What is wrong with a model-credentials Secret for a URI scheme (its type or key names), or None."""
    kind = secret.get("type") or OPAQUE
    if kind != OPAQUE:
        return f"has type {kind}; model credentials need type {OPAQUE}"
    required, optional = CREDENTIAL_KEYS[scheme]
    keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    missing = [key for key in required if key not in keys]
    if missing:
        return f"has no key {', '.join(missing)} (a {scheme}:// model needs {', '.join(required)})"
    unknown = sorted(keys - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(required + optional)
        return f"has key {', '.join(unknown)}, unknown for a {scheme}:// model (allowed: {allowed})"
    one_of = ONE_OF_KEYS.get(scheme, ())
    given = [key for key in one_of if key in keys]
    if one_of and len(given) != 1:
        found = f"{', '.join(given)} together" if given else "none of them"
        return f"has {found} (a {scheme}:// model needs exactly one of {', '.join(one_of)})"
    return None
