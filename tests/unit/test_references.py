"""The Secrets and PVCs a ModelDeployment names: which ones, and when they may be used."""

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
    ],
    ids=["nothing referenced", "pvc uri -> claim for models", "api keys -> secret", "pull secrets, each"],
)
def test_references_name_every_secret_and_claim_with_its_use(spec, refs):
    assert references(parse_spec({"spec": spec})) == refs


KEYS = Reference("Secret", "keys", "api-keys", "spec.security.apiKeySecretRef")
CLAIM = Reference("PersistentVolumeClaim", "models", "models", "spec.model.uri")


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
    ],
    ids=[
        "secret missing",
        "claim missing",
        "secret unlabelled",
        "claim unlabelled",
        "secret marked for another use",
        "secret marked",
        "claim marked",
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
