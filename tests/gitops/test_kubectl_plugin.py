"""`kubectl modeldeploy` found by kubectl on PATH, against the real API server: promote/abort/retry write
status.rolloutControl through the status subresource with a fresh requestId each time; status prints it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "plugin"
CRD = REPO / "crds" / "modeldeployments.yaml"


@pytest.fixture(scope="module")
def iris(cluster, namespace):
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.wait_established("modeldeployments.modeldeploy.io")
    manifest = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": namespace},
        "spec": {"model": {"uri": "https://models.example.internal/iris/model.onnx", "version": "3"}},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    return "iris"


def plugin(cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # kubectl accepts no flags before a plugin's name; the plugin's own kubectl calls read KUBECONFIG.
    path = f"{PLUGIN_DIR}{os.pathsep}{cluster.env['PATH']}"
    env = {**cluster.env, "PATH": path, "KUBECONFIG": cluster.kubeconfig}
    return subprocess.run(["kubectl", "modeldeploy", *args],
                          capture_output=True, text=True, env=env, check=check, timeout=60)  # fmt: skip


def rollout_control(cluster, namespace: str) -> dict:
    return cluster.get_json("modeldeployment", "iris", "-n", namespace)["status"]["rolloutControl"]


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["promote"], "promote"),
        (["promote", "--full"], "promoteFull"),
        (["abort"], "abort"),
        (["retry"], "retry"),
    ],
)
def test_verb_writes_rollout_control_through_the_status_subresource(cluster, namespace, iris, args, action):
    before = cluster.get_json("modeldeployment", iris, "-n", namespace)["metadata"]["generation"]
    result = plugin(cluster, args[0], iris, "-n", namespace, *args[1:])
    control = rollout_control(cluster, namespace)
    assert control["action"] == action
    assert f"requestId {control['requestId']}" in result.stdout
    # Status, not spec: the generation (what GitOps tools and the operator compare) did not move.
    assert cluster.get_json("modeldeployment", iris, "-n", namespace)["metadata"]["generation"] == before


def test_each_request_gets_a_new_id(cluster, namespace, iris):
    plugin(cluster, "promote", iris, "-n", namespace)
    first = rollout_control(cluster, namespace)["requestId"]
    plugin(cluster, "promote", iris, "-n", namespace)
    assert rollout_control(cluster, namespace)["requestId"] != first


def test_status_shows_phase_and_the_pending_request(cluster, namespace, iris):
    plugin(cluster, "abort", iris, "-n", namespace)
    out = plugin(cluster, "status", iris, "-n", namespace).stdout
    assert "Name:       iris" in out
    assert "Request:    abort (" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [(["frobnicate", "iris"], "unknown command 'frobnicate'"), (["promote"], "NAME is required"),
     (["promote", "a", "b"], "one NAME only")],
)  # fmt: skip
def test_bad_usage_exits_2_with_the_usage(cluster, args, message):
    result = plugin(cluster, *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "kubectl modeldeploy promote NAME" in result.stderr


def test_missing_modeldeployment_fails_with_kubectls_message(cluster, namespace, iris):
    result = plugin(cluster, "promote", "nope", "-n", namespace, check=False)
    assert result.returncode != 0
    assert 'modeldeployments.modeldeploy.io "nope" not found' in result.stderr
