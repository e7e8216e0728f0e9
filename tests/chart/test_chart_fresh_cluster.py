"""The chart on a cluster that has never seen modeldeploy (a second, throw-away local control plane, up in
seconds): cluster-wide install with the defaults creates the CRDs, then the ClusterKopfPeering through the
post-install hook; ModelDeployments are accepted; uninstall keeps CRDs and ModelDeployments. The shared
cluster cannot show this: its CRDs already exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import yaml

from harness.chart import CHART, REPO

pytestmark = pytest.mark.chart
CLUSTER_SH = REPO / "tests" / "cluster" / "cluster.sh"
NAME = f"chart-fresh-{os.getpid()}"


@pytest.fixture(scope="module")
def fresh(cluster) -> Iterator[dict[str, str]]:
    env = {**cluster.env, "MODELDEPLOY_CLUSTER_NAME": NAME}
    subprocess.run(["bash", str(CLUSTER_SH), "up"], env=env, check=True, capture_output=True, timeout=600)
    try:
        exports = subprocess.run(["bash", str(CLUSTER_SH), "env"], env=env, check=True, capture_output=True,
                                 text=True).stdout  # fmt: skip
        kubeconfig = next(line for line in exports.splitlines() if line.startswith("export KUBECONFIG="))
        env["KUBECONFIG"] = kubeconfig.split("=", 1)[1].strip('"')
        yield env
    finally:
        subprocess.run(["bash", str(CLUSTER_SH), "down"], env=env, capture_output=True, timeout=120)


def run(env: dict[str, str], *argv: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, input=input, timeout=300)


def test_default_install_on_a_fresh_cluster_then_uninstall_keeps_modeldeployments(fresh):
    assert run(fresh, "kubectl", "get", "crd", "modeldeployments.modeldeploy.io").returncode != 0
    release = ("md", str(CHART), "-n", "modeldeploy-system", "--create-namespace")
    installed = run(fresh, "helm", "install", *release, "--wait", "--timeout", "180s")
    assert installed.returncode == 0, installed.stderr
    assert "kubectl apply -f examples/" in installed.stdout  # NOTES

    peering = run(fresh, "kubectl", "get", "clusterkopfpeering", "modeldeploy", "-o", "json")
    assert peering.returncode == 0, peering.stderr  # created by the post-install hook, after the CRDs
    pods = json.loads(run(fresh, "kubectl", "get", "pods", "-n", "modeldeploy-system", "-o", "json").stdout)
    assert sorted(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] for p in pods["items"]) == [
        "0",
        "1",
    ]

    applied = run(fresh, "kubectl", "apply", "-n", "default", "-f", str(REPO / "examples" / "02-onnx.yaml"))
    assert applied.returncode == 0, applied.stderr

    uninstalled = run(fresh, "helm", "uninstall", "md", "-n", "modeldeploy-system", "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert "kept due to the resource policy" in uninstalled.stdout + uninstalled.stderr
    assert run(fresh, "kubectl", "get", "modeldeployment", "fraud-onnx", "-n", "default").returncode == 0
    assert run(fresh, "kubectl", "get", "clusterrole", "md-modeldeploy").returncode != 0


def test_the_operator_refuses_to_start_on_a_crd_that_would_prune_its_bookkeeping(fresh):
    """An older CRD without status.kopf: kopf would keep its retry state in annotations, a write to objects
    the users own, so the operator exits at start-up with a message that says which CRD to install."""
    crd = yaml.safe_load((REPO / "crds" / "modeldeployments.yaml").read_text())
    for version in crd["spec"]["versions"]:
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["properties"].pop("kopf", None) is not None  # the field the operator needs
    applied = run(fresh, "kubectl", "apply", "--server-side", "--force-conflicts", "-f", "-",
                  input=json.dumps(crd))  # fmt: skip
    assert applied.returncode == 0, applied.stderr

    env = {**fresh, "MODELDEPLOY_STANDALONE": "true", "MODELDEPLOY_NAMESPACES": "default",
           "MODELDEPLOY_HEALTH_PORT": "0", "MODELDEPLOY_METRICS_PORT": "0"}  # fmt: skip
    started = subprocess.run([sys.executable, "-m", "modeldeploy"], env=env, cwd=REPO, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert started.returncode != 0, started.stderr[-2000:]
    assert "has no status.kopf field" in started.stderr + started.stdout, started.stderr[-2000:]
    assert "crds/modeldeployments.yaml" in started.stderr + started.stdout
