"""The 21 hostile ModelDeployments of the security review (H1..H21), one table row each, against a real API
server and the operator as a subprocess under the chart's RBAC. Each row asserts its own safe outcome
(refused at `kubectl apply` with the rule named, or reported in status without harm); after every row the
shared invariants are checked: objects that are not a ModelDeployment's own are unchanged and never written,
no secret or fetched content is in any status, Event or operator log line, the operator is alive, and a
healthy neighbour is still reconciled (a Service deleted by hand comes back). docs/security.md states each
outcome as a guarantee."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.operator import (
    WRITE_VERBS,
    OperatorProcess,
    audit_requests,
    audit_timestamp,
    chart_rbac,
    condition,
    create_operator_identity,
    create_peering,
    get_md,
    get_obj,
    install_crds,
    install_optional_crds,
    kubectl_apply,
    model_deployment,
    rbac_grants,
    wait_for,
    wait_ready,
)
from modeldeploy.api.status import CUT_MARK, Condition

from .hostile import SECRET, Origin, hostile_origin

pytestmark = pytest.mark.e2e

WIDE_COLUMNS = 400
# A data set whose header is made of secret-looking column names: none may be echoed.
WIDE_CSV = (
    ",".join(f"{SECRET}{i}" for i in range(WIDE_COLUMNS)) + "\n" + ",".join("1" * WIDE_COLUMNS) + "\n"
).encode()
TARPITS = 3
FOREIGN = [("service", "frontend"), ("deployment", "api-blue"), ("secret", "db-credentials")]


@dataclass
class Scene:
    cluster: Any
    namespace: str
    operator: OperatorProcess
    origin: Origin
    username: str
    since: Any
    foreign: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> resourceVersion

    def md(self, name: str, **spec: Any) -> dict:
        return model_deployment(name, self.namespace, **spec)

    def apply(self, body: dict) -> Any:
        docs = json.dumps(body)
        return self.cluster.kubectl("apply", "--server-side", "-f", "-", input=docs, check=False)

    def refused(self, body: dict, says: str) -> None:
        """`kubectl apply` refuses it with a message that names the rule; nothing is stored."""
        result = self.apply(body)
        assert result.returncode != 0 and says in result.stderr, result.stderr
        assert get_md(self.cluster, self.namespace, body["metadata"]["name"]) is None

    def status_until(
        self, name: str, predicate: Callable[[dict], Any], what: str, timeout: float = 60
    ) -> Any:
        def probe():
            body = get_md(self.cluster, self.namespace, name)
            return predicate(body) if body else None

        return wait_for(probe, timeout=timeout, what=f"{name}: {what}")

    def ready_reason(self, name: str, reason: str) -> dict:
        return self.status_until(
            name,
            lambda b: (lambda c: c if c.get("reason") == reason else None)(condition(b, "Ready")),
            reason,
        )

    def inconclusive_evaluation(self, name: str, timeout: float = 90) -> str:
        """The message of the first evaluation result, which must be inconclusive (no verdict, no harm)."""

        def done(body: dict) -> dict | None:
            result = ((body.get("status") or {}).get("evaluation") or {}).get("result") or {}
            return result if result.get("at") else None

        result = self.status_until(name, done, "an evaluation result", timeout=timeout)
        assert result.get("passed") is None, result
        return result["message"]

    def operator_tried(self, resource: str, name: str) -> None:
        wait_for(
            lambda: any(
                r.resource == resource and r.name == name
                for r in audit_requests(self.cluster.audit_log, self.username, self.since)
            ),
            timeout=30,
            what=f"the operator's request for {resource}/{name}",
        )


def _foreign_objects(cluster, namespace: str) -> list[dict]:
    labels = {"app": "frontend"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "frontend"},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api-blue"},
         "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "api"}},
                  "template": {"metadata": {"labels": {"app": "api"}},
                               "spec": {"containers": [{"name": "api", "image": "r.example/api:1"}]}}}},
        # Not marked for ModelDeployments: a database password H18 tries to borrow.
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials"},
         "stringData": {"password": SECRET}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "h18-keys", "labels": {"modeldeploy.io/usage": "api-keys"}},
         "stringData": {"api-keys": "k-h18"}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def scene(cluster, namespace, tmp_path_factory):
    install_crds(cluster)
    install_optional_crds(cluster, "gateway-api")
    create_peering(cluster, namespace)
    workdir = tmp_path_factory.mktemp("hostile")
    identity = create_operator_identity(cluster, namespace, workdir)
    kubectl_apply(cluster, _foreign_objects(cluster, namespace), namespace=namespace)
    with hostile_origin(files={"/wide.csv": WIDE_CSV}) as origin:
        # The platform's static address map names the origin, which makes its host a trusted one (as a
        # platform-run data store would be): the rows that need a data set read it from there.
        addresses = {f"{namespace}/h10": {"blue": [origin.url], "green": [origin.url]}}
        env = {"MODELDEPLOY_PROBE_ADDRESSES": json.dumps(addresses), "MODELDEPLOY_CHECK_BUDGET_SECONDS": "20"}
        operator = OperatorProcess(identity, namespace, workdir / "operator.log", extra_env=env).start()
        try:
            scene = Scene(cluster, namespace, operator, origin, identity.username, audit_timestamp())
            for kind, name in FOREIGN:
                scene.foreign[(kind, name)] = get_obj(cluster, kind, namespace, name)["metadata"][
                    "resourceVersion"
                ]
            kubectl_apply(cluster, scene.md("neighbour", replicas=1))
            wait_ready(cluster, namespace, "neighbour")
            yield scene
        finally:
            operator.stop()


# -- the rows ------------------------------------------------------------------------------------------

TOKEN = "file:///var/run/secrets/kubernetes.io/serviceaccount/token"
DATASET_RULE = "datasetUri must be an https:// or http:// URL"


def _dataset(uri: str, **more: Any) -> dict:
    return {"datasetUri": uri, "labelColumn": "y", "metric": "accuracy", "threshold": 0.5, **more}


def h1_token_as_data_set(s: Scene) -> None:
    s.refused(s.md("h1", monitoring={"evaluation": _dataset(TOKEN)}), DATASET_RULE)


def h2_endless_special_file(s: Scene) -> None:
    s.refused(s.md("h2", rollout={"qualityGate": _dataset("file:///dev/zero")}), DATASET_RULE)
    s.refused(s.md("h2", monitoring={"evaluation": _dataset("file:///dev/urandom")}), DATASET_RULE)


def h3_cloud_metadata(s: Scene) -> None:
    uri = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    assert s.apply(s.md("h3", monitoring={"evaluation": _dataset(uri)})).returncode == 0
    message = s.inconclusive_evaluation("h3")
    assert "link-local" in message, message


def h4_name_of_a_foreign_service(s: Scene) -> None:
    kubectl_apply(s.cluster, s.md("frontend"))
    ready = s.ready_reason("frontend", "NameConflict")
    assert "frontend" in ready["message"] and "no owner" in ready["message"]


def h5_name_whose_colour_is_taken(s: Scene) -> None:
    kubectl_apply(s.cluster, s.md("api"))
    assert "api-blue" in s.ready_reason("api", "NameConflict")["message"]


def h6_reserved_env_in_lower_case(s: Scene) -> None:
    env = [{"name": "modelserve_api_keys_file", "value": "/x"},
           {"name": "modelserve_allow_unverified_pickle", "value": "true"}]  # fmt: skip
    s.refused(
        s.md("h6", server={"env": env}), "server.env must not set MODELSERVE_* variables (in any letter case)"
    )


def h7_env_over_the_annotation(s: Scene) -> None:
    env = [{"name": f"V{i}", "value": "x" * 32768} for i in range(9)]
    s.refused(s.md("h7", server={"env": env}), "names and values together must be at most 65536 bytes")


def h8_fields_the_api_server_refuses_on_the_deployment(s: Scene) -> None:
    s.refused(
        s.md("h8", resources={"requests": {"memory": "-1"}}), "resource quantities must not be negative"
    )
    s.refused(
        s.md("h8", server={"nodeSelector": {"bad key!": "x"}}), "server.nodeSelector keys must be label keys"
    )
    s.refused(s.md("h8", server={"tolerations": [{"key": "k", "operator": "Exists", "value": "x"}]}),
              "value must be empty when operator is Exists")  # fmt: skip
    late = [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]
    s.refused(s.md("h8", server={"tolerations": late}), "tolerationSeconds needs effect NoExecute")
    # affinity is passed through unvalidated: the API server refuses the Deployment, nothing else is touched.
    # Hundreds of bad terms make its answer far longer than a condition message may be: status must still be
    # written (cut at the field's limit, marked) and the neighbour reconciled (the shared invariants).
    terms = [{"matchExpressions": [{"key": f"zone-{i}-" + "k" * 40, "operator": "Near"}]} for i in range(400)]
    required = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
    affinity = {"nodeAffinity": required}
    assert s.apply(s.md("h8", server={"affinity": affinity})).returncode == 0
    ready = s.ready_reason("h8", "ApplyRejected")
    limit = Condition.text_limit("message")
    assert limit is not None and len(ready["message"]) == limit, len(ready["message"])
    assert "Deployment h8-blue" in ready["message"] and ready["message"].endswith(CUT_MARK)
    assert get_obj(s.cluster, "deployment", s.namespace, "h8-blue") is None


def h9_schema_too_large_for_a_pod(s: Scene) -> None:
    features = [{"name": f"f{i}", "dtype": "string", "categories": [f"{i}-{c}-" + "c" * 40 for c in range(4)]}
                for i in range(4096)]  # fmt: skip
    model = {
        "uri": "https://models.example.internal/m.onnx",
        "format": "onnx",
        "schema": {"features": features},
    }
    result = s.apply(s.md("h9", model=model))
    if (
        result.returncode == 0
    ):  # stored: the operator tries, the API server refuses the oversized pod template
        s.operator_tried("deployments", "h9-blue")
        assert "Deployment h9-blue" in s.ready_reason("h9", "ApplyRejected")["message"]
        assert get_obj(s.cluster, "deployment", s.namespace, "h9-blue") is None
    else:
        assert "too large" in result.stderr.lower() or "must have at most" in result.stderr, result.stderr


def h10_secret_looking_data_set_header(s: Scene) -> None:
    evaluation = _dataset(f"{s.origin.url}/wide.csv", labelColumn="label")
    kubectl_apply(s.cluster, s.md("h10", replicas=1, monitoring={"evaluation": evaluation}))
    message = s.inconclusive_evaluation("h10")
    assert f"not among the {WIDE_COLUMNS} columns" in message and len(message) < 4096, message


def h11_huge_body_limit(s: Scene) -> None:
    result = s.apply(s.md("h11", replicas=1, server={"maxBodyBytes": 200_000_000_000}))
    if result.returncode != 0:  # a CRD maximum
        assert "maxBodyBytes" in result.stderr, result.stderr
    else:  # the pods' own memory is at stake, nothing of the operator's or others'
        wait_ready(s.cluster, s.namespace, "h11")


def h12_presigned_model_url(s: Scene) -> None:
    uri = f"https://bucket.s3.amazonaws.com/m.onnx?X-Amz-Signature={SECRET}"
    kubectl_apply(s.cluster, s.md("h12", replicas=1, model={"uri": uri, "format": "onnx"}))
    wait_ready(s.cluster, s.namespace, "h12")


def h13_credentials_in_the_model_url(s: Scene) -> None:
    uri = f"https://user:{SECRET}@models.example.internal/m.onnx"
    kubectl_apply(s.cluster, s.md("h13", replicas=1, model={"uri": uri, "format": "onnx"}))
    wait_ready(s.cluster, s.namespace, "h13")


def h14_data_set_the_operator_cannot_read(s: Scene) -> None:
    s.refused(s.md("h14", rollout={"qualityGate": _dataset("s3://bucket/holdout.csv")}), DATASET_RULE)
    s.refused(s.md("h14", rollout={"qualityGate": _dataset("pvc://claim/holdout.csv")}), DATASET_RULE)


def h15_more_rows_than_a_check_can_score(s: Scene) -> None:
    gate = _dataset("https://data.example.internal/h.csv", maxRows=1_000_000)
    s.refused(s.md("h15", rollout={"qualityGate": gate}), "should be less than or equal to 100000")


def h16_tarpit_data_sets(s: Scene) -> None:
    for i in range(TARPITS):
        evaluation = _dataset(f"{s.origin.url}/trickle-{i}.csv", intervalSeconds=60)
        kubectl_apply(s.cluster, s.md(f"h16-{i}", replicas=1, monitoring={"evaluation": evaluation}))
    for i in range(TARPITS):
        wait_ready(s.cluster, s.namespace, f"h16-{i}")
    # Every tarpit is being read (each holds a check for its deadline) when the neighbour check below runs.
    tarpits = {f"/trickle-{i}.csv" for i in range(TARPITS)}
    wait_for(lambda: tarpits <= set(s.origin.requests), timeout=60, what="the tarpits being read")


def h17_route_for_another_tenants_hostname(s: Scene) -> None:
    routing = {"hostnames": ["api.othertenant.example"],
               "parentRefs": [{"name": "shared", "namespace": "gateway-system"}],
               "headerMatch": {"name": "x-canary", "type": "RegularExpression", "value": "("}}  # fmt: skip
    kubectl_apply(s.cluster, s.md("h17", replicas=1, rollout={"trafficRouting": {"gatewayAPI": routing}}))
    invalid = s.ready_reason("h17", "InvalidSpec")
    assert "headerMatch.value is not a regular expression" in invalid["message"]
    assert get_obj(s.cluster, "httproute", s.namespace, "h17") is None
    # A valid route is written in the ModelDeployment's own namespace only; whether the shared Gateway
    # admits it (and its hostname) is the Gateway's allowedRoutes, the platform's decision.
    routing["headerMatch"]["value"] = "^canary$"
    kubectl_apply(s.cluster, s.md("h17", replicas=1, rollout={"trafficRouting": {"gatewayAPI": routing}}))
    route = wait_for(
        lambda: get_obj(s.cluster, "httproute", s.namespace, "h17"), timeout=60, what="HTTPRoute"
    )
    assert route["metadata"]["namespace"] == s.namespace
    assert route["spec"]["hostnames"] == ["api.othertenant.example"]


def h18_borrowed_secret(s: Scene) -> None:
    borrowed = {"apiKeySecretRef": {"name": "db-credentials", "key": "password"}}
    kubectl_apply(s.cluster, s.md("h18-new", replicas=1, security=borrowed))
    refused = s.ready_reason("h18-new", "SecretNotMarked")
    assert "kubectl label secret db-credentials" in refused["message"]
    assert get_obj(s.cluster, "deployment", s.namespace, "h18-new-blue") is None
    # Serving first with a marked Secret, then pointed at the unmarked one: it keeps serving, says why.
    kubectl_apply(s.cluster, s.md("h18", replicas=1, security={"apiKeySecretRef": {"name": "h18-keys"}}))
    wait_ready(s.cluster, s.namespace, "h18")
    serving = get_obj(s.cluster, "deployment", s.namespace, "h18-blue")
    kubectl_apply(s.cluster, s.md("h18", replicas=1, security=borrowed))

    def refused_while_serving(body: dict) -> dict | None:
        return body if condition(body, "Degraded").get("reason") == "SecretNotMarked" else None

    degraded = s.status_until("h18", refused_while_serving, "Degraded=SecretNotMarked")
    assert condition(degraded, "Ready")["status"] == "True" and degraded["status"]["phase"] == "Degraded"
    now = get_obj(s.cluster, "deployment", s.namespace, "h18-blue")
    assert now["metadata"]["resourceVersion"] == serving["metadata"]["resourceVersion"]


def h19_tolerate_every_taint(s: Scene) -> None:
    server = {
        "tolerations": [{"operator": "Exists"}],
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
    }
    s.refused(s.md("h19", server=server), "server.tolerations: every toleration must name a key")


def h20_zero_replicas(s: Scene) -> None:
    kubectl_apply(s.cluster, s.md("h20", replicas=0))
    parked = s.status_until(
        "h20", lambda b: b if ((b.get("status") or {}).get("rollout") or {}).get("message", "").startswith(
            "spec.replicas is 0") else None, "parked",
    )  # fmt: skip
    assert parked["status"]["phase"] == "Pending"
    assert get_obj(s.cluster, "deployment", s.namespace, "h20-blue")["spec"]["replicas"] == 0
    kubectl_apply(s.cluster, s.md("h20", replicas=1))  # raising it is all it takes
    wait_ready(s.cluster, s.namespace, "h20")


def h21_request_logs(s: Scene) -> None:
    # Request logs stay in the model's pods: the operator cannot read pod logs, so no request reaches status
    # through it; what modelserve logs by default is docs/security.md's (and the author's choice here).
    resources = {(group, resource) for group, resource, _ in rbac_grants(chart_rbac(s.cluster, s.namespace))}
    assert ("", "pods/log") not in resources and ("", "pods/exec") not in resources
    kubectl_apply(s.cluster, s.md("h21", replicas=1, logging={"sampleRate": 1}))
    wait_ready(s.cluster, s.namespace, "h21")


ROWS = [
    h1_token_as_data_set, h2_endless_special_file, h3_cloud_metadata, h4_name_of_a_foreign_service,
    h5_name_whose_colour_is_taken, h6_reserved_env_in_lower_case, h7_env_over_the_annotation,
    h8_fields_the_api_server_refuses_on_the_deployment, h9_schema_too_large_for_a_pod,
    h10_secret_looking_data_set_header, h11_huge_body_limit, h12_presigned_model_url,
    h13_credentials_in_the_model_url, h14_data_set_the_operator_cannot_read,
    h15_more_rows_than_a_check_can_score, h16_tarpit_data_sets, h17_route_for_another_tenants_hostname,
    h18_borrowed_secret, h19_tolerate_every_taint, h20_zero_replicas, h21_request_logs,
]  # fmt: skip


# -- the invariants after every row --------------------------------------------------------------------


def _nothing_foreign_touched(s: Scene) -> None:
    for (kind, name), version in s.foreign.items():
        assert get_obj(s.cluster, kind, s.namespace, name)["metadata"]["resourceVersion"] == version, (
            kind,
            name,
        )
    foreign = {(f"{kind}s", name) for kind, name in FOREIGN}
    requests = audit_requests(s.cluster.audit_log, s.username, s.since)
    writes = [r for r in requests if r.verb in WRITE_VERBS and (r.resource, r.name) in foreign]
    assert writes == [], writes


def _no_secret_shown(s: Scene) -> None:
    items = s.cluster.get_json("modeldeployments", "-n", s.namespace)["items"]
    statuses = json.dumps([item.get("status") for item in items])  # the spec is the author's own text
    events = s.cluster.kubectl("get", "events", "-n", s.namespace, "-o", "json").stdout
    log = s.operator.log_path.read_text(errors="replace")
    for where, text in (("status", statuses), ("Events", events), ("operator log", log)):
        assert SECRET not in text, f"a secret-looking value is in the {where}"


def _neighbour_still_reconciled(s: Scene) -> None:
    """A child deleted by hand is repaired: the neighbour's passes still run (no pods to wait for)."""
    before = get_obj(s.cluster, "service", s.namespace, "neighbour-preview")["metadata"]["uid"]
    s.cluster.kubectl("delete", "service", "neighbour-preview", "-n", s.namespace, "--wait=false")

    def repaired() -> bool:
        now = get_obj(s.cluster, "service", s.namespace, "neighbour-preview")
        return bool(now) and now["metadata"]["uid"] != before

    wait_for(repaired, timeout=20, what="the neighbour's deleted Service re-created")


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"H{i}-{row.__name__.split('_', 1)[1]}" for i, row in enumerate(ROWS, 1)]
)
def test_a_hostile_manifest_has_its_safe_outcome(scene, row):
    row(scene)
    assert scene.operator.healthy()
    _nothing_foreign_touched(scene)
    _no_secret_shown(scene)
    _neighbour_still_reconciled(scene)
