"""The serving Deployment of one colour slot, built from the spec (pure; plain dicts out).

Public: ``build_deployment(md, spec, color, revision, replicas, params)`` (md: the object as a dict, spec:
its parsed ``ModelDeploymentSpec``), ``model_location(spec)``,
``ModelLocation``, ``server_env(md, spec, color, revision, location)``, ``probes(spec, port)``,
``template_spec(spec, image)``, ``credentials_env(spec)``, ``drift_env(spec)``, ``CONTAINER_NAME``,
``FETCH_CONTAINER_NAME``, ``DRIFT_FETCH_CONTAINER_NAME``, ``DRIFT_REFERENCE_FILE``,
``KEYS_DIR``, ``SCHEMA_ANNOTATION``, ``TEMPLATE_ANNOTATION``.

How the model gets into the pod (``model_location``):
- https/http/s3/gs/azure: init container ``modelserve fetch URI /models/<basename> [--sha256 HEX]`` into an
  emptyDir;
- ``pvc://claim/path``: the claim mounted read-only at /models, the model at /models/<path>;
- ``file:///path``: baked into a custom image, used as is.
``model.credentials.secretRef``: the Secret's keys become environment variables of the init container only
(secretKeyRef; the serving container never sees them), and
``MODELSERVE_FETCH_CREDENTIALS_SOURCE=secret/<name>`` lets ``modelserve fetch`` name the Secret when the store
refuses it.
``monitoring.drift``: a second init container
``modelserve fetch --optional URI /drift/reference.csv --sha256 HEX`` into an emptyDir (with the model's
credentials when the reference is on the same kind of store); its failure exits 0, so the pod serves
without drift and the operator reads why from its termination message.
An inline ``model.schema`` travels as a pod annotation, projected by the downward API to
``<model path>.schema.json`` (the manifest modelserve looks for).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modeldeploy.api import MAX_DRIFT_FEATURES, ModelDeploymentSpec, SecretKeyRef, Server, SigningKeyRef
from modeldeploy.desired.children import GRPC_PORT
from modeldeploy.desired.naming import ANNOTATION_REVISION, deployment_name, labels, object_meta, selector
from modeldeploy.desired.params import BuildParams
from modeldeploy.desired.references import CREDENTIAL_KEYS
from modeldeploy.desired.revision import pod_fields
from modeldeploy.desired.shadow import SHADOW_CONFIG_KEY, shadow_config_name

CONTAINER_NAME = "modelserve"
FETCH_CONTAINER_NAME = "fetch-model"
DRIFT_FETCH_CONTAINER_NAME = "fetch-drift-reference"
DRIFT_DIR = "/drift"
DRIFT_REFERENCE_FILE = f"{DRIFT_DIR}/reference.csv"
MODELS_DIR = "/models"
KEYS_DIR = "/etc/modelserve/keys"
SHADOW_DIR = "/etc/modelserve/shadow"  # modelserve's MODELSERVE_SHADOW_CONFIG_FILE default lives here
KEYS_FILE = "api-keys"
SIGNING_DIR = "/etc/modelserve/feedback"
SIGNING_FILE = "signing-key"
TERMINATION_LOG = "/dev/termination-log"
NVIDIA_GPU = "nvidia.com/gpu"
SCHEMA_ANNOTATION = "modeldeploy.io/input-schema"
# The pod-relevant spec a Deployment was built from: an older revision can be re-applied unchanged.
TEMPLATE_ANNOTATION = "modeldeploy.io/template-spec"
SERVER_UID = 10001
COMPONENT = "model-server"


@dataclass(frozen=True)
class ModelLocation:
    kind: str  # fetch | pvc | file
    path: str  # MODELSERVE_MODEL_PATH inside the serving container
    claim: str | None = None


def model_location(spec: ModelDeploymentSpec) -> ModelLocation:
    uri = spec.model.uri
    parts = urlsplit(uri)
    if parts.scheme == "pvc":
        return ModelLocation("pvc", f"{MODELS_DIR}/{parts.path.lstrip('/')}", claim=parts.netloc)
    if parts.scheme == "file":
        return ModelLocation("file", parts.path)
    basename = parts.path.rstrip("/").rsplit("/", 1)[-1] or "model"
    return ModelLocation("fetch", f"{MODELS_DIR}/{basename}")


def _env(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return {"name": name, "value": str(value)}


def server_env(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    color: str,
    revision: str,
    location: ModelLocation,
    port: int,
) -> list[dict[str, str]]:
    model, server = spec.model, spec.server
    env = [
        _env("MODELSERVE_PORT", port),
        _env("MODELSERVE_MODEL_PATH", location.path),
        _env("MODELSERVE_MODEL_NAME", md["metadata"]["name"]),
        _env("MODELSERVE_MODEL_VERSION", model.version or revision),
        _env("MODELSERVE_MODEL_REVISION", revision),
        _env("MODELSERVE_MODEL_COLOR", color),
        _env("MODELSERVE_MODEL_FORMAT", model.format.value if model.format else ""),
        _env("MODELSERVE_MODEL_SHA256", model.sha256 or ""),
        _env("MODELSERVE_ALLOW_UNVERIFIED_PICKLE", model.allow_unverified_pickle),
        _env("MODELSERVE_WORKERS", server.workers),
        _env("MODELSERVE_TIMEOUT_SECONDS", server.timeout_seconds),
        _env("MODELSERVE_LOG_SAMPLE_RATE", spec.logging.sample_rate),
        _env("MODELSERVE_LOG_REDACT_FIELDS", ",".join(spec.logging.redact_fields)),
        _env("MODELSERVE_TERMINATION_MESSAGE_PATH", TERMINATION_LOG),
    ]
    if server.batching:
        env.append(_env("MODELSERVE_MAX_BATCH_SIZE", server.batching.max_batch_size))
        env.append(_env("MODELSERVE_MAX_BATCH_LATENCY_MS", server.batching.max_latency_ms))
    if server.grpc:
        env.append(_env("MODELSERVE_GRPC_PORT", GRPC_PORT))
    if server.max_body_bytes:
        env.append(_env("MODELSERVE_MAX_BODY_BYTES", server.max_body_bytes))
    if server.max_queue:
        env.append(_env("MODELSERVE_MAX_QUEUE", server.max_queue))
    env += _optional_env(
        ("MODELSERVE_MAX_ROWS", server.max_rows_per_request),
        ("MODELSERVE_MAX_CONNECTIONS", server.max_connections),
        ("MODELSERVE_HEADER_TIMEOUT_SECONDS", server.request_header_timeout_seconds),
        ("MODELSERVE_BODY_TIMEOUT_SECONDS", server.request_body_timeout_seconds),
        ("MODELSERVE_LOG_PAYLOADS", spec.logging.payloads or None),  # off is modelserve's default
    )
    security = spec.security
    if security and security.api_key_secret_ref:
        env.append(_env("MODELSERVE_API_KEYS_FILE", f"{KEYS_DIR}/{KEYS_FILE}"))
    if security and security.signing_key_secret_ref:
        env.append(_env("MODELSERVE_FEEDBACK_KEY_FILE", f"{SIGNING_DIR}/{SIGNING_FILE}"))
    if security and security.rate_limit:
        rate = security.rate_limit
        env.append(_env("MODELSERVE_RATE_LIMIT_RPS", rate.requests_per_second))
        env.append(
            _env("MODELSERVE_RATE_LIMIT_BURST", rate.burst or max(1, math.ceil(2 * rate.requests_per_second)))
        )
    if security and security.auth_failure_limit:
        failures = security.auth_failure_limit
        env.append(_env("MODELSERVE_AUTH_FAILURE_RPS", failures.requests_per_second))
        env += _optional_env(("MODELSERVE_AUTH_FAILURE_BURST", failures.burst))
    if spec.resources and NVIDIA_GPU in spec.resources.extended():
        env.append(_env("MODELSERVE_DEVICE", "cuda"))  # a pod given a GPU fails loudly if it cannot use it
    return env + drift_env(spec) + _user_env(spec)


def drift_env(spec: ModelDeploymentSpec) -> list[dict[str, str]]:
    """modelserve's drift settings: the fetched reference, the features (all when empty), the window."""
    drift = spec.monitoring.drift if spec.monitoring else None
    if drift is None:
        return []
    return [
        _env("MODELSERVE_DRIFT_REFERENCE_FILE", DRIFT_REFERENCE_FILE),
        *_optional_env(("MODELSERVE_DRIFT_FEATURES", ",".join(drift.features) or None)),  # unset: every one
        _env("MODELSERVE_DRIFT_WINDOW_ROWS", drift.window_rows),
        _env("MODELSERVE_DRIFT_MAX_FEATURES", MAX_DRIFT_FEATURES),
    ]


