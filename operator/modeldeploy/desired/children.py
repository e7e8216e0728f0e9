"""Services, HPA, PDB, ServiceMonitor and HTTPRoute of a ModelDeployment (pure; plain dicts out).

Public: ``build_services(md, stable_colors, preview_color, grpc)``, ``build_hpa(md, spec)``,
``build_pdb(md, spec, replicas)``, ``build_service_monitor(md, spec)``,
``build_httproute(md, spec, weights, candidate_color)``, ``SERVICE_PORT``,
``GRPC_PORT``, ``LABEL_SERVICE_ROLE``.

Services: ``<name>`` (stable: the active colour, or both colours while Service-based steps run),
``<name>-preview`` (the candidate), ``<name>-blue`` and ``<name>-green`` (fixed colour, for routers that
split by weight and for the ServiceMonitor, which selects only these two so every pod is scraped once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modeldeploy.api import API_VERSION, KIND, Color, ModelDeploymentSpec
from modeldeploy.desired.naming import LABEL_NAME, object_meta, selector, service_names

SERVICE_PORT = 80
GRPC_PORT = 8081  # container and Service port of gRPC (spec.server.grpc); HTTP/2 without TLS
LABEL_SERVICE_ROLE = "modeldeploy.io/service-role"


def _service(
    md: Mapping[str, Any], name: str, role: str, pod_selector: dict[str, str], grpc: bool
) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
    ]
    if grpc:
        ports.append(
            {
                "name": "grpc",
                "port": GRPC_PORT,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }
        )
    meta = object_meta(md, name, "service")
    meta["labels"][LABEL_SERVICE_ROLE] = role
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": pod_selector,
            "ports": ports,
        },
    }


def build_services(
    md: Mapping[str, Any], stable_colors: Iterable[str], preview_color: str, grpc: bool = False
) -> list[dict[str, Any]]:
    """stable_colors: one colour (selector switch) or both (Service-based weighted steps); grpc: a `grpc`
    port beside `http` (spec.server.grpc)."""
    name = md["metadata"]["name"]
    names = service_names(name)
    colors = sorted({str(c) for c in stable_colors})
    stable_selector = selector(name, colors[0] if len(colors) == 1 else None)
    return [
        _service(md, names["stable"], "stable", stable_selector, grpc),
        _service(md, names["preview"], "preview", selector(name, str(preview_color)), grpc),
        *(_service(md, names[c.value], "color", selector(name, c.value), grpc) for c in Color),
    ]


def build_hpa(md: Mapping[str, Any], spec: ModelDeploymentSpec) -> dict[str, Any] | None:
    """autoscaling/v2 HPA on the ModelDeployment's scale subresource (it writes spec.replicas)."""
    scaling = spec.autoscaling
    if scaling is None:
        return None
    name = md["metadata"]["name"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(md, name, "autoscaler"),
        "spec": {
            "scaleTargetRef": {"apiVersion": md.get("apiVersion", API_VERSION), "kind": KIND, "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }


def build_pdb(md: Mapping[str, Any], spec: ModelDeploymentSpec, replicas: int) -> dict[str, Any] | None:
    """At most one serving pod evicted at a time, across both colours; none for a single replica."""
    if replicas <= 1:
        return None
    name = md["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(md, name, "disruption-budget"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {LABEL_NAME: name}}},
    }


def build_service_monitor(md: Mapping[str, Any], spec: ModelDeploymentSpec) -> dict[str, Any] | None:
    wanted = spec.monitoring.service_monitor if spec.monitoring else None
    if wanted is None or not wanted.enabled:
        return None
    name = md["metadata"]["name"]
    meta = object_meta(md, name, "metrics")
    meta["labels"].update(wanted.labels)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": {LABEL_NAME: name, LABEL_SERVICE_ROLE: "color"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": wanted.interval}],
        },
    }


def build_httproute(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    weights: Mapping[str, int],
    candidate_color: str | None = None,
) -> dict[str, Any] | None:
    """Gateway API mode: exact weights per colour Service; a header match pins users to the candidate."""
    routing = spec.rollout.traffic_routing
    gateway = routing.gateway_api if routing else None
    if gateway is None:
        return None
    name = md["metadata"]["name"]
    names = service_names(name)

    def backend(color: str, weight: int) -> dict[str, Any]:
        return {"kind": "Service", "name": names[color], "port": SERVICE_PORT, "weight": weight}

    rules: list[dict[str, Any]] = []
    if gateway.header_match and candidate_color:
        match = gateway.header_match
        rules.append(
            {
                "matches": [{"headers": [{"type": match.type, "name": match.name, "value": match.value}]}],
                "backendRefs": [backend(str(candidate_color), 1)],
            }
        )
    rules.append({"backendRefs": [backend(c.value, int(weights.get(c.value, 0))) for c in Color]})
    route_spec: dict[str, Any] = {
        "parentRefs": [p.model_dump(by_alias=True, exclude_none=True) for p in gateway.parent_refs],
        "rules": rules,
    }
    if gateway.hostnames:
        route_spec["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": object_meta(md, name, "route"),
        "spec": route_spec,
    }
