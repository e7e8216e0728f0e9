"""GPUs as Kubernetes sees them: one kwok node advertises a fake `nvidia.com/gpu` (as a device plugin would),
a ModelDeployment that asks for one lands only there, and one that asks for more than any node has stays
Pending with the scheduler's reason in its Degraded condition."""

from __future__ import annotations

import json

import pytest

from harness.operator import condition, get_md, kubectl_apply, model_deployment, wait_for, wait_ready

pytestmark = pytest.mark.e2e

GPU = "nvidia.com/gpu"
GPU_NODE = "kwok-node-1"


def _advertise(cluster, count: str | None) -> None:
    """What a device plugin does: the node's capacity and allocatable carry the resource (None removes it)."""
    patch = {"status": {"capacity": {GPU: count}, "allocatable": {GPU: count}}}
    cluster.kubectl(
        "patch", "node", GPU_NODE, "--subresource=status", "--type=merge", "-p", json.dumps(patch)
    )


@pytest.fixture(scope="module")
def gpu_node(cluster):
    _advertise(cluster, "1")
    yield GPU_NODE
    _advertise(cluster, None)


def _gpu_model(name: str, namespace: str, gpus: int) -> dict:
    resources = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi", GPU: gpus}}
    return model_deployment(name, namespace, replicas=1, resources=resources)


def _pods(cluster, namespace: str, name: str) -> list[dict]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"modeldeploy.io/name={name}", "-o", "json")
    return json.loads(out.stdout)["items"]


def test_a_gpu_model_runs_only_on_the_node_that_advertises_gpus(cluster, namespace, operator, gpu_node):
    kubectl_apply(cluster, _gpu_model("gpu-one", namespace, 1))
    wait_ready(cluster, namespace, "gpu-one")
    pods = _pods(cluster, namespace, "gpu-one")
    assert [p["spec"]["nodeName"] for p in pods] == [gpu_node]
    serving = next(c for c in pods[0]["spec"]["containers"] if c["name"] == "modelserve")
    assert serving["resources"]["limits"][GPU] == "1" and serving["resources"]["requests"][GPU] == "1"
    fetch = pods[0]["spec"]["initContainers"][0]
    assert GPU not in fetch["resources"].get("limits", {})  # the download holds no device


def test_a_model_asking_for_more_gpus_than_any_node_has_stays_pending_with_the_reason(
    cluster, namespace, operator, gpu_node
):
    kubectl_apply(cluster, _gpu_model("gpu-many", namespace, 2))

    def degraded():
        cond = condition(get_md(cluster, namespace, "gpu-many"), "Degraded")
        return cond if cond.get("status") == "True" else None

    cond = wait_for(degraded, timeout=90, what="Degraded=True for a pod no node can take")
    assert cond["reason"] == "Unschedulable"
    assert f"Insufficient {GPU}" in cond["message"], cond
    pods = _pods(cluster, namespace, "gpu-many")
    assert pods and all(p["status"]["phase"] == "Pending" and not p["spec"].get("nodeName") for p in pods)
