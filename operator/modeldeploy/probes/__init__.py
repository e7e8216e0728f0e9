"""modeldeploy.probes: ALL HTTP from the operator to serving pods -- metrics snapshots and analysis (direct
from the pods' /metrics, or PromQL), smoke requests, the quality gate and the live evaluation.

Imports only ``modeldeploy.api`` (plus httpx, prometheus_client, scikit-learn for scores, pyarrow for
Parquet if installed). The decision maths is pure (``analysis_math``, ``scoring``); addresses come from a
pluggable ``AddressResolver`` so tests point the probes at local modelserve processes.

How the reconciler runs ``plan.check`` (one ``ProbeClient`` per operator, ``await client.aclose()`` at
cleanup)::

    client = ProbeClient(ClusterResolver(), prometheus_url=settings.prometheus_url or None)
    ctx = CheckContext(namespace, name, spec, plan.status, pod_ips={"blue": [...], "green": [...]},
                       api_key=key_or_None, baselines=saved_baselines)   # colour -> snapshot dict
    run = await run_check(client, plan.check, ctx)       # plan.check: a desired.rollout.Check (str enum)
    observed = observed.with_results({plan.check: run.result})
    save run.baselines (direct-mode analysis windows) wherever status keeps them
    stats, baselines = await color_stats(client, ctx)    # A/B view: status.colors
    run, stats, baselines = await analysis_with_stats(client, ctx)  # both at once, for analysis

Lower-level calls: ``ProbeClient.smoke/quality_gate/evaluate/analyse/snapshot`` with a ``Target``.
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
from modeldeploy.probes.checks import (
    CHECK_NAMES,
    CheckContext,
    CheckRun,
    analysis_with_stats,
    color_stats,
    run_check,
)
from modeldeploy.probes.client import AnalysisOutcome, ProbeClient
from modeldeploy.probes.dataset import DatasetError, LabelledData, load_dataset
from modeldeploy.probes.resolver import AddressResolver, ClusterResolver, StaticResolver, Target
from modeldeploy.probes.scoring import Predictions, judge_scores, score

__all__ = [
    "CHECK_NAMES",
    "AddressResolver",
    "AnalysisOutcome",
    "CheckContext",
    "CheckRun",
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
    "analysis_with_stats",
    "color_stats",
    "histogram_quantile",
    "judge_analysis",
    "judge_scores",
    "load_dataset",
    "parse_pod_counts",
    "run_check",
    "score",
    "window_stats",
]