def _optional_env(*pairs: tuple[str, Any]) -> list[dict[str, str]]:
    """Settings the spec leaves unset stay unset: modelserve's defaults apply and the template keeps still."""
    return [_env(name, value) for name, value in pairs if value is not None]


def _user_env(spec: ModelDeploymentSpec) -> list[dict[str, str]]:
    return [
        {"name": e.name, "value": e.value} for e in spec.server.env if not e.name.startswith("MODELSERVE_")
    ]


def probes(spec: ModelDeploymentSpec, port: int) -> dict[str, dict[str, Any]]:
    """Startup waits up to modelLoadTimeoutSeconds for the model (loaded, warmed); then liveness rules."""
    period = 2

    def ready() -> dict[str, str]:  # a fresh dict per probe: manifests never share mutable parts
        return {"path": "/v2/health/ready", "port": "http", "scheme": "HTTP"}

    live = {"path": "/v2/health/live", "port": "http", "scheme": "HTTP"}
    return {
        "startupProbe": {
            "httpGet": ready(),
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": max(1, math.ceil(spec.server.model_load_timeout_seconds / period)),
        },
        "readinessProbe": {
            "httpGet": ready(),
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {"httpGet": live, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
    }


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": SERVER_UID,
        "runAsGroup": SERVER_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(spec: ModelDeploymentSpec, extended: bool = True) -> dict[str, Any]:
    if not spec.resources:
        return {}
    out = spec.resources.model_dump(by_alias=True, exclude_none=True, mode="json")
    lists = {
        kind: {k: str(v) for k, v in values.items() if extended or "/" not in k}
        for kind, values in out.items()
    }
    return {kind: values for kind, values in lists.items() if values}


def _schema_volume() -> dict[str, Any]:
    """The schema from the pod's own annotation (downward API): no ConfigMap to keep in step."""
    item = {"path": "schema.json", "fieldRef": {"fieldPath": f"metadata.annotations['{SCHEMA_ANNOTATION}']"}}
    return {"name": "schema", "downwardAPI": {"items": [item]}}


def _secret_file_volume(name: str, ref: SecretKeyRef | SigningKeyRef, path: str) -> dict[str, Any]:
    """One key of a Secret as one file, readable by the server's group only."""
    return {
        "name": name,
        "secret": {"secretName": ref.name, "items": [{"key": ref.key, "path": path}], "defaultMode": 0o440},
    }


def _volumes_and_mounts(
    spec: ModelDeploymentSpec, location: ModelLocation
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes, serving-container mounts and fetch-container mounts."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    fetch_mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if location.kind == "fetch":
        volumes.append({"name": "models", "emptyDir": {}})
        mounts.append({"name": "models", "mountPath": MODELS_DIR, "readOnly": True})
        fetch_mounts.append({"name": "models", "mountPath": MODELS_DIR})
    elif location.kind == "pvc":
        volumes.append(
            {"name": "models", "persistentVolumeClaim": {"claimName": location.claim, "readOnly": True}}
        )
        mounts.append({"name": "models", "mountPath": MODELS_DIR, "readOnly": True})
    if spec.monitoring is not None and spec.monitoring.drift is not None:
        volumes.append({"name": "drift", "emptyDir": {}})
        mounts.append({"name": "drift", "mountPath": DRIFT_DIR, "readOnly": True})
    if spec.model.schema_ is not None:
        volumes.append(_schema_volume())
        mounts.append(
            {
                "name": "schema",
                "mountPath": f"{location.path}.schema.json",
                "subPath": "schema.json",
                "readOnly": True,
            }
        )
    security = spec.security
    if security and security.api_key_secret_ref:
        volumes.append(_secret_file_volume("api-keys", security.api_key_secret_ref, KEYS_FILE))
        mounts.append({"name": "api-keys", "mountPath": KEYS_DIR, "readOnly": True})
    if security and security.signing_key_secret_ref:
        volumes.append(_secret_file_volume("signing-key", security.signing_key_secret_ref, SIGNING_FILE))
        mounts.append({"name": "signing-key", "mountPath": SIGNING_DIR, "readOnly": True})
    return volumes, mounts, fetch_mounts


def _fetch_container(
    spec: ModelDeploymentSpec,
    image: str,
    location: ModelLocation,
    mounts: list[dict[str, Any]],
    params: BuildParams,
) -> dict[str, Any]:
    args = ["modelserve", "fetch", spec.model.uri, location.path]
    if spec.model.sha256:
        args += ["--sha256", spec.model.sha256]
    container: dict[str, Any] = {
        "name": FETCH_CONTAINER_NAME,
        "image": image,
        "command": args,
        "env": _fetch_env(spec),
        "volumeMounts": mounts,
        "securityContext": _container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": _resources(spec, extended=False),  # a download needs no GPU; keep devices for serving
    }
    _set_pull_policy(container, spec, params)
    return container


def _drift_fetch_container(
    spec: ModelDeploymentSpec, image: str, uri: str, sha256: str, params: BuildParams
) -> dict[str, Any]:
    """`modelserve fetch --optional`: a reference that cannot be fetched is reported in this container's
    termination message (the operator's DriftMonitored condition) and the pod serves without drift."""
    container: dict[str, Any] = {
        "name": DRIFT_FETCH_CONTAINER_NAME,
        "image": image,
        "command": ["modelserve", "fetch", uri, DRIFT_REFERENCE_FILE, "--sha256", sha256, "--optional"],
        "env": _fetch_env(spec, with_credentials=_same_store(spec.model.uri, uri)),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "drift", "mountPath": DRIFT_DIR}],
        "securityContext": _container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",  # its log is only its own one-line outcome
        "resources": _resources(spec, extended=False),
    }
    _set_pull_policy(container, spec, params)
    return container


def _same_store(model_uri: str, reference_uri: str) -> bool:
    """The model's credentials fit a reference on the same kind of store (their keys are per scheme)."""

    def kind(uri: str) -> str:
        scheme = urlsplit(uri).scheme
        return scheme if scheme in ("s3", "gs", "azure") else "http"

    return kind(model_uri) == kind(reference_uri)


def _fetch_env(spec: ModelDeploymentSpec, with_credentials: bool = True) -> list[dict[str, Any]]:
    """The Secret's variables win over server.env's of the same name (a list keyed by name has no twins)."""
    secret = credentials_env(spec) if with_credentials else []
    taken = {e["name"] for e in secret}
    user = [e for e in _user_env(spec) if e["name"] not in taken]
    return [_env("MODELSERVE_TERMINATION_MESSAGE_PATH", TERMINATION_LOG), *user, *secret]


# Secret key -> the fetch's variable; the others keep their names (boto3 reads the AWS_* ones itself).
CREDENTIAL_ENV = {"Authorization": "MODELSERVE_FETCH_AUTHORIZATION"}


def credentials_env(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    """The init container's variables from the model-credentials Secret: required keys must be there (the
    operator checks before it writes), optional ones may be absent; the values never enter the manifest."""
    if spec.model.credentials is None:
        return []
    secret = spec.model.credentials.secret_ref.name
    required, optional = CREDENTIAL_KEYS[urlsplit(spec.model.uri).scheme]
    env: list[dict[str, Any]] = [_env("MODELSERVE_FETCH_CREDENTIALS_SOURCE", f"secret/{secret}")]
    for key in (*required, *optional):
        ref: dict[str, Any] = {"name": secret, "key": key}
        if key in optional:
            ref["optional"] = True
        env.append({"name": CREDENTIAL_ENV.get(key, key), "valueFrom": {"secretKeyRef": ref}})
    return env


def _set_pull_policy(container: dict[str, Any], spec: ModelDeploymentSpec, params: BuildParams) -> None:
    policy = spec.server.image_pull_policy or (None if spec.server.image else params.image_pull_policy)
    if policy:
        container["imagePullPolicy"] = policy


def template_spec(spec: ModelDeploymentSpec, image: str) -> str:
    fields = pod_fields(spec, exclude_defaults=False)
    return json.dumps({"spec": fields, "image": image}, sort_keys=True, separators=(",", ":"))


def build_deployment(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    color: str,
    revision: str,
    replicas: int,
    params: BuildParams,
) -> dict[str, Any]:
    name = md["metadata"]["name"]
    color = str(color)
    image = spec.server.image or params.default_image
    version = spec.model.version
    pod_labels = labels(md, COMPONENT, color=color, revision=revision, version=version, inherit=False)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(
            md,
            deployment_name(name, color),
            COMPONENT,
            color=color,
            revision=revision,
            version=version,
            annotations={ANNOTATION_REVISION: revision, TEMPLATE_ANNOTATION: template_spec(spec, image)},
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(name, color)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "revisionHistoryLimit": params.revision_history_limit,
            "progressDeadlineSeconds": spec.rollout.progress_deadline_seconds,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": _pod_annotations(spec, revision, params)},
                "spec": _pod_spec(md, spec, color, revision, image, params),
            },
        },
    }


