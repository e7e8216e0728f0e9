"""The real node `real-0`: a kubelet of the pinned release, tainted, pods on the CNI range, cluster DNS, no
registry, and kwok keeping its hands off it."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.realnode.pods import (
    CLUSTER_SH,
    exec_in,
    pod_manifest,
    require_real_node,
    start_tools_pod,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]


@pytest.fixture(scope="module")
def node(cluster) -> dict:
    name = require_real_node()
    return cluster.get_json("node", name)


@pytest.fixture(scope="module")
def tools(cluster, namespace) -> dict:
    return start_tools_pod(cluster, namespace)


def test_real_node_is_ready_tainted_and_runs_the_pinned_kubelet(node):
    conditions = {c["type"]: c for c in node["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "KubeletReady"
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.34.4"
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert {
        "key": os.environ["MODELDEPLOY_REAL_NODE_TAINT"],
        "value": "true",
        "effect": "NoSchedule",
    } in node["spec"]["taints"]


def test_pod_without_the_toleration_is_not_scheduled_on_the_real_node(cluster, namespace, node):
    manifest = pod_manifest("no-toleration", node["metadata"]["name"], ["/bin/true"])
    manifest["spec"]["tolerations"] = []
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))

    def unschedulable():
        pod = cluster.get_json("pod", "no-toleration", "-n", namespace)
        return [c for c in pod["status"].get("conditions") or [] if c.get("reason") == "Unschedulable"]

    condition = wait_for(unschedulable, timeout=60)[0]
    assert "untolerated taint" in condition["message"], condition
    assert "nodeName" not in cluster.get_json("pod", "no-toleration", "-n", namespace)["spec"]


def test_pod_gets_an_address_of_the_pod_range_and_its_status_from_the_kubelet(cluster, namespace, tools):
    pod_ip = ipaddress.ip_address(tools["status"]["podIP"])
    assert pod_ip in ipaddress.ip_network(os.environ["MODELDEPLOY_POD_CIDR"])
    # Only the kubelet writes this pod's status (kwok would show up as a manager of the status subresource).
    pod = cluster.get_json("pod", "tools", "-n", namespace, "--show-managed-fields")
    status_managers = {
        m["manager"] for m in pod["metadata"]["managedFields"] if m.get("subresource") == "status"
    }
    assert status_managers == {"kubelet"}, pod["metadata"]["managedFields"]
    assert (
        exec_in(cluster, namespace, "tools", "cat /proc/1/cmdline | tr '\\0' ' '").stdout.strip()
        == "/bin/sleep 3600"
    )


def test_kwok_never_names_the_real_node_and_only_the_kubelet_writes_its_status(cluster, node):
    name = node["metadata"]["name"]
    log = Path(cluster.kubeconfig).parent / "logs" / "kwok-controller.log"
    text = log.read_text()
    assert "kwok-node-0" in text  # the log is the one that names the nodes kwok manages
    assert name not in text
    fresh = cluster.get_json("node", name, "--show-managed-fields")
    status_managers = {
        m["manager"] for m in fresh["metadata"]["managedFields"] if m.get("subresource") == "status"
    }
    assert status_managers == {"kubelet"}, fresh["metadata"]["managedFields"]
    lease = cluster.get_json("lease", name, "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == name


def test_cluster_dns_resolves_a_service_of_this_cluster(cluster, namespace, tools):
    cluster.kubectl("create", "service", "clusterip", "dns-probe", "--tcp=80:8080", "-n", namespace)
    cluster_ip = cluster.get_json("service", "dns-probe", "-n", namespace)["spec"]["clusterIP"]
    # CoreDNS reads Services through the `kubernetes` Service with a ServiceAccount token (in-cluster config).
    answer = wait_for(
        lambda: (
            (r := exec_in(cluster, namespace, "tools", f"nslookup dns-probe.{namespace}.svc.cluster.local"))
            and cluster_ip in r.stdout
            and r.stdout
        ),
        timeout=60,
    )
    assert cluster_ip in answer
    resolv = exec_in(cluster, namespace, "tools", "cat /etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv
    # Names outside the cluster are not resolved: CoreDNS has no forward plugin.
    outside = exec_in(cluster, namespace, "tools", "nslookup deb.debian.org")
    assert outside.returncode != 0, outside.stdout


def test_pod_reaches_the_api_server_through_the_kubernetes_service(cluster, namespace, tools):
    probe = exec_in(cluster, namespace, "tools", "echo | nc -w 3 10.96.0.1 443 && echo open")
    assert probe.stdout.strip() == "open", probe.stderr


def test_containerd_pulls_from_no_registry(cluster, namespace, node):
    manifest = pod_manifest(
        "pull", node["metadata"]["name"], ["/bin/true"], image="docker.io/library/busybox:1.36"
    )
    manifest["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))

    def pull_failure():
        events = cluster.get_json("events", "-n", namespace, "--field-selector", "involvedObject.name=pull")[
            "items"
        ]
        return [e["message"] for e in events if e["reason"] == "Failed" and "pull" in e["message"].lower()]

    messages = wait_for(pull_failure, timeout=90)
    assert any("127.0.0.1:1" in m and "connection refused" in m for m in messages), messages


def test_up_without_root_fails_and_names_the_opt_out():
    require_real_node()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(CLUSTER_SH), "up"]
    result = subprocess.run(as_nobody, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0
    assert "needs root" in result.stderr and "MODELDEPLOY_REAL_NODE=0" in result.stderr, result.stderr
