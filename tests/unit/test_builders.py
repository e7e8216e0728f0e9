"""Manifest builders: golden manifests for example ModelDeployments, plus the rules each child must keep.

Regenerate the golden files after an intended change: UPDATE_GOLDEN=1 pytest tests/unit/test_builders.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api import Color, parse_spec
from modeldeploy.desired.children import (
    build_hpa,
    build_httproute,
    build_pdb,
    build_service_monitor,
    build_services,
)
from modeldeploy.desired.deployment import build_deployment, model_location
from modeldeploy.desired.naming import ANNOTATION_REVISION, LABEL_COLOR, LABEL_REVISION
from modeldeploy.desired.params import BuildParams
from modeldeploy.desired.revision import revision_of

GOLDEN = Path(__file__).parent / "golden"
PARAMS = BuildParams(default_image="registry.local/modelserve:0.1.0")
SHA = "4f2c" * 16

EXAMPLES: dict[str, dict[str, Any]] = {
    "minimal": {"model": {"uri": "https://models.example/iris/v3/model.onnx"}},
    "full": {
        "model": {
            "uri": "s3://models/iris/v3/model.joblib",
            "format": "sklearn",
            "sha256": SHA,
            "version": "3",
            "schema": {"features": [{"name": "sepal_length", "min": 0},
                                    {"name": "species_hint", "dtype": "string", "required": False}]},
        },
        "replicas": 3,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70},
        "server": {
            "image": "registry.local/custom-modelserve:2",
            "workers": 2,
            "timeoutSeconds": 5,
            "batching": {"maxBatchSize": 32, "maxLatencyMs": 2},
            "env": [{"name": "AWS_REGION", "value": "eu-west-1"}],
            "nodeSelector": {"pool": "ml"},
            "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "security": {"apiKeySecretRef": {"name": "iris-keys"}, "rateLimit": {"requestsPerSecond": 200}},
        "logging": {"sampleRate": 0.1, "redactFields": ["email", "ssn"]},
        "rollout": {
            "steps": [{"weight": 10, "pauseSeconds": 60}],
            "trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "public-gw", "namespace": "gw"}],
                                              "hostnames": ["iris.example"],
                                              "headerMatch": {"name": "x-candidate", "value": "yes"}}},
        },
        "monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    },
    "pvc": {"model": {"uri": "pvc://model-store/iris/v3/model.onnx", "format": "onnx"}, "replicas": 2},
    "baked": {"model": {"uri": "file:///opt/models/iris.onnx"}, "server": {"image": "registry.local/iris:3"}},
    "grpc": {"model": {"uri": "https://models.example/iris/v3/model.onnx"}, "server": {"grpc": True}},
    "drift": {
        "model": {"uri": "https://models.example/iris/v3/model.joblib", "sha256": SHA,
                  "credentials": {"secretRef": {"name": "store"}}},
        "monitoring": {"drift": {"referenceUri": "https://models.example/iris/reference.csv", "sha256": SHA,
                                 "features": ["sepal_length", "petal_width"], "windowRows": 500}},
    },
}  # fmt: skip


def md(name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": "0b1c-uid",
            "generation": 4,
            "labels": labels or {},
        },
        "spec": spec,
    }


def all_children(example: str) -> list[dict[str, Any]]:
    body = md("iris", EXAMPLES[example], {"team": "fraud", "argocd.argoproj.io/instance": "ml-apps",
                                          "app.kubernetes.io/instance": "ml-apps"})  # fmt: skip
    spec = parse_spec(body["spec"])
    revision = revision_of(spec)
    children = [build_deployment(body, spec, color, revision, spec.replicas, PARAMS) for color in Color]
    children += build_services(body, [Color.blue], Color.green, spec.server.grpc)
    optional = [
        build_hpa(body, spec),
        build_pdb(body, spec, spec.replicas),
        build_service_monitor(body, spec),
        build_httproute(body, spec, {"blue": 90, "green": 10}, Color.green),
    ]
    return children + [c for c in optional if c]


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_children_match_golden_manifests(example):
    rendered = yaml.safe_dump_all(all_children(example), sort_keys=True, width=110)
    path = GOLDEN / f"{example}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(rendered)
    assert path.exists(), f"missing {path}: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert rendered == path.read_text()


def _deployment(example: str, color: Color = Color.blue) -> dict[str, Any]:
    return next(
        c
        for c in all_children(example)
        if c["kind"] == "Deployment" and c["metadata"]["name"].endswith(color)
    )


def _container(deployment: dict[str, Any], name: str = "modelserve") -> dict[str, Any]:
    pod = deployment["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_every_container_runs_restricted(example):
    pod = _deployment(example)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod.get("initContainers", []):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        # The serving container's log holds request lines: never copied into status (modelserve writes its own
        # reason); the fetch container's log is only its own one-line failure.
        serving = container["name"] == "modelserve"
        assert container["terminationMessagePolicy"] == ("File" if serving else "FallbackToLogsOnError")
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


@pytest.mark.parametrize(
    ("example", "model_path", "init_args"),
    [
        ("minimal", "/models/model.onnx", ["modelserve", "fetch", "https://models.example/iris/v3/model.onnx",
                                           "/models/model.onnx"]),
        ("full", "/models/model.joblib", ["modelserve", "fetch", "s3://models/iris/v3/model.joblib",
                                          "/models/model.joblib", "--sha256", SHA]),
        ("pvc", "/models/iris/v3/model.onnx", None),
        ("baked", "/opt/models/iris.onnx", None),
    ],
)  # fmt: skip
def test_model_reaches_the_pod_by_fetch_pvc_or_image(example, model_path, init_args):
    deployment = _deployment(example)
    assert _env(_container(deployment))["MODELSERVE_MODEL_PATH"] == model_path
    init = deployment["spec"]["template"]["spec"].get("initContainers")
    assert (init[0]["command"] if init else None) == init_args


@pytest.mark.parametrize(
    ("uri", "model_path"),
    [
        ("https://models.example/iris/v3/iris.tar.gz", "/models/iris.tar.gz"),
        ("s3://models/iris/v3/iris.zip", "/models/iris.zip"),
        ("s3://models/iris/v3/MANIFEST", "/models/MANIFEST"),
    ],
    ids=["tar.gz archive", "zip archive", "MANIFEST directory"],
)
def test_a_multi_file_model_is_fetched_pinned_by_its_archive_or_manifest_digest(uri, model_path):
    spec = {"model": {"uri": uri, "format": "sklearn", "sha256": SHA}}
    parsed = parse_spec(spec)
    deployment = build_deployment(md("iris", spec), parsed, Color.blue, revision_of(parsed), 1, PARAMS)
    env = _env(_container(deployment))
    assert (env["MODELSERVE_MODEL_PATH"], env["MODELSERVE_MODEL_SHA256"]) == (model_path, SHA)
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"] == ["modelserve", "fetch", uri, model_path, "--sha256", SHA]


def test_pvc_model_is_mounted_read_only():
    pod = _deployment("pvc")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"] == {"claimName": "model-store", "readOnly": True}
    assert model_location(parse_spec(EXAMPLES["pvc"])).claim == "model-store"


def test_probes_hit_modelserve_health_paths_and_startup_covers_model_load():
    container = _container(_deployment("minimal"))
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # modelLoadTimeoutSeconds default
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


def test_server_env_carries_the_contract_settings():
    env = _env(_container(_deployment("full", Color.green)))
    assert env["MODELSERVE_MODEL_NAME"] == "iris"
    assert env["MODELSERVE_MODEL_VERSION"] == "3"
    assert env["MODELSERVE_MODEL_COLOR"] == "green"
    assert env["MODELSERVE_MODEL_REVISION"] == revision_of(parse_spec(EXAMPLES["full"]))
    assert env["MODELSERVE_MODEL_FORMAT"] == "sklearn" and env["MODELSERVE_MODEL_SHA256"] == SHA
    assert env["MODELSERVE_ALLOW_UNVERIFIED_PICKLE"] == "false"
    assert env["MODELSERVE_API_KEYS_FILE"] == "/etc/modelserve/keys/api-keys"
    assert (env["MODELSERVE_RATE_LIMIT_RPS"], env["MODELSERVE_RATE_LIMIT_BURST"]) == ("200", "400")
    assert env["MODELSERVE_LOG_REDACT_FIELDS"] == "email,ssn" and env["MODELSERVE_LOG_SAMPLE_RATE"] == "0.1"
    assert (env["MODELSERVE_MAX_BATCH_SIZE"], env["MODELSERVE_WORKERS"]) == ("32", "2")
    assert env["AWS_REGION"] == "eu-west-1"


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_each_colour_slot_tells_modelserve_the_colour_and_revision_it_echoes(example):
    """modelserve sends these two back as X-Model-Color and X-Model-Revision on every response."""
    revision = revision_of(parse_spec(EXAMPLES[example]))
    for color in Color:
        deployment = _deployment(example, color)
        env = _env(_container(deployment))
        pod = deployment["spec"]["template"]["metadata"]
        assert env["MODELSERVE_MODEL_COLOR"] == color.value == pod["labels"][LABEL_COLOR]
        assert env["MODELSERVE_MODEL_REVISION"] == revision == pod["labels"][LABEL_REVISION]
        assert pod["annotations"][ANNOTATION_REVISION] == revision
        assert all(0x21 <= ord(c) <= 0x7E for c in revision) and len(revision) <= 128  # a header value


def test_api_key_secret_is_mounted_where_modelserve_reads_it():
    pod = _deployment("full")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "api-keys")
    assert volume["secret"]["secretName"] == "iris-keys"
    assert volume["secret"]["items"] == [{"key": "api-keys", "path": "api-keys"}]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-keys")
    assert mount == {"name": "api-keys", "mountPath": "/etc/modelserve/keys", "readOnly": True}


def _pod_of(spec: dict[str, Any]) -> dict[str, Any]:
    body = md("iris", spec)
    parsed = parse_spec(spec)
    return build_deployment(body, parsed, Color.blue, revision_of(parsed), 1, PARAMS)["spec"]["template"][
        "spec"
    ]


def _secret_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}


S3_CREDENTIALS = {"uri": "s3://models/iris/model.onnx", "credentials": {"secretRef": {"name": "store"}}}
HTTPS_CREDENTIALS = {"uri": "https://h/iris/model.onnx", "credentials": {"secretRef": {"name": "store"}}}


@pytest.mark.parametrize(
    ("model", "wanted"),
    [
        (
            S3_CREDENTIALS,
            {
                "AWS_ACCESS_KEY_ID": {"name": "store", "key": "AWS_ACCESS_KEY_ID"},
                "AWS_SECRET_ACCESS_KEY": {"name": "store", "key": "AWS_SECRET_ACCESS_KEY"},
                "AWS_SESSION_TOKEN": {"name": "store", "key": "AWS_SESSION_TOKEN", "optional": True},
                "AWS_ENDPOINT_URL": {"name": "store", "key": "AWS_ENDPOINT_URL", "optional": True},
                "AWS_REGION": {"name": "store", "key": "AWS_REGION", "optional": True},
            },
        ),
        (
            HTTPS_CREDENTIALS,
            {"MODELSERVE_FETCH_AUTHORIZATION": {"name": "store", "key": "Authorization"}},
        ),
        (
            {"uri": "gs://models/iris/model.onnx", "credentials": {"secretRef": {"name": "store"}}},
            {
                "GOOGLE_APPLICATION_CREDENTIALS_JSON": {
                    "name": "store",
                    "key": "GOOGLE_APPLICATION_CREDENTIALS_JSON",
                },
                "STORAGE_EMULATOR_HOST": {"name": "store", "key": "STORAGE_EMULATOR_HOST", "optional": True},
            },
        ),
        (
            {"uri": "azure://store/models/iris/model.onnx", "credentials": {"secretRef": {"name": "store"}}},
            {
                key: {"name": "store", "key": key, "optional": True}
                for key in (
                    "AZURE_STORAGE_CONNECTION_STRING",
                    "AZURE_STORAGE_ACCOUNT_KEY",
                    "AZURE_STORAGE_SAS_TOKEN",
                    "AZURE_STORAGE_BLOB_ENDPOINT",
                )
            },
        ),
        ({"uri": "s3://models/iris/model.onnx"}, {}),
    ],
    ids=["s3 keys", "https header", "gs key", "azure keys", "no credentials"],
)
def test_credentials_reach_the_fetch_init_container_only_by_reference(model, wanted):
    pod = _pod_of({"model": model, "server": {"env": [{"name": "AWS_REGION", "value": "eu-west-1"}]}})
    fetch, serving = pod["initContainers"][0], pod["containers"][0]
    assert _secret_env(fetch) == wanted
    names = [e["name"] for e in fetch["env"]]
    assert len(names) == len(set(names)), names  # server.env's twin of a Secret key gives way
    source = {e["name"]: e.get("value") for e in fetch["env"]}.get("MODELSERVE_FETCH_CREDENTIALS_SOURCE")
    assert source == ("secret/store" if wanted else None)
    assert _secret_env(serving) == {}
    assert not any("store" in str(v) for v in pod["volumes"])  # no Secret volume either
    assert not any(e["name"].startswith("MODELSERVE_FETCH_") for e in serving["env"])


@pytest.mark.parametrize(
    ("extra", "account", "token"),
    [({}, None, False), ({"serviceAccountName": "irsa-reader"}, "irsa-reader", True)],
    ids=["default account, no token", "named account, its token"],
)
def test_pods_run_under_the_named_service_account_and_get_a_token_only_then(extra, account, token):
    pod = _pod_of({"model": {"uri": "s3://models/iris/model.onnx"}, **extra})
    assert pod.get("serviceAccountName") == account
    assert pod["automountServiceAccountToken"] is token


def test_naming_a_service_account_or_credentials_secret_is_a_new_revision():
    base = {"model": {"uri": "s3://models/iris/model.onnx"}}
    revisions = {
        revision_of(parse_spec(spec))
        for spec in (base, {**base, "serviceAccountName": "irsa"}, {"model": S3_CREDENTIALS})
    }
    assert len(revisions) == 3


def test_extended_resources_go_to_the_serving_container_only():
    resources = {"requests": {"cpu": "1"}, "limits": {"memory": "4Gi", "nvidia.com/gpu": 1}}
    spec = {"model": {"uri": "https://models.example/iris/v3/model.onnx"}, "resources": resources}
    body = md("iris", spec)
    parsed = parse_spec(spec)
    pod = build_deployment(body, parsed, Color.blue, revision_of(parsed), 1, PARAMS)["spec"]["template"][
        "spec"
    ]
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "1"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
    }
    assert pod["initContainers"][0]["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "4Gi"}}


@pytest.mark.parametrize(
    ("limits", "device"),
    [({"nvidia.com/gpu": 1}, "cuda"), ({"example.com/fpga": 1}, None), ({"memory": "1Gi"}, None)],
    ids=["nvidia gpu: cuda or fail", "other extended resource: auto", "no extended resource: auto"],
)
def test_a_pod_given_an_nvidia_gpu_tells_modelserve_to_use_cuda(limits, device):
    spec = {"model": {"uri": "https://models.example/iris/v3/model.onnx"}, "resources": {"limits": limits}}
    parsed = parse_spec(spec)
    deployment = build_deployment(md("iris", spec), parsed, Color.blue, revision_of(parsed), 1, PARAMS)
    env = {e["name"]: e.get("value") for e in _container(deployment)["env"]}
    assert env.get("MODELSERVE_DEVICE") == device


def test_inline_schema_is_projected_next_to_the_model():
    deployment = _deployment("full")
    template = deployment["spec"]["template"]
    manifest = yaml.safe_load(template["metadata"]["annotations"]["modeldeploy.io/input-schema"])
    assert manifest["features"][0] == {"name": "sepal_length", "dtype": "float", "required": True, "min": 0.0}
    mount = next(m for m in template["spec"]["containers"][0]["volumeMounts"] if m["name"] == "schema")
    assert mount["mountPath"] == "/models/model.joblib.schema.json"


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_children_are_owned_labelled_and_never_carry_gitops_tracking(example):
    for child in all_children(example):
        meta = child["metadata"]
        assert meta["ownerReferences"] == [
            {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "name": "iris",
             "uid": "0b1c-uid", "controller": True, "blockOwnerDeletion": True}
        ]  # fmt: skip
        keys = set(meta["labels"]) | set(meta.get("annotations", {}))
        if child["kind"] == "Deployment":
            keys |= set(child["spec"]["template"]["metadata"]["labels"])
        assert not any(k.startswith("argocd.argoproj.io/") or k == "app.kubernetes.io/instance" for k in keys)
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
        assert meta["labels"]["team"] == "fraud"  # ordinary labels do follow the parent
        assert len(meta["name"]) <= 63


def test_relabelling_the_parent_leaves_the_pod_template_alone():
    """A label edit on the ModelDeployment must not restart serving pods (it is not part of the revision)."""
    spec = parse_spec(EXAMPLES["minimal"])
    revision = revision_of(spec)
    before, after = (
        build_deployment(md("iris", EXAMPLES["minimal"], extra), spec, Color.blue, revision, 2, PARAMS)
        for extra in ({"team": "fraud"}, {"team": "risk", "cost-centre": "42"})
    )
    assert before["spec"]["template"] == after["spec"]["template"]
    assert after["metadata"]["labels"]["team"] == "risk"


def test_deployment_selector_is_per_colour_and_excludes_revision():
    deployment = _deployment("minimal", Color.green)
    assert deployment["spec"]["selector"] == {"matchLabels": {"modeldeploy.io/name": "iris",
                                                              "modeldeploy.io/color": "green"}}  # fmt: skip
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize(
    ("stable_colors", "stable_selector_color"), [([Color.blue], "blue"), ([Color.green], "green"),
                                                 ([Color.blue, Color.green], None)]
)  # fmt: skip
def test_stable_service_selects_one_colour_or_both(stable_colors, stable_selector_color):
    body = md("iris", EXAMPLES["minimal"])
    services = {s["metadata"]["name"]: s for s in build_services(body, stable_colors, Color.green)}
    assert set(services) == {"iris", "iris-preview", "iris-blue", "iris-green"}
    assert services["iris"]["spec"]["selector"].get("modeldeploy.io/color") == stable_selector_color
    assert services["iris-preview"]["spec"]["selector"]["modeldeploy.io/color"] == "green"
    assert services["iris-blue"]["spec"]["selector"]["modeldeploy.io/color"] == "blue"


@pytest.mark.parametrize(("grpc", "ports"), [(False, ["http"]), (True, ["http", "grpc"])])
def test_grpc_adds_a_port_to_the_pod_and_every_service_while_probes_stay_http(grpc, ports):
    body = md("iris", {**EXAMPLES["minimal"], "server": {"grpc": grpc}})
    spec = parse_spec(body["spec"])
    container = _container(build_deployment(body, spec, Color.blue, revision_of(spec), 1, PARAMS))
    assert [p["name"] for p in container["ports"]] == ports
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env.get("MODELSERVE_GRPC_PORT") == ("8081" if grpc else None)
    assert all("httpGet" in container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
    for service in build_services(body, [Color.blue], Color.green, spec.server.grpc):
        assert [p["name"] for p in service["spec"]["ports"]] == ports, service["metadata"]["name"]
    if grpc:
        assert {"name": "grpc", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
        grpc_port = service["spec"]["ports"][1]
        expected = (8081, "grpc", "kubernetes.io/h2c")
        assert (grpc_port["port"], grpc_port["targetPort"], grpc_port["appProtocol"]) == expected


def test_hpa_targets_the_model_deployment_scale_subresource():
    body = md("iris", EXAMPLES["full"])
    hpa = build_hpa(body, parse_spec(body["spec"]))
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "name": "iris"}
    assert hpa["spec"]["scaleTargetRef"] == target
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert build_hpa(body, parse_spec(EXAMPLES["minimal"])) is None


@pytest.mark.parametrize(("replicas", "wanted"), [(0, False), (1, False), (2, True), (10, True)])
def test_pdb_only_with_more_than_one_replica(replicas, wanted):
    body = md("iris", {**EXAMPLES["minimal"], "replicas": replicas})
    assert (build_pdb(body, parse_spec(body["spec"]), replicas) is not None) == wanted


def test_httproute_weights_and_header_match():
    body = md("iris", EXAMPLES["full"])
    route = build_httproute(body, parse_spec(body["spec"]), {"blue": 70, "green": 30}, Color.green)
    rules = route["spec"]["rules"]
    assert rules[0]["matches"] == [{"headers": [{"type": "Exact", "name": "x-candidate", "value": "yes"}]}]
    assert rules[0]["backendRefs"] == [{"kind": "Service", "name": "iris-green", "port": 80, "weight": 1}]
    assert [(b["name"], b["weight"]) for b in rules[1]["backendRefs"]] == [
        ("iris-blue", 70),
        ("iris-green", 30),
    ]
    assert route["spec"]["parentRefs"] == [{"name": "public-gw", "namespace": "gw"}]
    assert build_httproute(body, parse_spec(EXAMPLES["minimal"]), {"blue": 100}) is None


def test_service_monitor_scrapes_each_pod_once():
    body = md("iris", EXAMPLES["full"])
    monitor = build_service_monitor(body, parse_spec(body["spec"]))
    assert monitor["spec"]["selector"]["matchLabels"]["modeldeploy.io/service-role"] == "color"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    color_services = [s for s in build_services(body, [Color.blue], Color.green)
                      if s["metadata"]["labels"]["modeldeploy.io/service-role"] == "color"]  # fmt: skip
    assert len(color_services) == 2
    assert build_service_monitor(body, parse_spec(EXAMPLES["minimal"])) is None