def _pod_annotations(spec: ModelDeploymentSpec, revision: str, params: BuildParams) -> dict[str, str]:
    """The revision, Prometheus scrape hints, and the inline input schema (projected into the pod)."""
    annotations = {
        ANNOTATION_REVISION: revision,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(params.port),
        "prometheus.io/path": "/metrics",
    }
    if spec.model.schema_ is not None:
        annotations[SCHEMA_ANNOTATION] = json.dumps(spec.model.schema_.to_manifest(), sort_keys=True)
    return annotations


def _container_ports(spec: ModelDeploymentSpec, port: int) -> list[dict[str, Any]]:
    ports = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    if spec.server.grpc:
        ports.append({"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"})
    return ports


def _serving_container(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    color: str,
    revision: str,
    image: str,
    location: ModelLocation,
    mounts: list[dict[str, Any]],
    params: BuildParams,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "ports": _container_ports(spec, params.port),
        "env": server_env(md, spec, color, revision, location, params.port),
        "resources": _resources(spec),
        **probes(spec, params.port),
        "lifecycle": {"preStop": {"sleep": {"seconds": params.pre_stop_seconds}}},
        "volumeMounts": mounts,
        "securityContext": _container_security(),
        "terminationMessagePath": TERMINATION_LOG,
        # modelserve writes its own reason; a log tail would copy request lines into the status.
        "terminationMessagePolicy": "File",
    }
    _set_pull_policy(container, spec, params)
    return container


