"""The chart rendered by real helm: lint, every ci/ case accepted by the real API server (server-side
dry-run, prometheus-operator CRDs installed), typos in values rejected by the schema, CRDs identical to
crds/, copies of dashboards and alerts in sync."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from harness.chart import CHART, CI_VALUES, KUBE_VERSION, REPO, find, helm, render
from harness.scripts import load_script

pytestmark = pytest.mark.chart
CHART_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
}


@pytest.fixture(scope="module")
def api_server_ready(cluster):
    """Third-party CRDs the rendered objects need, and the namespaces the ci/ cases name."""
    subprocess.run(
        ["bash", str(REPO / "tests/cluster/cluster.sh"), "install-crds", "prometheus-operator"],
        check=True, capture_output=True, env=cluster.env,
    )  # fmt: skip
    peering = render(cluster, "--show-only", "templates/crds/crds.yaml")
    peering = [d for d in peering if d["spec"]["group"] == "kopf.dev"]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    input=yaml.safe_dump_all(peering))  # fmt: skip
    for crd in (
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
        "prometheusrules.monitoring.coreos.com",
    ):
        cluster.wait_established(crd)
    for values in CI_VALUES:
        for ns in yaml.safe_load(values.read_text()).get("watchNamespaces") or []:
            cluster.kubectl("create", "namespace", ns, check=False)
    return cluster


def test_chart_copies_and_values_table_are_in_sync():
    result = subprocess.run(
        [sys.executable, str(REPO / "charts" / "sync_chart_files.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_chart_crd_is_identical_to_crds_folder(cluster):
    rendered = find(render(cluster), "CustomResourceDefinition", "modeldeployments.modeldeploy.io")[0]
    source = yaml.safe_load((REPO / "crds" / "modeldeployments.yaml").read_text())
    # The chart adds only its own labels and the keep annotation.
    rendered["metadata"]["labels"] = {
        k: v for k, v in rendered["metadata"]["labels"].items() if k not in CHART_LABELS
    }
    assert rendered["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
    assert rendered == source


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_is_clean(cluster, values):
    result = helm(cluster, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "-f", str(values),
                  check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_ci_case_is_accepted_by_the_api_server(api_server_ready, namespace, values):
    docs = render(api_server_ready, "-f", str(values), namespace=namespace)
    # Hooks included (the peering objects): Helm creates them after install, against the same API.
    result = api_server_ready.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-",
        input=yaml.safe_dump_all(docs), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    applied = result.stdout.splitlines()
    assert len(applied) == len(docs), result.stdout
    assert any(line.startswith("statefulset.apps/") for line in applied), result.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--set", "replicaz=3"], "replicaz"),
        (["--set", "metrics.serviceMonitor.enabeld=true"], "enabeld"),
        (["--set", "operator.logLevel=TRACE"], "logLevel"),
        (["--set", "replicas=two"], "replicas"),
        (["--set", "watchNamespaces[0]=Not_A_Namespace"], "watchNamespaces"),
        (["--set", "podSecurityContext.runAsUsr=0"], "runAsUsr"),
        (["--set-json", 'operator.extraEnv=[{"name": "A", "valeu": "1"}]'], "valeu"),
        (
            ["--set-json", 'operator.extraEnv=[{"name": "A", "valueFrom": {"secretKeyRf": {}}}]'],
            "secretKeyRf",
        ),
    ],
    ids=[
        "top-level typo",
        "nested typo",
        "bad enum",
        "wrong type",
        "bad namespace name",
        "typo in pod security",
        "typo in an extra env var",
        "typo in an extra env var's source",
    ],
)
def test_values_typo_is_rejected_naming_the_key(cluster, args, complaint):
    result = helm(cluster, "template", "md", str(CHART), "--kube-version", KUBE_VERSION, *args, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_extra_env_vars_with_a_value_or_a_source_reach_the_operator(cluster):
    extra = [
        {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}}},
    ]
    docs = render(cluster, "--set-json", f"operator.extraEnv={json.dumps(extra)}")
    env = find(docs, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[-len(extra) :] == extra


@pytest.mark.parametrize("args", [[], ["--set", "watchNamespaces={ml}"]], ids=["cluster-wide", "namespaced"])
def test_rbac_grants_what_the_kind_table_says_the_operator_writes_and_watches(cluster, args):
    from modeldeploy.k8s import CHILD_KINDS, MODEL_DEPLOYMENT, WATCHED_KINDS

    docs = render(cluster, *args)
    rules = [rule for role in find(docs, "Role") + find(docs, "ClusterRole") for rule in role["rules"]]

    def verbs(group: str, plural: str) -> set[str]:
        return {v for r in rules if group in r["apiGroups"] and plural in r["resources"] for v in r["verbs"]}

    for kind in CHILD_KINDS:  # a get before the first write, then server-side apply (patch; create)
        assert {"get", "create", "patch"} <= verbs(kind.group, kind.plural), kind.kind
        # Only the children a spec change can remove are ever deleted; nothing is updated (apply patches).
        deleted = kind.kind not in ("Deployment", "Service", "ConfigMap")  # ConfigMap: switched off instead
        assert ("delete" in verbs(kind.group, kind.plural)) is deleted, kind.kind
        assert "update" not in verbs(kind.group, kind.plural), kind.kind
    for kind in (*WATCHED_KINDS, MODEL_DEPLOYMENT):
        assert {"list", "watch"} <= verbs(kind.group, kind.plural), kind.kind
    # ModelDeployments are read, never written (status aside); their spec and metadata belong to users.
    assert verbs("modeldeploy.io", "modeldeployments") == {"get", "list", "watch"}
    assert verbs("modeldeploy.io", "modeldeployments/status") == {"patch"}
    assert verbs("discovery.k8s.io", "endpointslices") == set()  # nothing in the operator reads them
    assert verbs("events.k8s.io", "events") == set()  # kopf and the operator post core v1 Events


def test_replicas_get_distinct_peering_priorities_from_their_ordinal(cluster):
    statefulset = find(render(cluster, "--set", "replicas=3"), "StatefulSet")[0]
    env = {e["name"]: e for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELDEPLOY_PRIORITY"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert statefulset["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            [],
            {
                "MODELDEPLOY_NAMESPACES": "",
                "MODELDEPLOY_METRICS_PORT": "8000",
                "MODELDEPLOY_STANDALONE": "false",
            },
        ),
        (
            [
                "--set",
                "watchNamespaces={ml,ml2}",
                "--set",
                "metrics.enabled=false",
                "--set",
                "peering.create=false",
                "--set",
                "replicas=1",
            ],
            {
                "MODELDEPLOY_NAMESPACES": "ml,ml2",
                "MODELDEPLOY_METRICS_PORT": "0",
                "MODELDEPLOY_STANDALONE": "true",
            },
        ),
        (
            [
                "--set",
                "operator.servingImage=registry.internal/modelserve:1.2",
                "--set",
                "operator.logLevel=DEBUG",
            ],
            {
                "MODELDEPLOY_SERVING_IMAGE": "registry.internal/modelserve:1.2",
                "MODELDEPLOY_LOG_LEVEL": "DEBUG",
            },
        ),
    ],
    ids=["defaults", "namespaced without metrics or peering", "serving image and log level"],
)
def test_values_become_operator_settings(cluster, args, expected):
    container = find(render(cluster, *args), "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert {k: env[k] for k in expected} == expected
    # Every variable the chart sets is a real operator setting (a renamed setting would be silently ignored).
    from modeldeploy.settings import OperatorSettings

    known = {f"MODELDEPLOY_{name.upper()}" for name in OperatorSettings.model_fields}
    assert set(env) <= known, set(env) - known


@pytest.mark.parametrize(
    ("args", "cluster_role_has_application_rules", "roles"),
    [([], True, 0), (["--set", "watchNamespaces={ml,ml-staging}"], False, 2)],
    ids=["cluster-wide", "watchNamespaces"],
)
def test_rbac_scope_follows_watch_namespaces(cluster, args, cluster_role_has_application_rules, roles):
    docs = render(cluster, *args)
    cluster_rules = find(docs, "ClusterRole")[0]["rules"]
    grants_deployments = any("deployments" in r["resources"] for r in cluster_rules)
    assert grants_deployments is cluster_role_has_application_rules
    assert len(find(docs, "Role")) == len(find(docs, "RoleBinding")) == roles


def test_no_rule_grants_wildcards_or_secret_listing(cluster):
    for args in ([], ["--set", "watchNamespaces={ml}"]):
        docs = render(cluster, *args)
        for role in find(docs, "ClusterRole") + find(docs, "Role"):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
                if "secrets" in rule["resources"]:
                    assert rule["verbs"] == ["get"], rule


def test_monitoring_objects_only_when_enabled(cluster):
    assert not find(render(cluster), "ServiceMonitor")
    assert not find(render(cluster, "--set", "metrics.enabled=false", "--set",
                           "metrics.serviceMonitor.enabled=true"), "ServiceMonitor")  # fmt: skip
    docs = render(cluster, "-f", str(CHART / "ci" / "monitoring-values.yaml"))
    assert find(docs, "ServiceMonitor")[0]["spec"]["endpoints"][0]["port"] == "metrics"
    rule = find(docs, "PrometheusRule")[0]
    assert rule["spec"] == yaml.safe_load((REPO / "alerts" / "modeldeploy.rules.yaml").read_text())
    dashboard = find(docs, "ConfigMap")[0]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["modeldeploy.json"] == (
        REPO / "dashboards" / "modeldeploy.json"
    ).read_text().rstrip("\n")


def test_notes_tell_what_to_apply_next(cluster):
    # crds.install=false: the shared cluster's CRDs belong to no release, and a dry-run still checks that.
    result = helm(cluster, "install", "md", str(CHART), "--dry-run=server", "--set", "crds.install=false",
                  "--set", "watchNamespaces={ml}")  # fmt: skip
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl apply -f examples/" in notes
    assert "kubectl modeldeploy promote" in notes
    assert "ml" in notes


def test_api_reference_is_generated_from_the_crd():
    result = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_api_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_value_is_documented_and_in_the_schema():
    documented_values = load_script(REPO / "charts" / "sync_chart_files.py").documented_values

    values_text = (CHART / "values.yaml").read_text()
    documented = {key for key, _, _ in documented_values(values_text)}
    schema = json.loads((CHART / "values.schema.json").read_text())

    def leaves(node: dict, schema_node: dict, prefix: str = "") -> list[str]:
        found = []
        for key, value in node.items():
            path = f"{prefix}{key}"
            assert key in schema_node.get("properties", {}), f"{path} is not in values.schema.json"
            child_schema = schema_node["properties"][key]
            if isinstance(value, dict) and value and child_schema.get("additionalProperties") is False:
                found += leaves(value, child_schema, f"{path}.")
            else:
                found.append(path)
        return found

    def is_documented(path: str) -> bool:  # a documented object (e.g. resources) covers its keys
        parts = path.split(".")
        return any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1))

    undocumented = [p for p in leaves(yaml.safe_load(values_text), schema) if not is_documented(p)]
    assert not undocumented, f"add a `# --` comment for: {undocumented}"


def test_several_replicas_without_peering_are_refused(cluster):
    args = ("--set", "replicas=2", "--set", "peering.create=false")
    result = helm(cluster, "template", "md", str(CHART), "--kube-version", KUBE_VERSION, *args, check=False)
    assert result.returncode != 0
    assert "replicas > 1 needs peering.create=true" in result.stderr


def test_model_network_policy_admits_only_the_operator_and_listed_namespaces(cluster):
    assert find(render(cluster, "--set", "watchNamespaces={ml}"), "NetworkPolicy") == []  # opt-in
    docs = render(
        cluster,
        "--set", "watchNamespaces={ml,ml-staging}", "--set", "modelNetworkPolicy.enabled=true",
        "--set", "modelNetworkPolicy.allowSameNamespace=false",
        "--set", "modelNetworkPolicy.fromNamespaces={gw}",
    )  # fmt: skip
    policies = find(docs, "NetworkPolicy")
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["ml", "ml-staging"]
    spec = policies[0]["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "modeldeploy"}}
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    operator_pods = find(docs, "StatefulSet")[0]["spec"]["selector"]["matchLabels"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "modeldeploy-system"}},
         "podSelector": {"matchLabels": operator_pods}},
        {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["gw"]}]}},
    ]  # fmt: skip


def test_model_network_policy_needs_watch_namespaces(cluster):
    args = ("--set", "modelNetworkPolicy.enabled=true")
    result = helm(cluster, "template", "md", str(CHART), "--kube-version", KUBE_VERSION, *args, check=False)
    assert result.returncode != 0 and "modelNetworkPolicy.enabled needs watchNamespaces" in result.stderr
