"""One call per ``plan.check``: picks the right colour, Service, revision and window from the status the
rollout step function wrote, runs the probe, and returns the ``CheckResult`` to feed back.

Public: ``CheckContext``, ``CheckRun``, ``run_check(client, check, ctx)``, ``color_stats(client, ctx)``,
``analysis_with_stats(client, ctx)``, ``CHECK_NAMES``.

Which model servers each check talks to:
- ``smoke`` and ``quality_gate``: the candidate through ``<name>-preview``; champion/challenger also asks
  the active colour through ``<name>-<activeColor>`` on the same rows;
- ``analysis``: the pods of ``rollout.color`` whose series carry ``rollout.revision``, since
  ``rollout.stepStartedAt`` (during steps the candidate; after promotion the promoted colour);
- ``evaluation``: the live model through ``<name>-<activeColor>`` (source dataset), or the ``/metrics`` of
  the active colour's pods (source feedback: the window sums of labels for the active revision).
- ``shadow``: the /metrics of the active colour's Ready pods (their counts of copies to the candidate).
- ``drift``: the /metrics of the active colour's Ready pods (their drift indexes for the active revision).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from modeldeploy.api import (
    Analysis,
    CheckResult,
    ColorStats,
    DriftStatus,
    EvaluationSource,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    RolloutState,
    ShadowFigures,
)
from modeldeploy.probes.analysis_math import MetricsSnapshot, SeriesSelector
from modeldeploy.probes.client import ProbeClient
from modeldeploy.probes.drift import drift_figures, drift_result
from modeldeploy.probes.resolver import Target
from modeldeploy.probes.shadow import shadow_figures, shadow_result

# == desired.rollout.Check values
CHECK_NAMES = ("smoke", "quality_gate", "analysis", "evaluation", "shadow", "drift")
_STATS_ONLY = Analysis(min_requests=0)


@dataclass(frozen=True)
class CheckContext:
    """What the reconciler observed. `baselines` are saved ``MetricsSnapshot.to_dict()`` per colour."""

    namespace: str
    name: str  # the ModelDeployment's name: also modelserve's `model` label and the v2 model name
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    pod_ips: Mapping[str, Sequence[str]] = field(default_factory=dict)  # colour -> Ready pod IPs
    api_key: str | None = None
    baselines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def target(self, color: str | None, service: str) -> Target:
        return Target(self.namespace, service, color, tuple(self.pod_ips.get(color or "", ())))

    def baseline(self, color: str) -> MetricsSnapshot | None:
        saved = self.baselines.get(color)
        if not saved:
            return None
        try:
            return MetricsSnapshot.from_dict(saved)
        except ValueError:  # written by another version: start the window again
            return None


@dataclass(frozen=True)
class CheckRun:
    """The result, and the baselines to save (colour -> snapshot dict; unchanged colours included)."""

    result: CheckResult
    baselines: dict[str, dict[str, Any]]
    shadow: ShadowFigures | None = None  # the shadow check's counts (the gate's input)
    drift: DriftStatus | None = None  # the drift check's figures (status.drift)


def _now() -> datetime:
    return datetime.now(UTC)


def _inconclusive(message: str) -> CheckResult:
    return CheckResult(passed=None, message=f"inconclusive: {message}", at=_now())


async def run_check(client: ProbeClient, check: str, ctx: CheckContext) -> CheckRun:
    """Runs `check` (a ``desired.rollout.Check`` value); never raises for a missing spec part."""
    state = ctx.status.rollout or RolloutState()
    rollout = ctx.spec.rollout
    baselines = {color: dict(saved) for color, saved in ctx.baselines.items()}
    candidate_color = state.color.value if state.color else None
    active_color = ctx.status.active_color.value if ctx.status.active_color else None
    preview = ctx.target(candidate_color, f"{ctx.name}-preview")
    if check == "smoke":
        if rollout.smoke is None:
            return CheckRun(_inconclusive("no spec.rollout.smoke"), baselines)
        return CheckRun(await client.smoke(preview, rollout.smoke, ctx.api_key), baselines)
    if check == "quality_gate":
        if rollout.quality_gate is None:
            return CheckRun(_inconclusive("no spec.rollout.qualityGate"), baselines)
        active = ctx.target(active_color, f"{ctx.name}-{active_color}") if active_color else None
        result = await client.quality_gate(preview, rollout.quality_gate, ctx.name, active, ctx.api_key)
        return CheckRun(result, baselines)
    if check == "evaluation":
        wanted = ctx.spec.monitoring.evaluation if ctx.spec.monitoring else None
        if wanted is None or active_color is None:
            return CheckRun(_inconclusive("no spec.monitoring.evaluation or no active colour"), baselines)
        live = ctx.target(active_color, f"{ctx.name}-{active_color}")
        if wanted.source == EvaluationSource.feedback:
            revision = ctx.status.active_revision or ""
            return CheckRun(await client.feedback(live, wanted, ctx.name, revision), baselines)
        result = await client.evaluate(live, wanted.dataset_evaluation(), ctx.name, ctx.api_key)
        return CheckRun(result, baselines)
    if check == "shadow":
        phase_id = state.shadow.id if state.shadow else ""
        if rollout.shadow is None or active_color is None or not phase_id:
            return CheckRun(_inconclusive("no spec.rollout.shadow, active colour or shadow phase"), baselines)
        active = ctx.target(active_color, f"{ctx.name}-{active_color}")
        figures = await shadow_figures(client, active, phase_id, ctx.name)
        return CheckRun(shadow_result(figures), baselines, figures)
    if check == "drift":
        if ctx.spec.monitoring is None or ctx.spec.monitoring.drift is None or active_color is None:
            return CheckRun(_inconclusive("no spec.monitoring.drift or no active colour"), baselines)
        live = ctx.target(active_color, f"{ctx.name}-{active_color}")
        found = await drift_figures(client, live, ctx.name, ctx.status.active_revision or "")
        return CheckRun(drift_result(found), baselines, drift=found)
    if check == "analysis":
        if rollout.analysis is None or candidate_color is None:
            return CheckRun(_inconclusive("no spec.rollout.analysis or no candidate colour"), baselines)
        selector = SeriesSelector(ctx.name, state.revision, candidate_color)
        since = state.step_started_at or state.phase_started_at or _now()
        outcome = await client.analyse(
            ctx.target(candidate_color, f"{ctx.name}-{candidate_color}"),
            selector,
            rollout.analysis,
            since,
            ctx.baseline(candidate_color),
        )
        if outcome.baseline is not None:
            baselines[candidate_color] = outcome.baseline.to_dict()
        return CheckRun(outcome.result, baselines)
    raise ValueError(f"check: unknown check {check!r}; expected one of {', '.join(CHECK_NAMES)}")


def _serving_revisions(ctx: CheckContext) -> dict[str, str | None]:
    """Colour -> revision of every colour that serves now (the active one, and a candidate)."""
    state = ctx.status.rollout or RolloutState()
    revisions: dict[str, str | None] = {}
    if ctx.status.active_color:
        revisions[ctx.status.active_color.value] = ctx.status.active_revision
    if state.color and state.revision and state.color != ctx.status.active_color:
        revisions[state.color.value] = state.revision
    return revisions


def _stats_of(color: str, revision: str | None, result: CheckResult) -> ColorStats:
    return ColorStats(
        color=color,
        revision=revision,
        requests=result.requests or 0,
        error_rate=result.error_rate,
        latency_p99_ms=result.latency_p99_ms,
    )


async def color_stats(
    client: ProbeClient, ctx: CheckContext, skip: Sequence[str] = ()
) -> tuple[list[ColorStats], dict[str, dict[str, Any]]]:
    """Per-colour requests, error rate and p99 since the current step began (the A/B view in status),
    every colour scraped at once; colours in `skip` are left out (the caller has their figures)."""
    state = ctx.status.rollout or RolloutState()
    since = state.step_started_at or state.phase_started_at or _now()
    revisions = {c: r for c, r in sorted(_serving_revisions(ctx).items()) if c not in skip}
    outcomes = await asyncio.gather(
        *(
            client.analyse(
                ctx.target(color, f"{ctx.name}-{color}"),
                SeriesSelector(ctx.name, revision, color),
                _STATS_ONLY,
                since,
                ctx.baseline(color),
            )
            for color, revision in revisions.items()
        )
    )
    baselines = {color: dict(saved) for color, saved in ctx.baselines.items()}
    stats = []
    for (color, revision), outcome in zip(revisions.items(), outcomes, strict=True):
        if outcome.baseline is not None:
            baselines[color] = outcome.baseline.to_dict()
        stats.append(_stats_of(color, revision, outcome.result))
    return stats, baselines


async def analysis_with_stats(
    client: ProbeClient, ctx: CheckContext
) -> tuple[CheckRun, list[ColorStats], dict[str, dict[str, Any]]]:
    """The analysis verdict and the A/B view from one concurrent round of scrapes (a failing candidate
    must not wait for extra scrapes before its traffic goes back): the analysed colour's stats are the
    verdict's own figures -- same series, same window -- and the other colour is scraped alongside."""
    state = ctx.status.rollout or RolloutState()
    analysed = state.color.value if state.color else None
    revisions = _serving_revisions(ctx)
    if ctx.spec.rollout.analysis is None or analysed is None or revisions.get(analysed) != state.revision:
        run = await run_check(client, "analysis", ctx)
        stats, baselines = await color_stats(client, replace(ctx, baselines=run.baselines))
        return run, stats, baselines
    run, (others, other_baselines) = await asyncio.gather(
        run_check(client, "analysis", ctx), color_stats(client, ctx, skip=(analysed,))
    )
    baselines = dict(other_baselines)
    if analysed in run.baselines:
        baselines[analysed] = run.baselines[analysed]
    stats = sorted([*others, _stats_of(analysed, state.revision, run.result)], key=lambda s: s.color.value)
    return run, stats, baselines
