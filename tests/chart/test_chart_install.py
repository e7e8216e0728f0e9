"""The chart installed into the real control plane: the operator runs under the chart's ServiceAccount
(its token) and reconciles and rolls out a ModelDeployment, proving the RBAC is enough; what the chart does
not grant is denied; Argo CD-style server-side diff finds no drift; `helm upgrade` updates a changed CRD;
`helm uninstall` with crds.keep keeps the CRDs and the ModelDeployments.

The CRDs are shared with the other suites on this cluster, so the release adopts them (Helm's ownership
annotations) and the test never uninstalls them (crds.keep=true) nor changes them beyond a short name.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from harness.chart import CHART, helm

pytestmark = pytest.mark.chart
CRDS = ("modeldeployments.modeldeploy.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
MD_CRD = "modeldeployments.modeldeploy.io"


@pytest.fixture(scope="module")
def release(cluster, namespace):
    name = f"md-{namespace[-6:]}"
    for crd in CRDS:
        if cluster.kubectl("get", "crd", crd, check=False).returncode == 0:
            cluster.kubectl("annotate", "crd", crd, "--overwrite", f"meta.helm.sh/release-name={name}",
                            f"meta.helm.sh/release-namespace={namespace}")  # fmt: skip
            cluster.kubectl("label", "crd", crd, "--overwrite", "app.kubernetes.io/managed-by=Helm")
    values = ["--set", f"watchNamespaces={{{namespace}}}", "--set", "replicas=2"]
    helm(cluster, "install", name, str(CHART), "-n", namespace, *values, "--wait", "--timeout", "180s")
    yield {"name": name, "namespace": namespace, "values": values, "sa": f"{name}-modeldeploy"}
    helm(cluster, "uninstall", name, "-n", namespace, check=False)
    cluster.kubectl("delete", "clusterrole,clusterrolebinding", f"{name}-modeldeploy", check=False)


@pytest.fixture(scope="module")
def chart_identity(cluster, release, tmp_path_factory):
    """A kubeconfig carrying a token of the chart's ServiceAccount: the operator's in-cluster identity."""
    from harness.operator import OperatorIdentity

    namespace, sa = release["namespace"], release["sa"]
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server = dict(next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"])
    ca = server.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        server["certificate-authority"] = str(Path(cluster.kubeconfig).parent / ca)
    path = tmp_path_factory.mktemp("chart-identity") / "operator.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "c", "cluster": server}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "c", "user": sa, "namespace": namespace}}],
    }))  # fmt: skip
    return OperatorIdentity(f"system:serviceaccount:{namespace}:{sa}", path)


def _as(cluster, identity, *args: str):
    return cluster.kubectl("--kubeconfig", str(identity.kubeconfig), *args, check=False)


def test_replicas_run_with_distinct_pod_indexes_and_a_peering_object(cluster, release):
    pods = cluster.get_json(
        "pods", "-n", release["namespace"], "-l", f"app.kubernetes.io/instance={release['name']}"
    )
    indexes = sorted(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] for p in pods["items"])
    assert indexes == ["0", "1"]  # the MODELDEPLOY_PRIORITY of each replica
    peering = cluster.get_json("kopfpeering", "modeldeploy", "-n", release["namespace"])
    assert peering["metadata"]["name"] == "modeldeploy"


@pytest.mark.parametrize(
    ("verb", "resource", "where", "allowed"),
    [
        ("patch", "modeldeployments.modeldeploy.io/status", "own", True),
        ("watch", "modeldeployments.modeldeploy.io", "own", True),
        ("create", "deployments.apps", "own", True),
        ("get", "secrets", "own", True),
        ("update", "modeldeployments.modeldeploy.io", "own", False),
        ("patch", "modeldeployments.modeldeploy.io", "own", False),
        ("update", "deployments.apps", "own", False),
        ("delete", "deployments.apps", "own", False),
        ("delete", "modeldeployments.modeldeploy.io", "own", False),
        ("list", "secrets", "own", False),
        ("create", "pods", "own", False),
        ("create", "deployments.apps", "other", False),
        ("list", "modeldeployments.modeldeploy.io", "other", False),
        ("patch", "clusterkopfpeerings.kopf.dev", "cluster", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", "cluster", False),
    ],
)
def test_service_account_has_exactly_the_rights_it_needs(cluster, release, verb, resource, where, allowed):
    sa = f"system:serviceaccount:{release['namespace']}:{release['sa']}"
    scope = {"own": ["-n", release["namespace"]], "other": ["-n", "default"], "cluster": []}[where]
    resource, _, subresource = resource.partition("/")
    if subresource:
        scope = [*scope, f"--subresource={subresource}"]
    result = cluster.kubectl("auth", "can-i", verb, resource, *scope, "--as", sa, check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no"), (verb, resource, where, result.stderr)


@pytest.fixture(scope="module")
def rolled_out(cluster, release, chart_identity, tmp_path_factory):
    """The operator, as the chart's ServiceAccount, deploys a model and rolls out a new version of it."""
    from harness.operator import (
        get_md,
        kubectl_apply,
        model_deployment,
        running_operator,
        wait_for,
        wait_ready,
    )

    namespace = release["namespace"]
    log = tmp_path_factory.mktemp("chart-operator") / "operator.log"
    with running_operator(chart_identity, namespace, log) as operator:
        first = model_deployment("iris", namespace)
        kubectl_apply(cluster, first)
        before = wait_ready(cluster, namespace, "iris", timeout=120)
        second = model_deployment("iris", namespace)
        second["spec"]["model"] |= {
            "version": "4",
            "uri": "https://models.example.internal/iris/v4/model.joblib",
        }
        kubectl_apply(cluster, second)

        def rolled() -> dict | None:
            md = get_md(cluster, namespace, "iris")
            status = (md or {}).get("status") or {}
            moved = status.get("activeRevision") not in (None, before["status"]["activeRevision"])
            done = (status.get("rollout") or {}).get("phase") in ("PostPromotion", "Completed")
            return md if moved and done else None

        wait_for(rolled, timeout=180, what=f"rollout of model version 4 (operator log: {log})")
        after = wait_ready(cluster, namespace, "iris", timeout=120)
        yield {"before": before, "after": after, "manifest": second, "operator": operator}


