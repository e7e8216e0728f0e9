"""The operator against the real control plane: a ModelDeployment becomes hardened, Ready children;
scale, edits, drift and deletion are all reconciled."""

from __future__ import annotations

import json

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


@pytest.fixture(scope="module")
def iris(cluster, namespace, operator):
    """The documented example, applied once and Ready (later tests change it in turn)."""
    kubectl_apply(cluster, model_deployment("iris", namespace))
    return wait_ready(cluster, namespace, "iris")


def _container(deployment: dict) -> dict:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "modelserve")


def _active_deployment(cluster, namespace: str, name: str = "iris") -> dict:
    md = get_md(cluster, namespace, name)
    color = (md.get("status") or {}).get("activeColor") or "blue"
    return get_obj(cluster, "deployment", namespace, f"{name}-{color}")


def test_example_becomes_ready_with_observed_generation(iris):
    status = iris["status"]
    assert status["observedGeneration"] == iris["metadata"]["generation"]
    assert condition(iris, "Ready")["status"] == "True"
    assert condition(iris, "Degraded")["status"] == "False"
    assert status["readyReplicas"] == 2
    assert status["url"].startswith("http://iris.")


def test_deployment_has_probes_limits_and_restricted_security_context(cluster, namespace, iris):
    deployment = _active_deployment(cluster, namespace)
    container = _container(deployment)
    assert container["readinessProbe"]["httpGet"]["path"] in ("/v2/health/ready", "/health")
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert (
        container["startupProbe"]["failureThreshold"] * container["startupProbe"].get("periodSeconds", 10)
        >= 60
    )
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    pod_security = deployment["spec"]["template"]["spec"].get("securityContext", {})
    assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
    seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}
    assert container["terminationMessagePolicy"] == "File"  # request lines in the log never reach status
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", "iris", True)
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"


def test_services_exist_for_stable_preview_and_each_colour(cluster, namespace, iris):
    for name in ("iris", "iris-preview", "iris-blue", "iris-green"):
        service = get_obj(cluster, "service", namespace, name)
        assert service is not None, name
        assert service["metadata"]["ownerReferences"][0]["name"] == "iris"


def test_kubectl_scale_sets_replicas_of_the_serving_deployment(cluster, namespace, iris):
    cluster.kubectl("scale", "modeldeployment/iris", "-n", namespace, "--replicas", "3")
    wait_for(lambda: _active_deployment(cluster, namespace)["spec"]["replicas"] == 3, timeout=30)
    md = wait_ready(cluster, namespace, "iris")
    assert md["status"]["readyReplicas"] == 3
    assert md["spec"]["replicas"] == 3


def test_spec_edit_is_rolled_into_the_children(cluster, namespace, iris):
    patch = {"spec": {"server": {"workers": 3}}}
    cluster.kubectl(
        "patch", "modeldeployment", "iris", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )

    def workers_env():
        for color in ("blue", "green"):
            deployment = get_obj(cluster, "deployment", namespace, f"iris-{color}")
            if not deployment or not deployment["spec"].get("replicas"):
                continue
            env = {e["name"]: e.get("value") for e in _container(deployment).get("env", [])}
            if env.get("MODELSERVE_WORKERS") == "3":
                return True
        return False

    wait_for(workers_env, timeout=60, what="MODELSERVE_WORKERS=3 on a serving Deployment")
    wait_ready(cluster, namespace, "iris", timeout=120)


def test_edited_child_is_restored(cluster, namespace, iris):
    wait_ready(cluster, namespace, "iris", timeout=120)
    name = _active_deployment(cluster, namespace)["metadata"]["name"]
    patch = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/resources/limits/memory", "value": "7Gi"}
    ]
    cluster.kubectl("patch", "deployment", name, "-n", namespace, "--type=json", "-p", json.dumps(patch))
    wait_for(
        lambda: (
            _container(get_obj(cluster, "deployment", namespace, name))["resources"]["limits"]["memory"]
            == "1Gi"
        ),
        timeout=20,
        what="edited Deployment restored",
    )


def test_deleted_children_are_recreated(cluster, namespace, iris):
    service_uid = get_obj(cluster, "service", namespace, "iris-preview")["metadata"]["uid"]
    cluster.kubectl("delete", "service", "iris-preview", "-n", namespace)
    wait_for(
        lambda: (
            (get_obj(cluster, "service", namespace, "iris-preview") or {}).get("metadata", {}).get("uid")
            not in (None, service_uid)
        ),
        timeout=20,
        what="deleted Service re-created",
    )
    name = _active_deployment(cluster, namespace)["metadata"]["name"]
    cluster.kubectl("delete", "deployment", name, "-n", namespace)
    wait_for(
        lambda: get_obj(cluster, "deployment", namespace, name), timeout=20, what="Deployment re-created"
    )
    wait_ready(cluster, namespace, "iris", timeout=120)


def _api_key_secret(name: str) -> tuple[dict, dict]:
    spec = {"security": {"apiKeySecretRef": {"name": f"{name}-keys"}}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-keys", "labels": {"modeldeploy.io/usage": "api-keys"}},
        "stringData": {"api-keys": "k1"},
    }
    return spec, secret


