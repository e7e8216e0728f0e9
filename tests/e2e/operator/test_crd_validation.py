"""The generated CRD on a real API server: invalid ModelDeployments are rejected with a message a user
understands (CEL rules, enums, bounds), valid ones are stored with their defaults, and /scale works."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

CRD_FILE = Path(__file__).resolve().parents[3] / "crds" / "modeldeployments.yaml"
SHA = "4f2c" * 16
ONNX = "https://models.example/iris/v3/model.onnx"


@pytest.fixture(scope="module")
def crd(cluster):
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.io", "--timeout=60s"
    )
    return cluster


def manifest(name: str = "iris", **spec: Any) -> dict[str, Any]:
    body = {"model": {"uri": ONNX}, **spec}
    return {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": body}  # fmt: skip


def with_model(**model: Any) -> dict[str, Any]:
    return manifest(model={"uri": ONNX, **model})


TOKEN = "file:///var/run/secrets/kubernetes.io/serviceaccount/token"


def dataset(uri: str) -> dict[str, Any]:
    return {"datasetUri": uri, "labelColumn": "y", "metric": "accuracy", "threshold": 0.5}


def server_env(name: str) -> dict[str, Any]:
    return manifest(server={"env": [{"name": name, "value": "/x"}]})


def create(cluster, namespace: str, body: dict[str, Any]):
    return cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)


INVALID = [
    ("name too long for child names", manifest("a" * 56),
     "metadata.name must be at most 55 characters"),
    ("name not a DNS-1035 label", manifest("1iris"), "metadata.name must start with a letter"),
    ("model missing", {**manifest(), "spec": {"replicas": 1}}, "spec.model: Required value"),
    ("uri scheme not allowed", with_model(uri="ftp://models.example/m.onnx"),
     "model.uri must be https://host/path"),
    ("uri names a folder", with_model(uri="https://models.example/iris/"), "model.uri must be https://host/path"),
    ("azure uri without a container", with_model(uri="azure://modelstore/m.onnx"),
     "azure://<account>/<container>/<blob>"),
    ("pickle suffix without sha256", with_model(uri="https://models.example/m.joblib"),
     "model.sha256 is required for pickle-family models"),
    ("pickle format without sha256", with_model(format="sklearn"),
     "model.sha256 is required for pickle-family models"),
    ("sha256 not hex", with_model(sha256="XYZ" * 21 + "a"), "model.sha256 must be 64 lowercase hexadecimal"),
    ("unknown format", with_model(format="pytorch"), 'Unsupported value: "pytorch"'),
    ("schema on a pvc model", with_model(uri="pvc://store/m.onnx", schema={"features": [{"name": "a"}]}),
     "model.schema works only for https, http, s3, gs and azure models"),
    ("credentials on a pvc model",
     with_model(uri="pvc://store/m.onnx", credentials={"secretRef": {"name": "s"}}),
     "model.credentials works only for https, http, s3, gs and azure models"),
    ("service account not a name", manifest(serviceAccountName="Not_A_Name"), "should match"),
    ("negative replicas", manifest(replicas=-1), "should be greater than or equal to 0"),
    ("autoscaling max below min", manifest(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
     "autoscaling.maxReplicas must be greater than or equal to autoscaling.minReplicas"),
    ("cpu limit below request", manifest(resources={"requests": {"cpu": "500m"}, "limits": {"cpu": "250m"}}),
     "resources.limits.cpu must be greater than or equal to resources.requests.cpu"),
    ("memory limit below request",
     manifest(resources={"requests": {"memory": "2Gi"}, "limits": {"memory": 1000}}),
     "resources.limits.memory must be greater than or equal to resources.requests.memory"),
    ("quantity not a quantity", manifest(resources={"requests": {"cpu": "lots"}}), "should match"),
    ("steps decreasing", manifest(rollout={"steps": [{"weight": 50}, {"weight": 10}]}),
     "rollout.steps weights must be strictly increasing"),
    ("steps repeated", manifest(rollout={"steps": [{"weight": 10}, {"weight": 10}]}),
     "rollout.steps weights must be strictly increasing"),
    ("step weight zero", manifest(rollout={"steps": [{"weight": 0}]}),
     "should be greater than or equal to 1"),
    ("step weight above 100", manifest(rollout={"steps": [{"weight": 150}]}),
     "should be less than or equal to 100"),
    ("strategy other than BlueGreen", manifest(rollout={"strategy": "Canary"}),
     'Unsupported value: "Canary"'),
    ("reserved env var", manifest(server={"env": [{"name": "MODELSERVE_PORT", "value": "1"}]}),
     "server.env must not set MODELSERVE_* variables"),
    ("sample rate above 1", manifest(logging={"sampleRate": 1.5}), "should be less than or equal to 1"),
    ("unknown quality metric",
     manifest(rollout={"qualityGate": {"datasetUri": "https://d.example/h.csv", "labelColumn": "y",
                                       "metric": "precision", "threshold": 0.9}}),
     'Unsupported value: "precision"'),
    ("gateway without parents", manifest(rollout={"trafficRouting": {"gatewayAPI": {"parentRefs": []}}}),
     "should have at least 1 items"),
    ("zero rate limit", manifest(security={"rateLimit": {"requestsPerSecond": 0}}),
     "should be greater than 0"),
    # Tenant safety: what the operator cannot read, reserved names, and specs the API server would refuse
    # on the Deployment (each would otherwise be a 422 on every apply).
    ("dataset from the operator's disk", manifest(rollout={"qualityGate": dataset(TOKEN)}),
     "datasetUri must be an https:// or http:// URL"),
    ("dataset on s3", manifest(monitoring={"evaluation": dataset("s3://d/fresh.csv")}),
     "datasetUri must be an https:// or http:// URL"),
    ("dataset on a volume", manifest(rollout={"qualityGate": dataset("pvc://claim/h.csv")}),
     "datasetUri must be an https:// or http:// URL"),
    ("lower-case reserved env var", server_env("modelserve_api_keys_file"),
     "server.env must not set MODELSERVE_* variables (in any letter case)"),
    ("mixed-case reserved env var", server_env("ModelServe_Allow_Unverified_Pickle"),
     "server.env must not set MODELSERVE_* variables (in any letter case)"),
    ("loader env var", server_env("LD_PRELOAD"), "server.env must not set PYTHONPATH"),
    ("python path env var", server_env("PYTHONPATH"), "server.env must not set PYTHONPATH"),
    ("env values over the annotation budget",
     manifest(server={"env": [{"name": f"V{i}", "value": "x" * 32768} for i in range(3)]}),
     "server.env: names and values together must be at most 65536 bytes"),
    ("negative memory string", manifest(resources={"requests": {"memory": "-1"}}),
     "resource quantities must not be negative"),
    ("negative cpu integer", manifest(resources={"limits": {"cpu": -2}}),
     "resource quantities must not be negative"),
    ("resource name not qualified", manifest(resources={"limits": {"gpu": 1}}),
     "a resource name is cpu, memory, ephemeral-storage or an extended resource named <domain>/<name>"),
    ("resource in the kubernetes.io domain", manifest(resources={"limits": {"kubernetes.io/gpu": 1}}),
     "outside kubernetes.io"),
    ("fraction of a gpu", manifest(resources={"limits": {"nvidia.com/gpu": "500m"}}),
     "extended resources (names with a '/', e.g. nvidia.com/gpu) take whole numbers"),
    ("gpu requested without a limit", manifest(resources={"requests": {"nvidia.com/gpu": 1}}),
     "an extended resource (e.g. nvidia.com/gpu) in requests must be in limits with the same number"),
    ("gpu request differs from its limit",
     manifest(resources={"requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": "1"}}),
     "in requests must be in limits with the same number"),
    ("bad nodeSelector key", manifest(server={"nodeSelector": {"bad key!": "x"}}),
     "server.nodeSelector keys must be label keys"),
    ("bad nodeSelector value", manifest(server={"nodeSelector": {"pool": "not a value!"}}), "should match"),
    ("toleration Exists with a value",
     manifest(server={"tolerations": [{"operator": "Exists", "value": "x"}]}),
     "server.tolerations: value must be empty when operator is Exists"),
    ("tolerationSeconds without NoExecute",
     manifest(server={"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]}),
     "server.tolerations: tolerationSeconds needs effect NoExecute"),
    ("toleration key that is no label key", manifest(server={"tolerations": [{"key": "bad key!"}]}),
     "server.tolerations: key must be a label key"),
    ("toleration value that is no label value",
     manifest(server={"tolerations": [{"key": "pool", "value": "gpu a100"}]}),
     "server.tolerations: value must be a label value"),
    ("route hostname with a port",
     manifest(rollout={"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw"}],
                                                         "hostnames": ["iris.example:443"]}}}),
     "gatewayAPI.hostnames: each must be a lower-case DNS name"),
    ("analysis that judges no traffic", manifest(rollout={"analysis": {"minRequests": 0}}),
     "should be greater than or equal to 1"),
    # modelserve's limits: bodies are buffered whole, so their size is capped; deadlines are positive.
    ("body limit over 64 MiB", manifest(server={"maxBodyBytes": 64 * 1024 * 1024 + 1}),
     "should be less than or equal to 67108864"),
    ("rows per request below the operator's own batches", manifest(server={"maxRowsPerRequest": 255}),
     "should be greater than or equal to 256"),
    ("zero header deadline", manifest(server={"requestHeaderTimeoutSeconds": 0}), "should be greater than 0"),
    ("negative failed-key rate", manifest(security={"authFailureLimit": {"requestsPerSecond": -1}}),
     "should be greater than or equal to 0"),
    ("toleration of every taint", manifest(server={"tolerations": [{"operator": "Exists"}]}),
     "server.tolerations: every toleration must name a key"),
    ("quality gate over the row cap",
     manifest(rollout={"qualityGate": {**dataset("https://d/h.csv"), "maxRows": 1000000}}),
     "should be less than or equal to 100000"),
    ("shadow copying nothing", manifest(rollout={"shadow": {"percent": 0}}),
     "rollout.shadow.percent must be above 0"),
    ("shadow agreement over 1", manifest(rollout={"shadow": {"minAgreement": 1.5}}),
     "rollout.shadow.minAgreement must be between 0 and 1"),
    ("live evaluation without a data set or feedback",
     manifest(monitoring={"evaluation": {"metric": "accuracy", "threshold": 0.9}}),
     "monitoring.evaluation.datasetUri and labelColumn are required unless source is feedback"),
    ("feedback judged on roc_auc",
     manifest(monitoring={"evaluation": {"source": "feedback", "metric": "roc_auc", "threshold": 0.9}}),
     "monitoring.evaluation.metric: with source feedback use accuracy, f1, rmse or mae"),
    ("data set evaluated every 10 s",
     manifest(monitoring={"evaluation": {**dataset("https://d/f.csv"), "intervalSeconds": 10}}),
     "monitoring.evaluation.intervalSeconds must be at least 60 with source dataset"),
    ("drift reference the pods cannot fetch",
     manifest(monitoring={"drift": {"referenceUri": "file:///etc/passwd", "sha256": SHA}}),
     "monitoring.drift.referenceUri must be https://host/path, http://host/path or s3://bucket/key"),
    ("drift reference without a digest",
     manifest(monitoring={"drift": {"referenceUri": "https://d/ref.csv"}}), "sha256: Required value"),
    ("drift feature named twice",
     manifest(monitoring={"drift": {"referenceUri": "https://d/ref.csv", "sha256": SHA,
                                    "features": ["a", "a"]}}),
     "monitoring.drift.features must not name a feature twice"),
    ("more drift features than the pods export",
     manifest(monitoring={"drift": {"referenceUri": "https://d/ref.csv", "sha256": SHA,
                                    "features": [f"f{i}" for i in range(33)]}}),
     "must have at most 32 items"),
    ("route hostname that is no DNS name",
     manifest(rollout={"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw"}],
                                                         "hostnames": ["a b"]}}}),
     "must be a lower-case DNS name"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_model_deployment_is_rejected_with_a_clear_message(crd, namespace, body, message):
    result = create(crd, namespace, body)
    assert result.returncode != 0, f"accepted: {json.dumps(body)}"
    assert message in result.stderr, result.stderr


VALID_FULL = manifest(
    "iris-full",
    model={"uri": "s3://models/iris/v3/model.joblib", "format": "sklearn", "sha256": SHA, "version": "3",
           "schema": {"features": [{"name": "sepal_length", "min": 0}, {"name": "tag", "dtype": "string",
                                                                       "categories": ["a", 1]}]}},
    replicas=3,
    resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
    autoscaling={"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70},
    server={"workers": 2, "batching": {"maxBatchSize": 32, "maxLatencyMs": 2},
            "env": [{"name": "AWS_REGION", "value": "eu-west-1"}],
            "nodeSelector": {"pool": "ml", "node-role.example.com/gpu": ""},
            "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}},
    security={"apiKeySecretRef": {"name": "iris-keys"},
              "rateLimit": {"requestsPerSecond": 200, "burst": 400}},
    logging={"sampleRate": 0.1, "redactFields": ["email"]},
    rollout={"steps": [{"weight": 10, "pauseSeconds": 60}, {"weight": 50}], "autoPromote": False,
             "smoke": {"requests": [{"path": "/predict", "body": [{"sepal_length": 1.0}],
                                     "expectedOutputShape": [1]}]},
             "analysis": {"maxErrorRate": 0.01, "maxLatencyP99Ms": 250},
             "qualityGate": {"datasetUri": "https://d.example/h.csv", "labelColumn": "y", "metric": "f1",
                             "threshold": 0.8, "maxRegression": 0.02},
             "trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw"}], "hostnames": ["iris.example"],
                                               "headerMatch": {"name": "x-canary", "value": "1"}}}},
    monitoring={"evaluation": {"datasetUri": "https://d.example/fresh.csv", "labelColumn": "y",
                               "metric": "rmse", "threshold": 1.5, "rollbackOnFailure": True},
                "drift": {"referenceUri": "s3://models/iris/reference.csv", "sha256": SHA,
                          "features": ["sepal_length"], "threshold": 0.2, "windowRows": 500},
                "serviceMonitor": {"enabled": True}},
)  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        manifest("iris-min"),
        with_model(uri="https://models.example/m.pkl", allowUnverifiedPickle=True)
        | {"metadata": {"name": "pk"}},
        manifest("a" * 55),
        VALID_FULL,
        with_model(uri="gs://ml-models/iris/v3/model.onnx", credentials={"secretRef": {"name": "gcs"}})
        | {"metadata": {"name": "gcs"}},
        with_model(uri="azure://modelstore/models/iris/v3/MANIFEST", credentials={"secretRef": {"name": "a"}})
        | {"metadata": {"name": "azure"}},
        manifest(
            "gpu",
            resources={
                "requests": {"cpu": "1", "nvidia.com/gpu": 1},
                "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
            },
        ),
    ],
    ids=[
        "minimal",
        "unverified pickle allowed explicitly",
        "longest name",
        "every field",
        "gs with credentials",
        "azure with credentials",
        "gpu",
    ],
)
def test_valid_model_deployment_is_accepted(crd, namespace, body):
    result = create(crd, namespace, body)
    assert result.returncode == 0, result.stderr
    stored = crd.get_json("modeldeployment", body["metadata"]["name"], "-n", namespace)
    assert stored["spec"]["model"]["uri"] == body["spec"]["model"]["uri"]
    assert stored["spec"].get("resources") == body["spec"].get("resources")  # extended resources kept


def test_defaults_come_from_the_schema(crd, namespace):
    create(crd, namespace, manifest("defaults"))
    spec = crd.get_json("md", "defaults", "-n", namespace)["spec"]
    assert spec["replicas"] == 1
    assert spec["server"]["workers"] == 1 and spec["server"]["timeoutSeconds"] == 10
    assert spec["rollout"]["strategy"] == "BlueGreen" and spec["rollout"]["autoPromote"] is True
    assert spec["rollout"]["scaleDownDelaySeconds"] == 30 and spec["logging"]["sampleRate"] == 1
    assert spec["model"]["allowUnverifiedPickle"] is False


def test_unknown_fields_are_pruned_not_stored(crd, namespace):
    body = manifest("pruned")
    body["spec"]["modle"] = {"typo": True}
    result = crd.kubectl("create", "-n", namespace, "--validate=false", "-f", "-", input=json.dumps(body))
    assert result.returncode == 0
    assert "modle" not in crd.get_json("md", "pruned", "-n", namespace)["spec"]


def test_scale_subresource_changes_spec_replicas(crd, namespace):
    create(crd, namespace, manifest("scaled"))
    crd.kubectl("scale", "-n", namespace, "md/scaled", "--replicas=3")
    assert crd.get_json("md", "scaled", "-n", namespace)["spec"]["replicas"] == 3
    scale = json.loads(
        crd.kubectl(
            "get",
            "--raw",
            f"/apis/modeldeploy.io/v1alpha1/namespaces/{namespace}/modeldeployments/scaled/scale",
        ).stdout
    )
    assert scale["spec"]["replicas"] == 3


def test_short_names_and_printer_columns(crd, namespace):
    create(crd, namespace, manifest("columns"))
    for short in ("md", "mdep"):
        assert "columns" in crd.kubectl("get", short, "-n", namespace).stdout
    header = crd.kubectl("get", "md", "columns", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "PHASE", "ACTIVE", "REVISION", "TRAFFIC", "REPLICAS", "URL", "AGE"]


def test_status_accepts_rollout_control_written_by_people(crd, namespace):
    """`kubectl patch --subresource=status` is how promote/abort/retry reach the operator."""
    create(crd, namespace, manifest("control"))
    patch = {"status": {"rolloutControl": {"action": "promote", "requestId": "1700000000"}}}
    crd.kubectl("patch", "-n", namespace, "md/control", "--subresource=status", "--type=merge", "-p",
                json.dumps(patch))  # fmt: skip
    status = crd.get_json("md", "control", "-n", namespace)["status"]
    assert status["rolloutControl"] == {"action": "promote", "requestId": "1700000000"}
    bad = copy.deepcopy(patch)
    bad["status"]["rolloutControl"]["action"] = "yolo"
    result = crd.kubectl("patch", "-n", namespace, "md/control", "--subresource=status", "--type=merge", "-p",
                         json.dumps(bad), check=False)  # fmt: skip
    assert result.returncode != 0 and 'Unsupported value: "yolo"' in result.stderr


def test_checked_in_crd_is_what_crdgen_generates():
    from modeldeploy.crdgen import build_crd

    assert yaml.safe_load(CRD_FILE.read_text()) == build_crd()


@pytest.mark.parametrize("example", ["minimal", "full", "pvc", "baked"])
def test_builder_manifests_pass_api_server_validation(cluster, namespace, example):
    """Every core child the builders make is a valid object for this Kubernetes version (server dry run)."""
    from modeldeploy.api import Color, parse_spec
    from modeldeploy.desired.children import build_hpa, build_pdb, build_services
    from modeldeploy.desired.deployment import build_deployment
    from modeldeploy.desired.params import BuildParams
    from modeldeploy.desired.revision import revision_of

    examples = {
        "minimal": {"model": {"uri": ONNX}},
        "full": VALID_FULL["spec"],
        "pvc": {"model": {"uri": "pvc://store/iris/model.onnx"}, "replicas": 2},
        "baked": {"model": {"uri": "file:///opt/model.onnx"}, "server": {"image": "registry.local/iris:1"}},
    }
    meta = {"name": f"b-{example}", "namespace": namespace, "uid": "x"}
    body = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "metadata": meta,
            "spec": examples[example]}  # fmt: skip
    spec = parse_spec(body["spec"])
    params = BuildParams(default_image="registry.local/modelserve:0.1.0")
    children = [build_deployment(body, spec, c, revision_of(spec), spec.replicas, params) for c in Color]
    children += build_services(body, [Color.blue], Color.green)
    children += [c for c in (build_hpa(body, spec), build_pdb(body, spec, spec.replicas)) if c]
    for child in children:
        child["metadata"].pop("ownerReferences")  # the owner does not exist here
    documents = yaml.safe_dump_all(children)
    result = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=documents, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("serverside-applied") == len(children)


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("md.spec.model.sha256", "SHA-256 (hex) of the model file"),
        ("md.spec.rollout.steps.pauseSeconds", "wait for `promote`"),
        ("md.status.rolloutControl", "promote, abort or retry"),
    ],
)
def test_kubectl_explain_is_the_manual(crd, field, words):
    assert words in " ".join(crd.kubectl("explain", field).stdout.split())
