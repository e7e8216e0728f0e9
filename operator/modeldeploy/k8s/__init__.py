"""Kubernetes API I/O: the only package that talks to the API server (besides kopf's own watches)."""

from modeldeploy.k8s.client import ApiError, Kube, load_api_client, starts_pods
from modeldeploy.k8s.quantity import parse_quantity
from modeldeploy.k8s.resources import (
    CHILD_KINDS,
    DEPLOYMENT,
    HPA,
    HTTP_ROUTE,
    MODEL_DEPLOYMENT,
    OPTIONAL_CHILD_KINDS,
    PDB,
    POD,
    PVC,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    SERVICE_MONITOR,
    WATCHED_CHILD_KINDS,
    WATCHED_KINDS,
    Kind,
    kind_of,
)

__all__ = [
    "CHILD_KINDS",
    "DEPLOYMENT",
    "HPA",
    "HTTP_ROUTE",
    "MODEL_DEPLOYMENT",
    "OPTIONAL_CHILD_KINDS",
    "PDB",
    "POD",
    "PVC",
    "SECRET",
    "SERVICE",
    "SERVICE_ACCOUNT",
    "SERVICE_MONITOR",
    "WATCHED_CHILD_KINDS",
    "WATCHED_KINDS",
    "ApiError",
    "Kind",
    "Kube",
    "kind_of",
    "load_api_client",
    "parse_quantity",
    "starts_pods",
]
