"""The operator's own Prometheus metrics (prefix modeldeploy_), served on settings.metrics_port."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "modeldeploy_reconciles_total",
    "Reconciles of ModelDeployments by trigger and result (changed, unchanged, invalid, waiting, error).",
    ["trigger", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_reconcile_duration_seconds",
    "Wall time of one reconcile, from observe to status patch.",
    ["trigger"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
ERRORS = Counter(
    "modeldeploy_reconcile_errors_total",
    "Reconciles that raised, by error class (ApiError, TemporaryError, ...).",
    ["error"],
    registry=REGISTRY,
)
API_WRITES = Counter(
    "modeldeploy_api_writes_total",
    "Writes the operator sent to the API server, by verb and resource (steady state should add none).",
    ["verb", "resource"],
    registry=REGISTRY,
)
DEPLOYMENTS_BY_PHASE = Gauge(
    "modeldeploy_modeldeployments",
    "ModelDeployments known to this operator replica, by status phase.",
    ["phase"],
    registry=REGISTRY,
)
ROLLOUTS = Counter(
    "modeldeploy_rollouts_total",
    "Finished rollouts by outcome (Promoted, Aborted, RolledBack, Superseded).",
    ["namespace", "name", "outcome"],
    registry=REGISTRY,
)
CHECKS = Counter(
    "modeldeploy_rollout_checks_total",
    "Rollout checks run through the probes, by check and result (passed, failed, inconclusive, error).",
    ["check", "result"],
    registry=REGISTRY,
)
CHECK_SECONDS = Histogram(
    "modeldeploy_rollout_check_duration_seconds",
    "Wall time of one rollout check (smoke, quality_gate, analysis, evaluation).",
    ["check"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
CHECK_SCORE = Gauge(
    "modeldeploy_check_score",
    "Latest value a rollout check measured (score, active_score, error_rate, latency_p99_ms, requests).",
    ["namespace", "name", "revision", "check", "metric"],
    registry=REGISTRY,
)
TRAFFIC_WEIGHT = Gauge(
    "modeldeploy_traffic_weight_percent",
    "Effective percent of traffic per colour (status.traffic).",
    ["namespace", "name", "color", "revision"],
    registry=REGISTRY,
)
KNOWN_PHASES = ("Pending", "Progressing", "Paused", "Healthy", "Degraded", "Failed", "Invalid")


def set_phase_counts(phases: Iterable[str]) -> None:
    """Replace the by-phase gauge from the current phases of all ModelDeployments."""
    tally = Tally(phases)
    for phase in set(KNOWN_PHASES) | set(tally):
        DEPLOYMENTS_BY_PHASE.labels(phase=phase).set(tally.get(phase, 0))


_TRAFFIC_SERIES: dict[tuple[str, str], set[tuple[str, str, str, str]]] = {}


def record_rollout(namespace: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """After a status write: count a rollout that just ended (a new history entry) and export the
    effective traffic split, dropping series of revisions no longer serving."""
    old_history, new_history = old.get("history") or [], new.get("history") or []
    if new_history and (not old_history or new_history[0] != old_history[0]):
        outcome = str(new_history[0].get("outcome", "Unknown"))
        ROLLOUTS.labels(namespace=namespace, name=name, outcome=outcome).inc()
    current = {
        (namespace, name, str(t.get("color")), str(t.get("revision") or "")): float(t.get("weight", 0))
        for t in new.get("traffic") or []
    }
    for labels in _TRAFFIC_SERIES.get((namespace, name), set()) - set(current):
        TRAFFIC_WEIGHT.remove(*labels)
    for labels, weight in current.items():
        TRAFFIC_WEIGHT.labels(*labels).set(weight)
    _TRAFFIC_SERIES[(namespace, name)] = set(current)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Start the /metrics HTTP server in a daemon thread (port 0 disables it)."""
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)
