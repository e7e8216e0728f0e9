"""The Secrets, PVCs and ServiceAccounts a ModelDeployment names: which ones, and when they may be used."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modeldeploy.desired import Reference, references, refusal, refused_status
from modeldeploy.reconcile.core import parse_spec

URI = "https://h/m.onnx"


@pytest.mark.parametrize(
    ("spec", "refs"),
    [
        ({"model": {"uri": URI}}, []),
        (
            {"model": {"uri": "pvc://models/iris/m.onnx"}},
            [Reference("PersistentVolumeClaim", "models", "models", "spec.model.uri")],
        ),
        (
            {"model": {"uri": URI}, "security": {"apiKeySecretRef": {"name": "keys"}}},
            [Reference("Secret", "keys", "api-keys", "spec.security.apiKeySecretRef")],
        ),
        (
            {"model": {"uri": URI}, "server": {"imagePullSecrets": [{"name": "a"}, {"name": "b"}]}},
            [
                Reference("Secret", "a", "image-pull", "spec.server.imagePullSecrets[0]"),
                Reference("Secret", "b", "image-pull", "spec.server.imagePullSecrets[1]"),
            ],
        ),
        (
            {"model": {"uri": "s3://b/m.onnx", "credentials": {"secretRef": {"name": "store"}}}},
            [Reference("Secret", "store", "model-credentials", "spec.model.credentials.secretRef", "s3")],
        ),
        (
            {"model": {"uri": URI}, "serviceAccountName": "irsa"},
            [Reference("ServiceAccount", "irsa", "model-pods", "spec.serviceAccountName")],
        ),
    ],
    ids=[
        "nothing referenced",
        "pvc uri -> claim for models",
        "api keys -> secret",
        "pull secrets, each",
        "credentials -> secret for the uri's scheme",
        "service account -> for model pods",
    ],
)
def test_references_name_every_secret_and_claim_with_its_use(spec, refs):
    assert references(parse_spec({"spec": spec})) == refs


KEYS = Reference("Secret", "keys", "api-keys", "spec.security.apiKeySecretRef")
CLAIM = Reference("PersistentVolumeClaim", "models", "models", "spec.model.uri")
ACCOUNT = Reference("ServiceAccount", "irsa", "model-pods", "spec.serviceAccountName")


def _labelled(value: str | None) -> dict:
    return {"metadata": {"name": "x", "labels": {"modeldeploy.io/usage": value} if value else {}}}


@pytest.mark.parametrize(
    ("ref", "live", "reason", "says"),
    [
        (
            KEYS,
            None,
            "SecretNotFound",
            "Secret ml/keys (named by spec.security.apiKeySecretRef) does not exist",
        ),
        (CLAIM, None, "PVCNotFound", "PersistentVolumeClaim ml/models"),
        (
            KEYS,
            {"metadata": {}},
            "SecretNotMarked",
            "kubectl label secret keys -n ml modeldeploy.io/usage=api-keys",
        ),
        (
            CLAIM,
            _labelled(None),
            "PVCNotMarked",
            "kubectl label pvc models -n ml modeldeploy.io/usage=models",
        ),
        (
            KEYS,
            _labelled("image-pull"),
            "SecretNotMarked",
            "is marked for 'image-pull'; its owner may allow this use with: "
            "kubectl label secret keys -n ml modeldeploy.io/usage=api-keys --overwrite",
        ),
        (KEYS, _labelled("api-keys"), None, None),
        (CLAIM, _labelled("models"), None, None),
        (
            ACCOUNT,
            None,
            "ServiceAccountNotFound",
            "ServiceAccount ml/irsa (named by spec.serviceAccountName)",
        ),
        (
            ACCOUNT,
            _labelled(None),
            "ServiceAccountNotMarked",
            "kubectl label serviceaccount irsa -n ml modeldeploy.io/usage=model-pods",
        ),
        (ACCOUNT, _labelled("model-pods"), None, None),
    ],
    ids=[
        "secret missing",
        "claim missing",
        "secret unlabelled",
        "claim unlabelled",
        "secret marked for another use",
        "secret marked",
        "claim marked",
        "service account missing",
        "service account unlabelled",
        "service account marked",
    ],
)
def test_a_reference_is_usable_only_when_it_exists_and_is_marked_for_its_use(ref, live, reason, says):
    refused = refusal(ref, "ml", live)
    if reason is None:
        assert refused is None
    else:
        assert refused is not None and refused[0] == reason and says in refused[1], refused


NOW = datetime(2026, 12, 3, tzinfo=UTC)
SERVING = {
    "metadata": {"name": "iris", "namespace": "ml", "generation": 4},
    "status": {
        "observedGeneration": 3, "phase": "Healthy", "activeRevision": "abc", "activeColor": "blue",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "ok"},
                       {"type": "Degraded", "status": "False", "reason": "Healthy", "message": ""}],
    },
}  # fmt: skip


def test_a_refusal_leaves_a_serving_revision_ready_and_says_why_changes_wait():
    status = refused_status(SERVING, "SecretNotMarked", "Secret ml/keys is not marked", NOW)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    degraded = conditions["Degraded"]
    assert degraded["status"] == "True" and degraded["reason"] == "SecretNotMarked"
    assert "keeps serving" in degraded["message"]
    assert status["activeRevision"] == "abc" and status["observedGeneration"] == 3
    assert status["phase"] == "Degraded"


def test_a_refusal_before_anything_serves_is_pending_and_not_ready():
    body = {"metadata": {"name": "iris", "namespace": "ml", "generation": 1}}
    status = refused_status(body, "PVCNotMarked", "PersistentVolumeClaim ml/m is not marked", NOW)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert status["phase"] == "Pending" and ready["status"] == "False" and ready["reason"] == "PVCNotMarked"


def _credentials(scheme: str) -> Reference:
    return Reference("Secret", "store", "model-credentials", "spec.model.credentials.secretRef", scheme)


def _secret(*keys: str, kind: str | None = None, string_data: bool = False) -> dict:
    secret = _labelled("model-credentials")
    secret["stringData" if string_data else "data"] = {key: "c2VjcmV0LXZhbHVl" for key in keys}
    if kind:
        secret["type"] = kind
    return secret


S3_FULL = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
)


@pytest.mark.parametrize(
    ("scheme", "live", "says"),
    [
        ("s3", _secret("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), None),
        ("s3", _secret(*S3_FULL, kind="Opaque"), None),
        ("https", _secret("Authorization"), None),
        ("http", _secret("Authorization", string_data=True), None),
        ("s3", _secret("AWS_ACCESS_KEY_ID"), "has no key AWS_SECRET_ACCESS_KEY (a s3:// model needs"),
        ("s3", _secret(), "has no key AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
        ("https", _secret("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "has no key Authorization"),
        ("s3", _secret("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"),
         "has key AWS_SECRET_KEY, unknown for a s3:// model"),
        ("https", _secret("Authorization", kind="kubernetes.io/basic-auth"),
         "has type kubernetes.io/basic-auth; model credentials need type Opaque"),
        ("gs", _secret("GOOGLE_APPLICATION_CREDENTIALS_JSON", "STORAGE_EMULATOR_HOST"), None),
        ("gs", _secret("STORAGE_EMULATOR_HOST"), "has no key GOOGLE_APPLICATION_CREDENTIALS_JSON"),
        ("azure", _secret("AZURE_STORAGE_CONNECTION_STRING"), None),
        ("azure", _secret("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_BLOB_ENDPOINT"), None),
        ("azure", _secret("AZURE_STORAGE_SAS_TOKEN"), None),
        ("azure", _secret("AZURE_STORAGE_BLOB_ENDPOINT"),
         "has none of them (a azure:// model needs exactly one of AZURE_STORAGE_CONNECTION_STRING, "),
        ("azure", _secret("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"),
         "has AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN together"),
        ("azure", _secret("AZURE_STORAGE_KEY"), "has key AZURE_STORAGE_KEY, unknown for a azure:// model"),
    ],
    ids=[
        "s3 required keys",
        "s3 every key",
        "https header",
        "http header from stringData",
        "s3 secret key missing",
        "s3 both missing",
        "https without the header",
        "a misspelt key",
        "wrong secret type",
        "gs key and emulator",
        "gs without its key",
        "azure connection string",
        "azure account key and endpoint",
        "azure sas token",
        "azure endpoint alone",
        "azure two ways at once",
        "azure misspelt key",
    ],
)  # fmt: skip
def test_a_credentials_secret_needs_its_schemes_keys_and_names_the_key_never_a_value(scheme, live, says):
    refused = refusal(_credentials(scheme), "ml", live)
    if says is None:
        assert refused is None
        return
    assert refused is not None and refused[0] == "CredentialsInvalid", refused
    assert refused[1].startswith("Secret ml/store (named by spec.model.credentials.secretRef) ")
    assert says in refused[1], refused[1]
    assert "c2VjcmV0LXZhbHVl" not in refused[1] and "secret-value" not in refused[1]


def test_an_unmarked_credentials_secret_is_refused_before_its_keys_are_looked_at():
    refused = refusal(_credentials("s3"), "ml", {"metadata": {}, "data": {}})
    assert refused is not None and refused[0] == "SecretNotMarked"
    assert "modeldeploy.io/usage=model-credentials" in refused[1]