def _model_claim(name: str) -> tuple[dict, dict]:
    spec = {"model": {"uri": f"pvc://{name}-models/iris/model.onnx", "format": "onnx", "version": "1"}}
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{name}-models", "labels": {"modeldeploy.io/usage": "models"}},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    return spec, claim


def _volume_for(claim: dict, namespace: str) -> dict:
    """A PersistentVolume pre-bound to the claim, so the scheduler can place the pods."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{claim['metadata']['name']}"},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "capacity": {"storage": "1Gi"},
            "storageClassName": "",
            "hostPath": {"path": "/srv/models"},
            "claimRef": {"namespace": namespace, "name": claim["metadata"]["name"]},
        },
    }


# A spec the schema accepts but that cannot run until an object it names exists.
@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [("keyed", _api_key_secret, "SecretNotFound"), ("claimed", _model_claim, "PVCNotFound")],
    ids=["missing-api-key-secret", "missing-model-pvc"],
)
def test_missing_referenced_object_is_reported_then_picked_up(
    cluster, namespace, operator, name, make, reason
):
    spec, missing = make(name)
    kubectl_apply(cluster, model_deployment(name, namespace, **spec))

    def waiting_for_object():
        ready = condition(get_md(cluster, namespace, name), "Ready")
        return ready if ready.get("reason") == reason else None

    ready = wait_for(waiting_for_object, timeout=30, what=f"Ready=False reason={reason}")
    assert ready["status"] == "False" and missing["metadata"]["name"] in ready["message"]
    assert get_obj(cluster, "deployment", namespace, f"{name}-blue") is None
    if missing["kind"] == "PersistentVolumeClaim":
        kubectl_apply(cluster, _volume_for(missing, namespace))
    kubectl_apply(cluster, {**missing, "metadata": {**missing["metadata"], "namespace": namespace}})
    wait_ready(cluster, namespace, name, timeout=120)  # the TemporaryError backoff retries


def _unmarked(obj: dict) -> dict:
    labels = {k: v for k, v in obj["metadata"]["labels"].items() if k != "modeldeploy.io/usage"}
    return {**obj, "metadata": {**obj["metadata"], "labels": labels}}


# A Secret or claim the namespace owner has not marked for ModelDeployments is refused until marked.
@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [("unmarked-keys", _api_key_secret, "SecretNotMarked"), ("unmarked-claim", _model_claim, "PVCNotMarked")],
    ids=["unmarked-api-key-secret", "unmarked-model-pvc"],
)
def test_unmarked_referenced_object_is_refused_until_its_owner_marks_it(
    cluster, namespace, operator, name, make, reason
):
    spec, marked = make(name)
    if marked["kind"] == "PersistentVolumeClaim":
        kubectl_apply(cluster, _volume_for(marked, namespace))
    kubectl_apply(cluster, _unmarked(marked), namespace=namespace)
    kubectl_apply(cluster, model_deployment(name, namespace, **spec))

    def refused():
        ready = condition(get_md(cluster, namespace, name), "Ready")
        return ready if ready.get("reason") == reason else None

    ready = wait_for(refused, timeout=30, what=f"Ready=False reason={reason}")
    assert ready["status"] == "False" and get_obj(cluster, "deployment", namespace, f"{name}-blue") is None
    # The message carries the command that marks it; running it is all it takes.
    command = ready["message"].split("with: ", 1)[1].split()
    assert command[:2] == ["kubectl", "label"], ready["message"]
    cluster.kubectl(*command[1:])
    wait_ready(cluster, namespace, name, timeout=120)


def test_operator_exposes_its_metrics(operator, iris):
    text = operator.metrics()
    assert 'modeldeploy_reconciles_total{result="changed"' in text or "modeldeploy_reconciles_total{" in text
    assert "modeldeploy_reconcile_duration_seconds_bucket" in text
    assert 'modeldeploy_modeldeployments{phase="Healthy"}' in text


def test_deleting_the_modeldeployment_removes_its_children(cluster, namespace, operator):
    kubectl_apply(cluster, model_deployment("doomed", namespace, replicas=1))
    wait_ready(cluster, namespace, "doomed")
    cluster.kubectl("delete", "modeldeployment", "doomed", "-n", namespace, "--wait=true", "--timeout=60s")

    def children_left():
        out = cluster.kubectl(
            "get",
            "deployments,services,pods",
            "-n",
            namespace,
            "-l",
            "modeldeploy.io/name=doomed",
            "-o",
            "name",
        ).stdout.split()
        return out

    wait_for(lambda: not children_left(), timeout=90, what="children garbage-collected")


def test_operator_never_writes_the_spec(cluster, namespace, iris):
    md = json.loads(
        cluster.kubectl(
            "get", "modeldeployment", "iris", "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    spec_writers = {
        m["manager"] for m in md["metadata"]["managedFields"] if "f:spec" in m.get("fieldsV1", {})
    }
    assert spec_writers and all(manager.startswith("kubectl") for manager in spec_writers), spec_writers
    status_writers = {
        m["manager"] for m in md["metadata"]["managedFields"] if m.get("subresource") == "status"
    }
    assert status_writers, md["metadata"]["managedFields"]
