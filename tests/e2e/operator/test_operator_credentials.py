"""Credentials for a private model store against the real control plane: the Secret's keys reach the fetch
init container only (by reference), the pods run under a marked ServiceAccount with its token, and an
unmarked ServiceAccount or a Secret missing a key is refused, naming the key, while what serves keeps
serving."""

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

SECRET_VALUE = "wJalrXUtnFEMI-not-a-real-key"
S3_MODEL = {"uri": "s3://private-models/iris/v3/model.onnx", "format": "onnx", "version": "3"}


def _labelled(kind: str, name: str, usage: str | None, **fields) -> dict:
    labels = {"modeldeploy.io/usage": usage} if usage else {}
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "labels": labels}, **fields}


def _store_secret(name: str, **keys: str) -> dict:
    return _labelled("Secret", name, "model-credentials", stringData=keys)


def _pod_spec(cluster, namespace: str, name: str) -> dict:
    color = (get_md(cluster, namespace, name).get("status") or {}).get("activeColor") or "blue"
    return get_obj(cluster, "deployment", namespace, f"{name}-{color}")["spec"]["template"]["spec"]


def _refused_with(cluster, namespace: str, name: str, reason: str) -> dict:
    def refused():
        degraded = condition(get_md(cluster, namespace, name), "Degraded")
        return degraded if degraded.get("reason") == reason else None

    return wait_for(refused, timeout=60, what=f"Degraded reason={reason}")


def test_the_secrets_keys_reach_the_init_container_only_and_pods_run_under_the_marked_account(
    cluster, namespace, operator
):
    kubectl_apply(
        cluster,
        [
            _store_secret("iris-store", AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY=SECRET_VALUE),
            _labelled("ServiceAccount", "iris-reader", "model-pods"),
        ],
        namespace=namespace,
    )
    model = {**S3_MODEL, "credentials": {"secretRef": {"name": "iris-store"}}}
    kubectl_apply(
        cluster, model_deployment("private", namespace, model=model, serviceAccountName="iris-reader")
    )
    md = wait_ready(cluster, namespace, "private", timeout=120)
    pod = _pod_spec(cluster, namespace, "private")
    fetch, serving = pod["initContainers"][0], pod["containers"][0]
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in fetch["env"] if "valueFrom" in e}
    assert from_secret["AWS_ACCESS_KEY_ID"] == {"name": "iris-store", "key": "AWS_ACCESS_KEY_ID"}
    assert from_secret["AWS_SESSION_TOKEN"]["optional"] is True
    assert {"name": "MODELSERVE_FETCH_CREDENTIALS_SOURCE", "value": "secret/iris-store"} in fetch["env"]
    assert not any("valueFrom" in e or e["name"].startswith("AWS_") for e in serving["env"])
    assert "iris-store" not in json.dumps(serving) and "iris-store" not in json.dumps(pod["volumes"])
    assert pod["serviceAccountName"] == "iris-reader" and pod["automountServiceAccountToken"] is True
    # The pods the ReplicaSet made carry the same split, and the value is nowhere but in the Secret.
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", namespace, "-l", "modeldeploy.io/name=private", "-o", "json"
        ).stdout
    )["items"]
    assert pods and all(p["spec"]["serviceAccountName"] == "iris-reader" for p in pods)
    for live in pods:
        assert not any("valueFrom" in e for c in live["spec"]["containers"] for e in c.get("env", []))
    assert SECRET_VALUE not in json.dumps(pods) + json.dumps(md)
    assert get_obj(cluster, "serviceaccount", namespace, "iris-reader")["metadata"]["labels"] == {
        "modeldeploy.io/usage": "model-pods"
    }  # never edited by the operator