def test_operator_under_the_chart_identity_reconciles_and_rolls_out(rolled_out):
    before, after = rolled_out["before"], rolled_out["after"]
    assert after["status"]["modelVersion"] == "4"
    assert after["status"]["activeColor"] != before["status"]["activeColor"]
    assert rolled_out["operator"].healthy()


def test_no_drift_in_what_the_user_owns_after_a_rollout(cluster, release, rolled_out):
    # Argo CD's server-side diff: a dry-run apply of the Git manifest under its own field manager.
    result = cluster.kubectl(
        "diff", "--server-side", "--force-conflicts", "--field-manager=argocd-controller",
        "-n", release["namespace"], "-f", "-", input=json.dumps(rolled_out["manifest"]), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_verb_the_chart_does_not_grant_is_denied(cluster, chart_identity, rolled_out):
    denied = [
        ("delete", "modeldeployment", "iris"),
        ("get", "secrets"),
        ("create", "serviceaccount", "probe"),  # read only, to check its mark
    ]
    for args in denied:
        result = _as(cluster, chart_identity, *args)
        assert result.returncode != 0 and "forbidden" in result.stderr.lower(), (args, result.stderr)
    assert _as(cluster, chart_identity, "get", "modeldeployment", "iris").returncode == 0


def test_helm_upgrade_with_a_changed_crd_updates_it(cluster, release, tmp_path):
    changed = tmp_path / "modeldeploy"
    shutil.copytree(CHART, changed)
    crd_file = changed / "files" / "crds" / "modeldeployments.yaml"
    crd_file.write_text(crd_file.read_text().replace("    - mdep\n", "    - mdep\n    - mdchart\n", 1))
    assert "mdchart" in crd_file.read_text()
    upgrade = ("upgrade", release["name"], "-n", release["namespace"], *release["values"], "--wait")
    try:
        helm(cluster, *upgrade[:2], str(changed), *upgrade[2:])
        assert "mdchart" in cluster.get_json("crd", MD_CRD)["spec"]["names"]["shortNames"]
        assert cluster.kubectl("get", "mdchart", "iris", "-n", release["namespace"]).returncode == 0
    finally:
        helm(cluster, *upgrade[:2], str(CHART), *upgrade[2:])
    assert "mdchart" not in cluster.get_json("crd", MD_CRD)["spec"]["names"]["shortNames"]


def test_helm_uninstall_with_crds_keep_keeps_modeldeployments(cluster, release, rolled_out):
    helm(cluster, "uninstall", release["name"], "-n", release["namespace"], "--wait")
    for crd in CRDS:
        assert cluster.kubectl("get", "crd", crd, check=False).returncode == 0, crd
    assert (
        cluster.get_json("modeldeployment", "iris", "-n", release["namespace"])["spec"]["model"]["version"]
        == "4"
    )
    assert cluster.kubectl("get", "clusterrole", release["sa"], check=False).returncode != 0
    assert (
        cluster.kubectl(
            "get", "statefulset", release["sa"], "-n", release["namespace"], check=False
        ).returncode
        != 0
    )
