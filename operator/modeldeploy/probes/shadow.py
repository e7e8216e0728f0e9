"""The shadow phase's counts: what the active colour's pods counted for one shadow phase, read from their
/metrics (the addresses of the ModelDeployment's own Ready pods, each read within the /metrics cap and the
probe deadline).

Public: ``parse_shadow_counts(text, shadow_id, model)`` (pure), ``shadow_figures(client, target, shadow_id,
model)``, ``shadow_result(figures)``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from modeldeploy.api import CheckResult, ShadowFigures
from modeldeploy.probes.client import ProbeClient
from modeldeploy.probes.exposition import samples_of
from modeldeploy.probes.resolver import Target

COPIES_SAMPLE = "modelserve_shadow_copies_total"
ROWS_SAMPLE = "modelserve_shadow_rows_total"


def parse_shadow_counts(text: str, shadow_id: str, model: str) -> dict[str, int]:
    """One pod's exposition -> outcome -> count for `shadow_id` (sent, dropped, error, agreed, disagreed)."""
    counts: dict[str, int] = {}
    for sample in samples_of(text, COPIES_SAMPLE, ROWS_SAMPLE):
        labels = sample.labels
        if labels.get("shadow") != shadow_id or labels.get("model") != model:
            continue
        outcome = labels.get("outcome", "")
        counts[outcome] = counts.get(outcome, 0) + int(sample.value)
    return counts


async def shadow_figures(client: ProbeClient, target: Target, shadow_id: str, model: str) -> ShadowFigures:
    """The counts summed over the target's pods; an unreachable pod adds nothing (its copies are lost)."""
    urls = client.resolver.pod_urls(target)
    texts = await asyncio.gather(*(client.metrics_text(url) for url in urls))
    total: dict[str, int] = {}
    pods = 0
    for text in texts:
        if text is None:
            continue
        pods += 1
        for outcome, count in parse_shadow_counts(text, shadow_id, model).items():
            total[outcome] = total.get(outcome, 0) + count
    agreed, disagreed = total.get("agreed", 0), total.get("disagreed", 0)
    compared = agreed + disagreed
    return ShadowFigures(
        id=shadow_id,
        compared=compared,
        agreed=agreed,
        agreement=agreed / compared if compared else None,
        sent=total.get("sent", 0),
        dropped=total.get("dropped", 0),
        errors=total.get("error", 0),
        pods=pods,
        at=datetime.now(UTC),
    )


def shadow_result(figures: ShadowFigures) -> CheckResult:
    """The figures as a check result (log line and check metrics); the gate itself judges the figures."""
    share = f" ({figures.agreement:.1%})" if figures.agreement is not None else ""
    return CheckResult(
        passed=None,
        message=f"{figures.agreed}/{figures.compared} rows agreed{share} over {figures.pods} active pods; "
        f"{figures.dropped} copies dropped, {figures.errors} without a usable answer",
        score=figures.agreement,
        requests=figures.compared,
        at=figures.at,
    )
