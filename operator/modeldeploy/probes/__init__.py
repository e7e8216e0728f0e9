"""modeldeploy.probes: ALL HTTP from the operator to serving pods -- metrics snapshots and analysis (direct
from the pods' /metrics, or PromQL), smoke requests, the quality gate and the live evaluation.

Imports only ``modeldeploy.api`` (plus httpx, prometheus_client, scikit-learn for scores). The decision
maths is pure (``analysis_math``, ``scoring``); addresses come from a pluggable ``AddressResolver`` so tests
point the probes at local modelserve processes.

How the reconciler calls it when ``plan.check`` is set (each method answers a ``CheckResult``)::

    probes = ProbeClient(ClusterResolver(), prometheus_url=settings.prometheus_url)
    candidate = Target(namespace, service=f"{name}-preview", color=state.color, pod_ips=ready_pod_ips)
    active = Target(namespace, service=f"{name}-{active_color}", color=active_color, pod_ips=...)
    smoke      -> await probes.smoke(candidate, spec.rollout.smoke, api_key)
    quality    -> await probes.quality_gate(candidate, spec.rollout.quality_gate, name, active, api_key)
    analysis   -> out = await probes.analyse(candidate, SeriesSelector(name, state.revision, state.color),
                                             spec.rollout.analysis, since=state.step_started_at,
                                             baseline=MetricsSnapshot.from_dict(saved) if saved else None)
                  result = out.result; keep out.baseline.to_dict() in status for the next pass
    evaluation -> await probes.evaluate(live, spec.monitoring.evaluation, name, api_key)
"""

from modeldeploy.probes.analysis_math import (
    MetricsSnapshot,
    PodCounts,
    SeriesSelector,
    WindowStats,
    histogram_quantile,
    judge_analysis,
    parse_pod_counts,
    window_stats,
)
from modeldeploy.probes.client import AnalysisOutcome, ProbeClient
from modeldeploy.probes.dataset import DatasetError, LabelledData, load_dataset
from modeldeploy.probes.resolver import AddressResolver, ClusterResolver, StaticResolver, Target
from modeldeploy.probes.scoring import Predictions, judge_scores, score

__all__ = [
    "AddressResolver",
    "AnalysisOutcome",
    "ClusterResolver",
    "DatasetError",
    "LabelledData",
    "MetricsSnapshot",
    "PodCounts",
    "Predictions",
    "ProbeClient",
    "SeriesSelector",
    "StaticResolver",
    "Target",
    "WindowStats",
    "histogram_quantile",
    "judge_analysis",
    "judge_scores",
    "load_dataset",
    "parse_pod_counts",
    "score",
    "window_stats",
]