def _pod_spec(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    color: str,
    revision: str,
    image: str,
    params: BuildParams,
) -> dict[str, Any]:
    """The serving container (and, for a fetched model, the init container that fetches it), volumes,
    a non-root security context, spreading over nodes, and the scheduling fields of spec.server."""
    location = model_location(spec)
    volumes, mounts, fetch_mounts = _volumes_and_mounts(spec, location)
    shadow_volume, shadow_mount = _shadow_volume(md)
    volumes.append(shadow_volume)
    mounts.append(shadow_mount)
    pod_spec: dict[str, Any] = {
        # A token only under a ServiceAccount the namespace owner marked for model pods (IRSA, Workload ID).
        "automountServiceAccountToken": bool(spec.service_account_name),
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SERVER_UID,
            "runAsGroup": SERVER_UID,
            "fsGroup": SERVER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": params.termination_grace_seconds,
        "containers": [_serving_container(md, spec, color, revision, image, location, mounts, params)],
        "volumes": volumes,
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(md["metadata"]["name"], color)},
            }
        ],
    }
    init = _init_containers(spec, image, location, fetch_mounts, params)
    if init:
        pod_spec["initContainers"] = init
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    pod_spec.update(_scheduling_fields(spec.server))
    return pod_spec


def _shadow_volume(md: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The shadow-copy ConfigMap, always mounted (optional): switching shadow copies on or off must never
    change the pod template."""
    volume = {
        "name": "shadow",
        "configMap": {
            "name": shadow_config_name(md["metadata"]["name"]),
            "optional": True,
            "items": [{"key": SHADOW_CONFIG_KEY, "path": SHADOW_CONFIG_KEY}],
        },
    }
    return volume, {"name": "shadow", "mountPath": SHADOW_DIR, "readOnly": True}


def _init_containers(
    spec: ModelDeploymentSpec,
    image: str,
    location: ModelLocation,
    fetch_mounts: list[dict[str, Any]],
    params: BuildParams,
) -> list[dict[str, Any]]:
    """The model fetch (for a fetched model), then the optional drift-reference fetch."""
    init = []
    if location.kind == "fetch":
        init.append(_fetch_container(spec, image, location, fetch_mounts, params))
    drift = spec.monitoring.drift if spec.monitoring else None
    if drift is not None:
        init.append(_drift_fetch_container(spec, image, drift.reference_uri, drift.sha256, params))
    return init


def _scheduling_fields(server: Server) -> dict[str, Any]:
    """spec.server's node selector, tolerations, affinity and image pull secrets, only those set."""
    fields: dict[str, Any] = {}
    if server.node_selector:
        fields["nodeSelector"] = dict(server.node_selector)
    if server.tolerations:
        fields["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in server.tolerations]
    if server.affinity:
        fields["affinity"] = server.affinity
    if server.image_pull_secrets:
        fields["imagePullSecrets"] = [{"name": s.name} for s in server.image_pull_secrets]
    return fields
