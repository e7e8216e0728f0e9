"""examples/: every manifest is commented, parses with the operator's own spec model, and is accepted by the
real API server (server-side dry-run, CRD validation and CEL rules included); the Argo CD Application
points at them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy.api import ModelDeploymentSpec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
FEATURES = {
    "sklearn": "01-sklearn-pipeline.yaml",
    "onnx": "02-onnx.yaml",
    "blue/green steps": "03-blue-green-steps.yaml",
    "quality gate": "04-quality-gate.yaml",
    "A/B hold": "05-ab-hold.yaml",
    "Gateway API": "06-gateway-api.yaml",
    "API keys and rate limit": "07-api-keys-rate-limit.yaml",
    "autoscaling": "08-autoscaling.yaml",
    "archive model": "09-archive-model.yaml",
    "GPU request": "10-gpu.yaml",
    "shadow phase": "11-shadow-phase.yaml",
    "private store credentials": "12-private-s3-credentials.yaml",
    "ServiceAccount (IRSA)": "13-service-account-irsa.yaml",
    "late labels": "14-late-labels.yaml",
    "gRPC": "15-grpc.yaml",
    "drift": "16-drift.yaml",
    "gs:// and azure:// credentials": "17-gcs-azure-credentials.yaml",
}


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_feature_has_an_example():
    assert {path.name for path in EXAMPLES} == set(FEATURES.values())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_commented_and_parses_with_the_operator_model(path):
    lines = path.read_text().splitlines()
    assert sum(line.startswith("#") for line in lines[:6]) >= 2, "explain the example in a header comment"
    deployments = [d for d in documents(path) if d["kind"] == "ModelDeployment"]
    assert len(deployments) == 1
    ModelDeploymentSpec.model_validate(deployments[0]["spec"])


@pytest.mark.e2e
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted_by_the_api_server(cluster, namespace, path):
    result = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(documents(path)), result.stdout


def test_argocd_application_points_at_the_examples():
    app = yaml.safe_load((REPO / "argocd" / "application.yaml").read_text())
    assert app["kind"] == "Application"
    source = app["spec"]["source"]
    assert (REPO / source["path"]).resolve() == (REPO / "examples").resolve()
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
