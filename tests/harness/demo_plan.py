"""What the demo deploys, as plain data: the chart's values, the in-cluster model store, the ModelDeployment
specs, and how to treat CRDs of ours that exist already. Pure functions; scripts/demo.py does the I/O."""

from __future__ import annotations

import base64
from collections.abc import Mapping

NAME = "iris"
STORE = "model-store"
# The real node has two cores for everything: no pod of the demo asks for more than this.
MAX_CPU_REQUEST = "50m"
OUR_CRDS = ("modeldeployments.modeldeploy.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"


def real_node_placement(node: str, taint: str) -> dict:
    """Pinned to the real node, tolerating its taint (nothing else lands there)."""
    return {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": taint, "operator": "Exists", "effect": "NoSchedule"}],
    }


def split_image(ref: str) -> tuple[str, str]:
    """`localhost/modeldeploy-operator:abc` -> repository and tag (a registry port is not a tag)."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(f"image {ref!r} needs an explicit tag")
    return repository, tag


def chart_values(
    *, operator_image: str, serving_image: str, namespace: str, node: str, taint: str, install_crds: bool
) -> dict:
    """One operator pod on the real node, watching only the demo namespace, images imported (never pulled)."""
    repository, tag = split_image(operator_image)
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "replicas": 1,
        "watchNamespaces": [namespace],
        "crds": {"install": install_crds},
        "operator": {"servingImage": serving_image, "rolloutTickSeconds": 1, "logFormat": "text"},
        "resources": {"requests": {"cpu": MAX_CPU_REQUEST, "memory": "160Mi"}, "limits": {"memory": "512Mi"}},
        **real_node_placement(node, taint),
    }


def model_store_manifests(
    *, namespace: str, files: Mapping[str, bytes], image: str, node: str, taint: str
) -> list:
    """busybox httpd serving `files` from a ConfigMap, behind Service `model-store` (port 80)."""
    labels = {"app.kubernetes.io/name": STORE}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": STORE, "namespace": namespace},
            "binaryData": {name: base64.b64encode(data).decode() for name, data in sorted(files.items())},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": STORE, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        **real_node_placement(node, taint),
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "terminationGracePeriodSeconds": 1,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "httpd",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["/bin/httpd", "-f", "-v", "-p", "8080", "-h", "/srv"],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                          "limits": {"memory": "32Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": False,
                                                "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "files", "mountPath": "/srv", "readOnly": True}],
                        }],
                        "volumes": [{"name": "files", "configMap": {"name": STORE}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": STORE, "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
    ]  # fmt: skip


def store_url(namespace: str, filename: str) -> str:
    return f"http://{STORE}.{namespace}.svc.cluster.local/{filename}"


def spec_for(*, version: str, namespace: str, sha256: str, node: str, taint: str) -> dict:
    """iris `version` from the model store, digest pinned; one 50% traffic step judged on real requests."""
    return {
        "model": {"uri": store_url(namespace, f"iris-v{version}.joblib"), "format": "sklearn",
                  "sha256": sha256,
                  "version": version},
        "replicas": 2,
        "resources": {"requests": {"cpu": MAX_CPU_REQUEST, "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "server": {"imagePullPolicy": "Never", **real_node_placement(node, taint)},
        "rollout": {
            "strategy": "BlueGreen",
            "autoPromote": True,
            "steps": [{"weight": 50, "pauseSeconds": 10}],
            "analysis": {"maxErrorRate": 0.05, "maxLatencyP99Ms": 1000, "minRequests": 5,
                         "intervalSeconds": 2},
            "qualityGate": {"datasetUri": store_url(namespace, "holdout.csv"), "labelColumn": "species",
                            "metric": "accuracy", "threshold": 0.8},
            "scaleDownDelaySeconds": 5,
        },
    }  # fmt: skip


def crd_plan(owners: Mapping[str, str | None], release: str) -> tuple[list[str], bool]:
    """Our CRDs that exist (name -> owning Helm release, None when none) -> (to adopt, install with chart).

    The chart installs the CRDs; ones applied outside Helm are adopted into this release (Helm refuses to
    overwrite objects it does not own). If another release owns them, that release keeps installing them."""
    if any(owner not in (None, release) for owner in owners.values()):
        return [], False
    return sorted(name for name, owner in owners.items() if owner is None), True


def adoption_patch(release: str, release_namespace: str) -> dict:
    """The labels and annotations by which Helm recognises an object as its release's."""
    return {
        "metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                HELM_RELEASE_ANNOTATION: release,
                "meta.helm.sh/release-namespace": release_namespace,
            },
        }
    }
