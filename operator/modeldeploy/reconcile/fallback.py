"""TEMPORARY stand-in for `modeldeploy.desired.build_children` / `compute_status` until they land.

Deliberately small: one active colour (blue), the Services, HPA and PDB; status from the Deployment and
its pods. Delete this module once `desired` provides both functions (desired_port then uses them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from modeldeploy import api
from modeldeploy.desired import naming
from modeldeploy.desired.revision import revision_of
from modeldeploy.reconcile.observe import Observed

ACTIVE = "blue"
MODELS_DIR = "/models"
# Waiting reasons that mean the pod will not become Ready by waiting.
BAD_WAITING = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
               "InvalidImageName", "RunContainerError")  # fmt: skip


def _model_path(uri: str) -> str:
    return f"{MODELS_DIR}/{os.path.basename(uri.rstrip('/')) or 'model'}"


def _container(md: Mapping[str, Any], spec: api.ModelDeploymentSpec, params: Any, revision: str) -> dict:
    server = spec.server
    env = {
        "MODELSERVE_PORT": "8080",
        "MODELSERVE_MODEL_NAME": md["metadata"]["name"],
        "MODELSERVE_MODEL_VERSION": spec.model.version or "",
        "MODELSERVE_MODEL_REVISION": revision,
        "MODELSERVE_MODEL_COLOR": ACTIVE,
        "MODELSERVE_MODEL_PATH": _model_path(spec.model.uri),
        "MODELSERVE_WORKERS": str(server.workers),
    }
    container: dict[str, Any] = {
        "name": "modelserve",
        "image": server.image or params.default_image,
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "startupProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2,
                         "failureThreshold": 150},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": 10001, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
    }  # fmt: skip
    if spec.resources is not None:
        container["resources"] = spec.resources.model_dump(by_alias=True, exclude_none=True, mode="json")
    return container


def build_children(
    md: Mapping[str, Any], spec: api.ModelDeploymentSpec, observed: Observed, params: Any
) -> list[dict]:
    name = md["metadata"]["name"]
    revision = revision_of(spec, params)
    replicas = spec.replicas
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": naming.object_meta(md, naming.deployment_name(name, ACTIVE), "server", color=ACTIVE,
                                       revision=revision),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": naming.selector(name, ACTIVE)},
            "template": {
                "metadata": {"labels": naming.labels(md, "server", color=ACTIVE, revision=revision)},
                "spec": {
                    "containers": [_container(md, spec, params, revision)],
                    "volumes": [{"name": "models", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                },
            },
        },
    }  # fmt: skip
    children = [deployment]
    for role, svc_name in naming.service_names(name).items():
        color = ACTIVE if role in ("stable", "preview") else role
        children.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": naming.object_meta(md, svc_name, "server"),
                "spec": {
                    "selector": naming.selector(name, color),
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                },
            }
        )
    if spec.autoscaling is not None:
        auto = spec.autoscaling
        children.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": naming.object_meta(md, name, "autoscaler"),
                "spec": {
                    "scaleTargetRef": {"apiVersion": api.API_VERSION, "kind": api.KIND, "name": name},
                    "minReplicas": auto.min_replicas,
                    "maxReplicas": auto.max_replicas,
                },
            }
        )
    if replicas > 1:
        children.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": naming.object_meta(md, name, "server"),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": naming.selector(name)}},
            }
        )
    return children


def _pod_problem(pods: list[dict]) -> tuple[str, str] | None:
    """(reason, message) of the first pod that will not get Ready by itself, quoting the cause."""
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        statuses = (pod.get("status") or {}).get("initContainerStatuses", []) + (pod.get("status") or {}).get(
            "containerStatuses", []
        )
        for cs in statuses:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            last = (cs.get("lastState") or {}).get("terminated") or {}
            terminated = (cs.get("state") or {}).get("terminated") or {}
            if last.get("reason") == "OOMKilled" or terminated.get("reason") == "OOMKilled":
                return (
                    "OOMKilled",
                    f"pod {pod_name} container {cs['name']} was OOM-killed (raise resources.limits.memory)",
                )
            if waiting.get("reason") in BAD_WAITING:
                said = (last.get("message") or waiting.get("message") or "").strip()
                detail = f": {said}" if said else ""
                return waiting["reason"], f"pod {pod_name} container {cs['name']} {waiting['reason']}{detail}"
    return None


def compute_status(
    md: Mapping[str, Any], spec: api.ModelDeploymentSpec, observed: Observed
) -> dict[str, Any]:
    name, namespace = md["metadata"]["name"], md["metadata"]["namespace"]
    generation = md["metadata"].get("generation")
    deployment = observed.children.get(("Deployment", naming.deployment_name(name, ACTIVE))) or {}
    dstatus = deployment.get("status") or {}
    ready = dstatus.get("readyReplicas", 0) or 0
    current = (
        dstatus.get("observedGeneration") == deployment.get("metadata", {}).get("generation")
        and (dstatus.get("updatedReplicas", 0) or 0) >= spec.replicas
    )
    problem = _pod_problem(observed.pods)
    is_ready = current and ready >= spec.replicas
    phase = ("Degraded" if ready else "Failed") if problem else ("Healthy" if is_ready else "Progressing")

    def cond(ctype: str, status: bool, reason: str, message: str) -> dict:
        return {"type": ctype, "status": "True" if status else "False", "reason": reason, "message": message,
                "observedGeneration": generation, "lastTransitionTime": _now()}  # fmt: skip

    conditions = [
        cond("Ready", is_ready, "AllReplicasReady" if is_ready else "ReplicasNotReady",
             f"{ready}/{spec.replicas} replicas ready"),
        cond("Progressing", not is_ready and not problem, "Deploying" if not is_ready else "Complete",
             "waiting for replicas" if not is_ready else "rollout complete"),
        cond("Degraded", problem is not None, problem[0] if problem else "AsExpected",
             problem[1] if problem else "no failing pods"),
    ]  # fmt: skip
    previous = dict(md.get("status") or {})
    status = {k: v for k, v in previous.items() if k in ("rolloutControl",)}
    status.update(
        observedGeneration=generation,
        phase=phase,
        conditions=conditions,
        replicas=spec.replicas,
        readyReplicas=ready,
        selector=",".join(f"{k}={v}" for k, v in naming.selector(name).items()),
        url=f"http://{name}.{namespace}.svc",
        activeColor=ACTIVE,
        activeRevision=deployment.get("metadata", {}).get("labels", {}).get(naming.LABEL_REVISION),
        trafficSummary=f"{ACTIVE}=100",
    )
    return status


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
