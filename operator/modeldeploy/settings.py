"""Operator settings, read once from the environment (prefix MODELDEPLOY_)."""

from __future__ import annotations

import functools
import ipaddress
import json
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The pieces of the burst machinery that `disable` turns off, each replaced by the plain behaviour.
BurstPiece = Literal[
    "priority_gate",  # API connections and reconcile places handed out first come, first served
    "serial",  # passes of one ModelDeployment may run at once (and so none coalesce)
    "coalesce",  # every trigger runs its own pass (none joins one already waiting)
    "body_cache",  # a pass triggered by a child or a pod GETs its ModelDeployment
    "echoes",  # the watch echoes of our own writes are reconciled like any change
    "claims",  # the pass finishing a partial pass reads every name again
    "crd_presence",  # optional CRDs are looked up at every pass
    "packed_indexes",  # the child and pod indexes hold whole bodies as dicts
]


class OperatorSettings(BaseSettings):
    """Everything a platform team tunes when installing the operator (the Helm chart sets these)."""

    model_config = SettingsConfigDict(env_prefix="MODELDEPLOY_", extra="ignore")

    serving_image: str = Field(
        default="ghcr.io/modeldeploy/modelserve:0.1.0",
        description="Default modelserve image for ModelDeployments that do not override spec.server.image.",
    )
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to watch (comma list or JSON list); empty means all namespaces.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(default="text", description="json for log collectors.")
    metrics_port: int = Field(default=8000, ge=0, le=65535, description="Prometheus /metrics; 0 disables.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="Liveness /healthz; 0 disables.")
    health_host: str = "0.0.0.0"
    peering_name: str = Field(default="modeldeploy", description="kopf peering object shared by replicas.")
    priority: int = Field(default=100, description="Peering priority; the highest live replica is active.")
    peering_lifetime_seconds: int = Field(
        default=15, ge=3, description="How long a dead replica's peering record counts; bounds failover time."
    )
    standalone: bool = Field(default=False, description="Skip peering (single replica, development).")
    resync_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Periodic full reconcile of every ModelDeployment (drift safety net).",
    )
    child_event_coalesce_seconds: float = Field(
        default=0.5,
        ge=0,
        description="A child or pod change reconciles its ModelDeployment this long after the first change "
        "of a burst, so one pass sees them all; the pod that makes the candidate a rollout waits for fully "
        "Ready reconciles at once.",
    )
    rollout_tick_seconds: float = Field(default=2.0, gt=0, description="Rollout timer interval.")
    field_manager: str = Field(default="modeldeploy", description="Server-side apply field manager.")
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    watch_server_timeout_seconds: int = Field(default=300, gt=0, description="Server-side watch timeout.")
    api_workers: int = Field(default=16, ge=1, description="Threads for blocking Kubernetes client calls.")
    max_concurrent_reconciles: int = Field(
        default=48,  # sized by the 1,000-object burst (docs/benchmarks.md)
        ge=1,
        description="Reconcile passes in flight at once, a quarter kept for new ModelDeployments' first "
        "passes; bounds memory in bursts. Their API requests share api_workers connections by priority, so "
        "a burst's Deployments are written before its Services.",
    )
    heap_trim_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How often freed heap memory goes back to the OS (glibc malloc_trim); 0 disables.",
    )
    disable: Annotated[set[BurstPiece], NoDecode] = Field(
        default_factory=set,
        description="Benchmarking only: pieces of the burst machinery to turn off (comma list: "
        "priority_gate, serial, coalesce, body_cache, echoes, claims, crd_presence, packed_indexes), to "
        "measure what each pays (benchmarks/operator_scale.py --ablate). Never in production.",
    )
    tracemalloc_frames: int = Field(
        default=0,
        ge=0,
        description="Debugging only: trace Python allocations with this many frames; SIGUSR2 then writes "
        "a heap report to $TMPDIR/modeldeploy-heap-<pid>.txt. Slows the operator down.",
    )
    prometheus_url: str = Field(
        default="",
        description="Prometheus URL for rollout analysis (PromQL); empty reads the pods' /metrics directly.",
    )
    probe_timeout_seconds: float = Field(
        default=10.0, gt=0, description="HTTP timeout of one request to a model server."
    )
    check_budget_seconds: float = Field(
        default=60.0, gt=0, description="Longest one rollout check may take inside a reconcile pass."
    )
    cluster_domain: str = Field(
        default="cluster.local",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        max_length=253,
        description="The cluster's DNS domain, in the Service names the probes connect to.",
    )
    dataset_blocked_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Address ranges (CIDR, comma list or JSON list) the operator never fetches a data set "
        "from, besides loopback, link-local and unspecified addresses, which are always refused.",
    )
    probe_addresses: Annotated[dict[str, dict[str, list[str]]], NoDecode] = Field(
        default_factory=dict,
        description=(
            "Tests and demos only: fixed model-server URLs per ModelDeployment and colour, JSON "
            '{"<namespace>/<name>": {"blue": ["http://127.0.0.1:P"], "green": [...]}}; '
            "empty uses pod IPs and Service DNS."
        ),
    )

    @field_validator("namespaces", "dataset_blocked_networks", "disable", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        # A comma list is what people write in a Helm value or an env var; JSON lists also work.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("dataset_blocked_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            ipaddress.ip_network(text, strict=False)  # ValueError names the bad range
        return value

    @field_validator("probe_addresses", mode="before")
    @classmethod
    def _parse_probe_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


@functools.lru_cache(maxsize=1)
def get_settings() -> OperatorSettings:
    return OperatorSettings()
