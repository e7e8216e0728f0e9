"""The local control plane is a real one: scheduling, kwok readiness, CRDs, schema validation, RBAC, audit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from harness.poll import wait_for

pytestmark = pytest.mark.e2e

CLUSTER_SH = Path(__file__).resolve().parents[2] / "cluster" / "cluster.sh"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.e2e.modeldeploy.io"},
    "spec": {
        "group": "e2e.modeldeploy.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def api(cluster):
    return config.new_client_from_config(config_file=cluster.kubeconfig)


def test_two_kwok_nodes_are_ready(cluster):
    nodes = cluster.get_json("nodes")["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    assert len(ready) >= 2, nodes


def test_api_server_reports_the_pinned_release(cluster):
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.3")
    assert version["serverVersion"]["gitVersion"] == version["clientVersion"]["gitVersion"]


def test_deployment_with_two_replicas_becomes_ready_on_kwok_nodes(cluster, namespace):
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def ready_replicas():
        return (
            cluster.get_json("deployment", "web", "-n", namespace).get("status", {}).get("readyReplicas") == 2
        )

    wait_for(ready_replicas, timeout=90)
    pods = cluster.get_json("pods", "-n", namespace, "-l", "app=web")["items"]
    assert {p["spec"]["nodeName"] for p in pods} <= {"kwok-node-0", "kwok-node-1"}
    assert all(p["status"]["phase"] == "Running" for p in pods)


def test_custom_resource_is_created_watched_and_deleted(cluster, namespace, api):
    cluster.kubectl("apply", "-f", "-", input=json.dumps(WIDGET_CRD))
    cluster.wait_established("widgets.e2e.modeldeploy.io")
    custom = client.CustomObjectsApi(api)
    group = ("e2e.modeldeploy.io", "v1", namespace, "widgets")

    def listed_resource_version():
        # Established can precede the resource being served; the watch below resumes from this list.
        try:
            return custom.list_namespaced_custom_object(*group)["metadata"]["resourceVersion"]
        except client.ApiException:
            return None

    since = wait_for(listed_resource_version, timeout=30)
    body = {
        "apiVersion": "e2e.modeldeploy.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
    }
    custom.create_namespaced_custom_object(*group, body)
    got = custom.get_namespaced_custom_object(*group, "w1")
    assert got["spec"]["size"] == 3
    custom.delete_namespaced_custom_object(*group, "w1")
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()
    for event in stream.stream(
        custom.list_namespaced_custom_object, *group, resource_version=since, timeout_seconds=30
    ):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if event["type"] == "DELETED":
            stream.stop()
    assert ("ADDED", "w1") in seen and ("DELETED", "w1") in seen, seen


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"size": 11}, "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"),
        ({"size": "big"}, 'spec.size: Invalid value: "string": spec.size in body must be of type integer'),
        ({}, "spec.size: Required value"),
    ],
    ids=["above-maximum", "wrong-type", "missing-required"],
)
def test_api_server_rejects_objects_that_violate_the_crd_schema(cluster, namespace, spec, message):
    cluster.kubectl("apply", "-f", "-", input=json.dumps(WIDGET_CRD))
    cluster.wait_established("widgets.e2e.modeldeploy.io")
    body = {
        "apiVersion": "e2e.modeldeploy.io/v1",
        "kind": "Widget",
        "metadata": {"name": "bad"},
        "spec": spec,
    }
    result = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_rbac_denies_a_service_account_without_grants(cluster, namespace):
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    user = f"system:serviceaccount:{namespace}:nobody"
    denied = cluster.kubectl(
        "auth", "can-i", "create", "deployments", "-n", namespace, "--as", user, check=False
    )
    assert denied.stdout.strip() == "no"
    cluster.kubectl("create", "role", "deployer", "--verb=create", "--resource=deployments", "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        "deployer",
        "--role=deployer",
        f"--serviceaccount={namespace}:nobody",
        "-n",
        namespace,
    )
    allowed = cluster.kubectl(
        "auth", "can-i", "create", "deployments", "-n", namespace, "--as", user, check=False
    )
    assert allowed.stdout.strip() == "yes"


def test_audit_log_records_who_wrote_what(cluster, namespace):
    cluster.kubectl("create", "configmap", "audited", "-n", namespace, "--from-literal=k=v")

    def audit_entry():
        if not cluster.audit_log or not cluster.audit_log.exists():
            return None
        for line in cluster.audit_log.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef", {})
            if (
                event.get("verb") == "create"
                and ref.get("resource") == "configmaps"
                and ref.get("namespace") == namespace
                and ref.get("name") == "audited"
            ):
                return event
        return None

    event = wait_for(audit_entry, timeout=30)
    assert event["level"] == "Metadata"
    assert event["user"]["username"]


@pytest.mark.parametrize(
    ("bundle", "crd"),
    [
        ("gateway-api", "httproutes.gateway.networking.k8s.io"),
        ("prometheus-operator", "servicemonitors.monitoring.coreos.com"),
    ],
)
def test_pinned_third_party_crds_install_and_become_established(cluster, bundle, crd):
    subprocess.run(
        ["bash", str(CLUSTER_SH), "install-crds", bundle], check=True, capture_output=True, env=cluster.env
    )
    cluster.wait_established(crd)
    assert cluster.get_json("crd", crd)["spec"]["scope"] == "Namespaced"
