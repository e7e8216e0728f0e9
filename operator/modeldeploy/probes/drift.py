"""The live revision's drift figures, read from its Ready pods' /metrics.

Public: ``PodDrift``, ``parse_pod_drift(text, model, revision)`` and ``combine_drift(pods, at, revision)``
and ``drift_result(figures)`` (pure), ``drift_figures(client, target, model, revision)``.

Each pod exports the population stability index of its own window per feature
(``modelserve_feature_drift``) and the rows of that window per bin (``modelserve_drift_window_bin``). The
pods' indexes are averaged weighted by their rows (a pod that saw nothing adds nothing), and the worst
``MAX_DRIFT_SHOWN`` features, rounded, are what status shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from modeldeploy.api import MAX_DRIFT_SHOWN, CheckResult, DriftFeature, DriftStatus
from modeldeploy.probes.client import ProbeClient
from modeldeploy.probes.exposition import samples_of
from modeldeploy.probes.resolver import Target

DRIFT_SAMPLE = "modelserve_feature_drift"
BIN_SAMPLE = "modelserve_drift_window_bin"
PSI_DECIMALS = 4


@dataclass(frozen=True)
class PodDrift:
    """One pod's index per feature and the rows of its window (per feature; all features share them)."""

    psi: dict[str, float] = field(default_factory=dict)
    rows: int = 0


def parse_pod_drift(text: str, model: str, revision: str) -> PodDrift:
    """The drift series of `model` at `revision` in one pod's exposition (other families are skipped)."""
    psi: dict[str, float] = {}
    rows: dict[str, float] = {}
    for sample in samples_of(text, DRIFT_SAMPLE, BIN_SAMPLE):
        labels = sample.labels
        if labels.get("model") != model or labels.get("revision") != revision:
            continue
        feature = labels.get("feature", "")
        if sample.name == DRIFT_SAMPLE:
            psi[feature] = sample.value
        elif sample.name == BIN_SAMPLE:
            rows[feature] = rows.get(feature, 0.0) + sample.value
    return PodDrift(psi, int(max(rows.values(), default=0.0)))


def combine_drift(pods: Iterable[PodDrift], at: datetime, revision: str | None) -> DriftStatus:
    """Row-weighted index per feature over the pods; the worst features first, rounded."""
    pods = list(pods)
    total = sum(p.rows for p in pods)
    weighted: dict[str, float] = {}
    for pod in pods:
        for feature, value in pod.psi.items():
            weighted[feature] = weighted.get(feature, 0.0) + value * (pod.rows / total if total else 0.0)
    worst = sorted(weighted.items(), key=lambda item: (-item[1], item[0]))[:MAX_DRIFT_SHOWN]
    return DriftStatus(
        revision=revision,
        features=[DriftFeature(feature=name, psi=round(value, PSI_DECIMALS)) for name, value in worst],
        rows=total,
        pods=len(pods),
        checked_at=at,
    )


async def drift_figures(client: ProbeClient, target: Target, model: str, revision: str) -> DriftStatus:
    """The figures of the target's pods; an unreachable pod is left out (pods counts the ones read)."""
    urls = client.resolver.pod_urls(target)
    texts = await asyncio.gather(*(client.metrics_text(url) for url in urls))
    read = [parse_pod_drift(text, model, revision) for text in texts if text is not None]
    return combine_drift(read, datetime.now(UTC).replace(microsecond=0), revision)


def drift_result(figures: DriftStatus) -> CheckResult:
    """The figures as a check result (log line, and the worst index as the check's score metric)."""
    worst = figures.features[0] if figures.features else None
    found = f"worst {worst.feature} {worst.psi:g}" if worst else "no drift figures"
    return CheckResult(
        passed=None,
        message=f"{found} over {figures.rows} rows on {figures.pods} pod(s)",
        score=worst.psi if worst else None,
        requests=figures.rows,
        at=figures.checked_at,
    )
