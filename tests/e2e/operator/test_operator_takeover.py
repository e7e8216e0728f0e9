"""No takeover: objects that exist under a child's name and are not the ModelDeployment's are left
untouched (the ModelDeployment reports NameConflict and writes nothing), and a neighbour keeps reconciling."""

from __future__ import annotations

import pytest

from harness.operator import (
    condition,
    get_md,
    get_obj,
    kubectl_apply,
    model_deployment,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.e2e


def _foreign_objects(namespace: str) -> list[dict]:
    """A Service and a PDB made by someone else (no owner): what a tenant's ModelDeployment must not claim."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "frontend", "namespace": namespace, "labels": {"app": "frontend"}},
        "spec": {
            "selector": {"app": "frontend"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "x", "namespace": namespace},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "payments"}}},
    }
    return [service, pdb]


def _name_conflict(cluster, namespace: str, name: str) -> dict | None:
    md = get_md(cluster, namespace, name)
    return md if condition(md, "Ready").get("reason") == "NameConflict" else None


def test_existing_objects_survive_a_model_deployment_that_would_claim_them(cluster, namespace, operator):
    kubectl_apply(cluster, _foreign_objects(namespace))
    before = {
        kind: get_obj(cluster, kind, namespace, name)
        for kind, name in (("service", "frontend"), ("poddisruptionbudget", "x"))
    }
    kubectl_apply(cluster, model_deployment("neighbour", namespace, replicas=2))
    wait_ready(cluster, namespace, "neighbour")

    kubectl_apply(cluster, model_deployment("frontend", namespace))  # its stable Service is `frontend`
    kubectl_apply(cluster, model_deployment("x", namespace, replicas=2))  # its PDB is `x`
    frontend = wait_for(lambda: _name_conflict(cluster, namespace, "frontend"), what="frontend NameConflict")
    x = wait_for(lambda: _name_conflict(cluster, namespace, "x"), what="x NameConflict")

    ready = condition(frontend, "Ready")
    assert ready["status"] == "False"
    assert "Service frontend" in ready["message"] and "no owner" in ready["message"], ready
    assert "PodDisruptionBudget x" in condition(x, "Ready")["message"], condition(x, "Ready")
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=NameConflict", "-o", "name"
    ).stdout.split()
    assert len(events) >= 2, events

    # Byte for byte: same resourceVersion (never written), same spec, labels and owners.
    for (kind, name), old in zip(
        (("service", "frontend"), ("poddisruptionbudget", "x")), before.values(), strict=True
    ):
        now = get_obj(cluster, kind, namespace, name)
        assert now is not None, name
        assert now["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"], name
        assert now["spec"] == old["spec"], name
        assert now["metadata"].get("ownerReferences") == old["metadata"].get("ownerReferences") is None
        assert now["metadata"].get("labels") == old["metadata"].get("labels")
    # Nothing at all was written for the conflicting ModelDeployments.
    for name in ("frontend-blue", "x-blue"):
        assert get_obj(cluster, "deployment", namespace, name) is None, name
    for name in ("frontend-preview", "x", "x-preview"):
        assert get_obj(cluster, "service", namespace, name) is None, name

    # The neighbour keeps reconciling: a spec change reaches its Deployment.
    cluster.kubectl(
        "patch",
        "modeldeployment",
        "neighbour",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"replicas":3}}',
    )
    wait_for(
        lambda: (
            (get_obj(cluster, "deployment", namespace, "neighbour-blue") or {})
            .get("spec", {})
            .get("replicas")
            == 3
        ),
        what="neighbour scaled to 3",
    )
    wait_ready(cluster, namespace, "neighbour")
    # And the conflicts still hold after those passes.
    assert (
        get_obj(cluster, "service", namespace, "frontend")["metadata"]["resourceVersion"]
        == (before["service"]["metadata"]["resourceVersion"])
    )


def test_the_conflict_clears_once_the_object_is_gone(cluster, namespace, operator):
    """Deleting the foreign object is the documented fix: the ModelDeployment then reconciles."""
    cluster.kubectl("delete", "poddisruptionbudget", "x", "-n", namespace)
    md = wait_ready(cluster, namespace, "x", timeout=120)
    assert condition(md, "Ready")["status"] == "True"
    pdb = get_obj(cluster, "poddisruptionbudget", namespace, "x")
    owner = pdb["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", "x", True)