def test_an_unmarked_service_account_is_refused_and_what_serves_keeps_serving(cluster, namespace, operator):
    kubectl_apply(cluster, _labelled("ServiceAccount", "admin-like", None), namespace=namespace)
    kubectl_apply(cluster, model_deployment("guarded", namespace, replicas=1))
    wait_ready(cluster, namespace, "guarded", timeout=120)
    before = get_obj(cluster, "deployment", namespace, "guarded-blue")
    kubectl_apply(
        cluster, model_deployment("guarded", namespace, replicas=1, serviceAccountName="admin-like")
    )
    degraded = _refused_with(cluster, namespace, "guarded", "ServiceAccountNotMarked")
    assert "kubectl label serviceaccount admin-like" in degraded["message"]
    assert "modeldeploy.io/usage=model-pods" in degraded["message"]
    md = get_md(cluster, namespace, "guarded")
    assert condition(md, "Ready")["status"] == "True"
    after = get_obj(cluster, "deployment", namespace, "guarded-blue")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert "serviceAccountName" not in after["spec"]["template"]["spec"]
    command = degraded["message"].split("with: ", 1)[1].split(";")[0].split()
    cluster.kubectl(*command[1:])

    def candidate_under_the_account():
        colours = (get_obj(cluster, "deployment", namespace, f"guarded-{c}") for c in ("blue", "green"))
        specs = [d["spec"]["template"]["spec"] for d in colours if d]
        return any(s.get("serviceAccountName") == "admin-like" for s in specs)

    wait_for(candidate_under_the_account, timeout=120, what="a pod template under the marked account")


def test_a_secret_missing_a_key_is_refused_naming_the_key_never_its_value(cluster, namespace, operator):
    kubectl_apply(cluster, _store_secret("half-store", AWS_ACCESS_KEY_ID=SECRET_VALUE), namespace=namespace)
    model = {**S3_MODEL, "credentials": {"secretRef": {"name": "half-store"}}}
    kubectl_apply(cluster, model_deployment("half", namespace, replicas=1, model=model))
    degraded = _refused_with(cluster, namespace, "half", "CredentialsInvalid")
    assert "has no key AWS_SECRET_ACCESS_KEY" in degraded["message"]
    assert get_obj(cluster, "deployment", namespace, "half-blue") is None
    md = get_md(cluster, namespace, "half")
    assert SECRET_VALUE not in json.dumps(md["status"])
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert SECRET_VALUE not in events
    kubectl_apply(
        cluster,
        _store_secret("half-store", AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY=SECRET_VALUE),
        namespace=namespace,
    )
    wait_ready(cluster, namespace, "half", timeout=120)


def test_an_azure_secret_with_two_ways_to_sign_is_refused_then_its_key_reaches_the_init_container(
    cluster, namespace, operator
):
    two = _store_secret("az-store", AZURE_STORAGE_ACCOUNT_KEY=SECRET_VALUE, AZURE_STORAGE_SAS_TOKEN="sv=x")
    kubectl_apply(cluster, two, namespace=namespace)
    model = {"uri": "azure://modelstore/models/iris/v3/model.onnx", "format": "onnx",
             "credentials": {"secretRef": {"name": "az-store"}}}  # fmt: skip
    kubectl_apply(cluster, model_deployment("az", namespace, replicas=1, model=model))
    degraded = _refused_with(cluster, namespace, "az", "CredentialsInvalid")
    assert "has AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN together" in degraded["message"]
    assert SECRET_VALUE not in json.dumps(get_md(cluster, namespace, "az")["status"])
    drop_sas = '[{"op": "remove", "path": "/data/AZURE_STORAGE_SAS_TOKEN"}]'  # apply would keep the key
    cluster.kubectl("patch", "secret", "az-store", "-n", namespace, "--type=json", "-p", drop_sas)
    deployment = wait_for(
        lambda: get_obj(cluster, "deployment", namespace, "az-blue"), timeout=120, what="az-blue written"
    )
    fetch = deployment["spec"]["template"]["spec"]["initContainers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in fetch["env"] if "valueFrom" in e}
    assert refs["AZURE_STORAGE_ACCOUNT_KEY"] == "AZURE_STORAGE_ACCOUNT_KEY"
    assert SECRET_VALUE not in json.dumps(fetch)
