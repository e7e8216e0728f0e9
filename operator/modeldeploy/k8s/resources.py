"""The Kubernetes kinds the operator reads or writes, and how their URLs are formed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True
    # Watched (filtered by our managed-by label) into a kopf index, so observing it costs no request.
    watched: bool = False
    # Served by a CRD that may not be installed: a pass checks for the CRD before reading or writing it.
    optional: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]  # "" for the core group

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def prefix(self) -> str:
        # Core kinds live under /api/v1; every other group under /apis/<group>/<version>.
        return f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        parts = [self.prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


MODEL_DEPLOYMENT = Kind("modeldeploy.io/v1alpha1", "ModelDeployment", "modeldeployments")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments", watched=True)
SERVICE = Kind("v1", "Service", "services", watched=True)
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", watched=True)
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", watched=True)
SERVICE_MONITOR = Kind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", optional=True)
HTTP_ROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", optional=True)
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps", watched=True)  # the shadow phase's settings
POD = Kind("v1", "Pod", "pods", watched=True)  # serving pods: owned by ReplicaSets, labelled by us
SECRET = Kind("v1", "Secret", "secrets")
PVC = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
SERVICE_ACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts")
EVENT = Kind("v1", "Event", "events")
CRD = Kind(
    "apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False
)

# The one table of the kinds the operator creates as children of a ModelDeployment, in apply order; the
# watches, indexes, label selectors and CRD checks are all derived from it.
CHILD_KINDS: tuple[Kind, ...] = (CONFIG_MAP, DEPLOYMENT, SERVICE, HPA, PDB, SERVICE_MONITOR, HTTP_ROUTE)
WATCHED_CHILD_KINDS = tuple(kind for kind in CHILD_KINDS if kind.watched)
OPTIONAL_CHILD_KINDS = tuple(kind for kind in CHILD_KINDS if kind.optional)
WATCHED_KINDS = (*WATCHED_CHILD_KINDS, POD)
_BY_TYPE = {
    (k.api_version, k.kind): k for k in (*CHILD_KINDS, MODEL_DEPLOYMENT, POD, SECRET, PVC, EVENT, CRD)
}


def kind_of(manifest: dict) -> Kind:
    """The Kind of a manifest, from its apiVersion and kind (KeyError names an unknown type)."""
    try:
        return _BY_TYPE[(manifest["apiVersion"], manifest["kind"])]
    except KeyError:
        raise KeyError(f"unsupported kind {manifest.get('apiVersion')}/{manifest.get('kind')}") from None
