"""The operator's own Prometheus metrics (prefix modeldeploy_), served on settings.metrics_port."""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

MetricT = TypeVar("MetricT", bound=MetricWrapperBase)

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
    "Wall time of one rollout check (smoke, quality_gate, analysis, evaluation, shadow, drift).",
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
LIVE_EVALUATION_FAILING = Gauge(
    "modeldeploy_live_evaluation_failing",
    "1 while the live revision's latest evaluation (data set or late labels) failed its threshold.",
    ["namespace", "name", "revision"],
    registry=REGISTRY,
)
DRIFT_DETECTED = Gauge(
    "modeldeploy_drift_detected",
    "1 while the live revision's worst feature is above spec.monitoring.drift.threshold (status.drift).",
    ["namespace", "name", "revision"],
    registry=REGISTRY,
)
KNOWN_PHASES = ("Pending", "Progressing", "Paused", "Healthy", "Degraded", "Failed")


def set_phase_counts(phases: Iterable[str]) -> None:
    """Replace the by-phase gauge from the current phases of all ModelDeployments."""
    tally = Tally(phases)
    for phase in set(KNOWN_PHASES) | set(tally):
        DEPLOYMENTS_BY_PHASE.labels(phase=phase).set(tally.get(phase, 0))


Series = tuple[MetricWrapperBase, tuple[str, ...]]  # a metric and the values of its labels
# The series labelled with one ModelDeployment, by (namespace, name): removed when it is deleted.
_SERIES: dict[tuple[str, str], set[Series]] = {}


def _series(metric: MetricT, namespace: str, name: str, *labels: str) -> MetricT:
    """`metric`'s child for one ModelDeployment (labels after namespace and name), remembered for forget."""
    values = (namespace, name, *labels)
    _SERIES.setdefault((namespace, name), set()).add((metric, values))
    return metric.labels(*values)


def _remove(namespace: str, name: str, series: Iterable[Series]) -> None:
    known = _SERIES.get((namespace, name), set())
    for metric, values in series:
        with contextlib.suppress(KeyError):  # already gone
            metric.remove(*values)
        known.discard((metric, values))
    if not known:
        _SERIES.pop((namespace, name), None)


def record_rollout(namespace: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """After a status write: count a rollout that just ended (a new history entry) and export the
    effective traffic split, dropping series of revisions no longer serving."""
    old_history, new_history = old.get("history") or [], new.get("history") or []
    if new_history and (not old_history or new_history[0] != old_history[0]):
        outcome = str(new_history[0].get("outcome", "Unknown"))
        _series(ROLLOUTS, namespace, name, outcome).inc()
    current = {
        (str(t.get("color")), str(t.get("revision") or "")): float(t.get("weight", 0))
        for t in new.get("traffic") or []
    }
    stale = [
        (metric, values)
        for metric, values in _SERIES.get((namespace, name), set())
        if metric is TRAFFIC_WEIGHT and values[2:] not in current
    ]
    _remove(namespace, name, stale)
    for (color, revision), weight in current.items():
        _series(TRAFFIC_WEIGHT, namespace, name, color, revision).set(weight)
    _export_live_evaluation(namespace, name, new)
    _export_drift(namespace, name, new)


def _export_live_evaluation(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """One series for the serving revision: 1 while its latest evaluation verdict is a failure."""
    active = str(status.get("activeRevision") or "")
    evaluation = status.get("evaluation") or {}
    failing = bool(
        active
        and evaluation.get("revision") == active
        and (evaluation.get("result") or {}).get("passed") is False
    )
    stale = [
        (metric, values)
        for metric, values in _SERIES.get((namespace, name), set())
        if metric is LIVE_EVALUATION_FAILING and values[2] != active
    ]
    _remove(namespace, name, stale)
    if active and evaluation:
        _series(LIVE_EVALUATION_FAILING, namespace, name, active).set(1 if failing else 0)


def _export_drift(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """One series for the revision whose drift status has: 1 while it drifts (the alert's input)."""
    drift = status.get("drift") or {}
    revision = str(drift.get("revision") or "")
    stale = [
        (metric, values)
        for metric, values in _SERIES.get((namespace, name), set())
        if metric is DRIFT_DETECTED and values[2] != revision
    ]
    _remove(namespace, name, stale)
    if revision:
        _series(DRIFT_DETECTED, namespace, name, revision).set(1 if drift.get("drifting") else 0)


def set_check_score(namespace: str, name: str, revision: str, check: str, metric: str, value: float) -> None:
    """The latest value a rollout check measured for one ModelDeployment's revision."""
    _series(CHECK_SCORE, namespace, name, revision, check, metric).set(value)


def forget(namespace: str, name: str) -> None:
    """Remove every series of a deleted ModelDeployment (traffic, check scores, rollout counts)."""
    _remove(namespace, name, list(_SERIES.get((namespace, name), ())))


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Start the /metrics HTTP server in a daemon thread (port 0 disables it)."""
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)
