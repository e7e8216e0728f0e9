"""Pods on the real node `real-0` for the tests: a busybox tools pod runs commands inside the pod network.

Every pod here requests 10m CPU (the node has two cores in all), tolerates the node's taint, is pinned to it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.operator import wait_for

TOOLS_IMAGE = "localhost/modeldeploy-tools:local"
CLUSTER_SH = Path(__file__).resolve().parents[2] / "cluster" / "cluster.sh"
NODE_SH = CLUSTER_SH.parent / "node.sh"


def node_name() -> str:
    return os.environ.get("MODELDEPLOY_REAL_NODE_NAME", "")


def require_real_node() -> str:
    """The real node's name; only an explicit opt-out (a second cluster, MODELDEPLOY_REAL_NODE=0) skips."""
    name = node_name()
    if not name:
        cluster = os.environ.get("MODELDEPLOY_CLUSTER_NAME", "modeldeploy")
        pytest.skip(
            f"cluster '{cluster}' runs without the real node (MODELDEPLOY_REAL_NODE=0 or not the default)"
        )
    return name


def pod_manifest(name: str, node: str, command: list[str], image: str = TOOLS_IMAGE, **spec: object) -> dict:
    """A pod pinned to the real node, tolerating its taint, with the smallest resources that run busybox."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [
                {
                    "key": os.environ.get("MODELDEPLOY_REAL_NODE_TAINT", ""),
                    "operator": "Exists",
                    "effect": "NoSchedule",
                }
            ],
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
            **spec,
        },
    }


def pod_ready(cluster, namespace: str, name: str) -> dict | None:
    pod = json.loads(cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
    conditions = pod.get("status", {}).get("conditions") or []
    return pod if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None


def start_tools_pod(cluster, namespace: str, name: str = "tools") -> dict:
    """A long-running busybox pod on the real node; returns the Ready pod object."""
    manifest = pod_manifest(name, require_real_node(), ["/bin/sleep", "3600"])
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    return wait_for(lambda: pod_ready(cluster, namespace, name), timeout=90)


def exec_in(
    cluster, namespace: str, pod: str, script: str, timeout: float = 30
) -> subprocess.CompletedProcess:
    """Runs a shell script in the pod through `kubectl exec` (the API server dials the kubelet)."""
    return subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            cluster.kubeconfig,
            "exec",
            "-n",
            namespace,
            pod,
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=timeout,
    )


def root_command(*args: str) -> str:
    """Output of a host command that needs root (iptables, ss): the real node runs only as root."""
    return subprocess.run(list(args), capture_output=True, text=True, check=True, timeout=30).stdout
