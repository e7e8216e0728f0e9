"""The chart grants the operator exactly what it uses. An operator runs under the chart's own RBAC
(rendered by helm) through a scenario that makes every kind of request it makes in production: create
children of every kind (the shadow phase's ConfigMap too), read the Secrets, claims and ServiceAccount a
ModelDeployment names, scale, delete an HPA and a PDB a spec change no longer wants, post Events, write
status, lose a ModelDeployment. The API server's audit log of that run is then compared with the grants:
nothing it asked for was denied, and every grant was used at least once or is listed below with the
reason it is kept."""

from __future__ import annotations

import pytest

from harness.operator import (
    audit_requests,
    audit_timestamp,
    chart_rbac,
    create_operator_identity,
    create_peering,
    get_obj,
    install_crds,
    install_optional_crds,
    kubectl_apply,
    model_deployment,
    rbac_grants,
    running_operator,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.e2e

# Granted, and not necessarily used by the scenario: why each is kept.
KEPT_UNUSED: dict[tuple[str, str, str], str] = {
    ("gateway.networking.k8s.io", "httproutes", "delete"): "removes a route the spec no longer wants",
    ("gateway.networking.k8s.io", "httproutes", "list"): "watches the routes it controls (hand deletions)",
    ("gateway.networking.k8s.io", "httproutes", "watch"): "watches the routes it controls (hand deletions)",
    ("monitoring.coreos.com", "servicemonitors", "delete"): "removes a ServiceMonitor no longer wanted",
    ("monitoring.coreos.com", "servicemonitors", "list"): "watches the monitors it controls",
    ("monitoring.coreos.com", "servicemonitors", "watch"): "watches the monitors it controls",
    ("modeldeploy.io", "modeldeployments", "get"): "a pass for a key whose body is not cached reads it",
}


def _labelled(kind: str, name: str, usage: str, **fields) -> dict:
    meta = {"name": name, "labels": {"modeldeploy.io/usage": usage}}
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, **fields}


def _scenario(cluster, namespace: str) -> None:
    """Every request the operator makes in production, once at least."""
    claim_spec = {
        "accessModes": ["ReadOnlyMany"],
        "storageClassName": "",
        "resources": {"requests": {"storage": "1Gi"}},
    }
    kubectl_apply(
        cluster,
        [
            _labelled("Secret", "keys", "api-keys", stringData={"api-keys": "k1"}),
            _labelled("Secret", "pull", "image-pull", type="kubernetes.io/dockerconfigjson",
                      stringData={".dockerconfigjson": '{"auths": {}}'}),
            _labelled("PersistentVolumeClaim", "models", "models", spec=claim_spec),
            _labelled("Secret", "store", "model-credentials", stringData={"Authorization": "Bearer t"}),
            _labelled("ServiceAccount", "runner", "model-pods"),
        ],
        namespace=namespace,
    )  # fmt: skip
    volume = {
        "accessModes": ["ReadOnlyMany"],
        "capacity": {"storage": "1Gi"},
        "storageClassName": "",
        "hostPath": {"path": "/srv/models"},
        "claimRef": {"namespace": namespace, "name": "models"},
    }
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{namespace}-models"}}
    kubectl_apply(cluster, {**pv, "spec": volume})
    alpha = model_deployment(
        "alpha", namespace, replicas=2,
        security={"apiKeySecretRef": {"name": "keys"}},
        server={"imagePullSecrets": [{"name": "pull"}]},
        serviceAccountName="runner",
        monitoring={"serviceMonitor": {"enabled": True}},
        rollout={
            "trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "shared"}]}},
            "shadow": {"percent": 10, "minRequests": 100, "minAgreement": 0.9, "maxSeconds": 600},
        },
    )  # fmt: skip
    alpha["spec"]["model"]["credentials"] = {"secretRef": {"name": "store"}}
    beta = model_deployment(
        "beta", namespace, replicas=None,
        model={"uri": "pvc://models/iris/model.onnx", "format": "onnx", "version": "1"},
        autoscaling={"minReplicas": 1, "maxReplicas": 3},
    )  # fmt: skip
    del beta["spec"]["replicas"]
    kubectl_apply(cluster, [alpha, beta])
    wait_ready(cluster, namespace, "alpha", timeout=120)
    wait_ready(cluster, namespace, "beta", timeout=120)
    # Spec changes that drop children: the PDB (one replica), the HPA (no autoscaling).
    alpha["spec"]["replicas"] = 1
    del beta["spec"]["autoscaling"]
    beta["spec"]["replicas"] = 1
    kubectl_apply(cluster, [alpha, beta])
    wait_for(lambda: get_obj(cluster, "pdb", namespace, "alpha") is None, timeout=60, what="PDB deleted")
    wait_for(lambda: get_obj(cluster, "hpa", namespace, "beta") is None, timeout=60, what="HPA deleted")
    # A ModelDeployment goes; its children follow through garbage collection, not through us.
    cluster.kubectl("delete", "modeldeployment", "alpha", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(lambda: get_obj(cluster, "deployment", namespace, "alpha-blue") is None, timeout=60,
             what="alpha's Deployment garbage-collected")  # fmt: skip


def test_the_chart_grants_exactly_what_the_operator_uses(cluster, namespace, tmp_path):
    install_crds(cluster)
    install_optional_crds(cluster, "gateway-api", "prometheus-operator")
    create_peering(cluster, namespace)
    identity = create_operator_identity(cluster, namespace, tmp_path)
    since = audit_timestamp()
    with running_operator(identity, namespace, tmp_path / "operator.log"):
        _scenario(cluster, namespace)
    requests = audit_requests(cluster.audit_log, identity.username, since)

    denied = sorted({(r.group, r.resource, r.verb, r.code) for r in requests if not r.allowed})
    assert denied == [], f"the operator asked for what the chart does not grant: {denied}"
    used = {(r.group, r.resource, r.verb) for r in requests}
    # Server-side apply of a missing object is a patch that creates it: it needs `create` too.
    used |= {(r.group, r.resource, "create") for r in requests if r.verb == "patch" and r.code == 201}
    granted = rbac_grants(chart_rbac(cluster, namespace))
    assert used <= granted, sorted(used - granted)
    unused = sorted(granted - used - set(KEPT_UNUSED))
    assert unused == [], f"granted but never used (drop them, or say in KEPT_UNUSED why they stay): {unused}"


def test_cluster_wide_installs_grant_the_same_rights_in_every_namespace(cluster):
    """The audit above runs namespaced; cluster-wide the chart grants the same, bar the peering kind and the
    namespace watch kopf needs only to follow a list of namespaces."""
    namespaced = rbac_grants(chart_rbac(cluster, "ml"))
    cluster_wide = rbac_grants(chart_rbac(cluster, "ml", cluster_wide=True))
    peering = {("kopf.dev", "kopfpeerings", verb) for verb in ("list", "watch", "patch")}
    assert {("", "namespaces", "list"), ("", "namespaces", "watch")} <= namespaced
    expected = {g for g in namespaced - peering if g[1] != "namespaces"}
    expected |= {("kopf.dev", "clusterkopfpeerings", verb) for verb in ("list", "watch", "patch")}
    assert cluster_wide == expected, (sorted(cluster_wide - expected), sorted(expected - cluster_wide))
