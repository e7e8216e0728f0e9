"""Runs the rollout check a pass asks for (smoke, quality gate, analysis, evaluation, shadow, drift) through
``modeldeploy.probes`` and reports what it found back to the pass (``Context.check_runner``).

Public: ``ProbeCheckRunner(kube, settings, client=None)`` (callable as ``core.CheckRunner``; ``aclose()`` at
shutdown), ``AddressBook``, ``ready_pod_ips(pods)``, ``first_api_key(text)``.

One ``ProbeClient`` per operator process. A check never raises into the reconcile: a timeout (bounded by
``settings.check_budget_seconds``) or an unexpected error is an inconclusive result, which the step
function simply retries on a later pass. The runner writes nothing: its ``CheckReport`` (the verdict, the
direct-mode analysis windows -- the ``/metrics`` snapshot per colour taken when a window began -- and the
per-colour A/B view) is an input of the pure pass, which puts all of it in the one status the pass writes
(``status.rollout.analysisBaselines`` survives an operator restart).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modeldeploy import metrics
from modeldeploy.api import (
    CheckResult,
    ColorStats,
    DriftStatus,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ShadowFigures,
)
from modeldeploy.desired import CheckReport, current_status
from modeldeploy.desired.naming import LABEL_COLOR
from modeldeploy.desired.pods import pod_ready
from modeldeploy.desired.rollout import Check
from modeldeploy.k8s import SECRET, Kube
from modeldeploy.probes import (
    CheckContext,
    ClusterResolver,
    ProbeClient,
    StaticResolver,
    Target,
    analysis_with_stats,
    run_check,
)
from modeldeploy.settings import OperatorSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Found:
    """What one check found: verdict, analysis windows, the A/B view, the shadow and drift figures."""

    result: CheckResult
    baselines: dict[str, dict[str, Any]]
    stats: list[ColorStats] | None = None
    shadow: ShadowFigures | None = None
    drift: DriftStatus | None = None


_SERVICE_SUFFIXES = ("-preview", "-blue", "-green")
# Numbers of a CheckResult exported as modeldeploy_check_score{metric=...}.
_SCORED = {
    "score": "score",
    "active_score": "active_score",
    "error_rate": "error_rate",
    "latency_p99_ms": "latency_p99_ms",
    "requests": "requests",
}


@dataclass(frozen=True)
class AddressBook:
    """Fixed URLs per ModelDeployment (``"<ns>/<name>"`` -> colour -> URLs) for tests and demos; any
    ModelDeployment not listed uses the in-cluster addresses (pod IPs, Service DNS)."""

    entries: Mapping[str, Mapping[str, list[str]]] = field(default_factory=dict)
    cluster: ClusterResolver = field(default_factory=ClusterResolver)

    def _static(self, target: Target) -> StaticResolver | None:
        owner = target.service
        for suffix in _SERVICE_SUFFIXES:
            if owner.endswith(suffix):
                owner = owner[: -len(suffix)]
                break
        entry = self.entries.get(f"{target.namespace}/{owner}")
        return StaticResolver(pods=entry) if entry is not None else None

    def pod_urls(self, target: Target) -> list[str]:
        static = self._static(target)
        return static.pod_urls(target) if static else self.cluster.pod_urls(target)

    def service_url(self, target: Target) -> str:
        static = self._static(target)
        return static.service_url(target) if static else self.cluster.service_url(target)


def ready_pod_ips(pods: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Colour -> IPs of its Ready pods (the only ones that get traffic, so the only ones analysed)."""
    found: dict[str, list[str]] = {}
    for pod in pods:
        color = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_COLOR)
        ip = (pod.get("status") or {}).get("podIP")
        if color and ip and pod_ready(pod):
            found.setdefault(color, []).append(ip)
    return {color: sorted(ips) for color, ips in found.items()}


def first_api_key(text: str) -> str | None:
    """The first key of an api-keys file (one per line, blank lines and `#` comments ignored)."""
    for line in text.splitlines():
        key = line.strip()
        if key and not key.startswith("#"):
            return key
    return None


def _inconclusive(message: str) -> CheckResult:
    return CheckResult(passed=None, message=f"inconclusive: {message}", at=datetime.now(UTC))


def _verdict(result: CheckResult) -> str:
    return {True: "passed", False: "failed", None: "inconclusive"}[result.passed]


def _log_text(result: CheckResult) -> str:
    """Verdict, message and snapshot time (benchmarks/rollout_bench.py times traffic-back from the last)."""
    verdict = _verdict(result)
    message = result.message if result.message.startswith(verdict) else f"{verdict}: {result.message}"
    return f"{message} [at {result.at.isoformat() if result.at else '-'}]"


class ProbeCheckRunner:
    """The glue between a reconcile pass and the probes; one per operator process."""

    def __init__(self, kube: Kube, settings: OperatorSettings, client: ProbeClient | None = None) -> None:
        self.kube = kube
        self.budget = settings.check_budget_seconds
        self.client = client or ProbeClient(
            AddressBook(settings.probe_addresses, ClusterResolver(cluster_domain=settings.cluster_domain)),
            timeout_seconds=settings.probe_timeout_seconds,
            prometheus_url=settings.prometheus_url or None,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __call__(
        self, body: Mapping[str, Any], spec: ModelDeploymentSpec, check: Check, observed: Any
    ) -> CheckReport:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        status = current_status(body)
        saved = status.rollout.analysis_baselines if status.rollout else None
        ctx = CheckContext(
            namespace=namespace,
            name=name,
            spec=spec,
            status=status,
            pod_ips=ready_pod_ips(observed.pods),
            api_key=await self._api_key(namespace, spec),
            baselines=dict(saved or {}),
        )
        started = time.perf_counter()
        found = await self._run(str(check), ctx)
        result = found.result
        metrics.CHECK_SECONDS.labels(check=str(check)).observe(time.perf_counter() - started)
        metrics.CHECKS.labels(check=str(check), result=_verdict(result)).inc()
        self._export_scores(namespace, name, status, str(check), result)
        log.info("check %s of %s/%s: %s", check, namespace, name, _log_text(result))
        return CheckReport(
            results={check: result},
            baselines=found.baselines,
            color_stats=found.stats,
            shadow=found.shadow,
            drift=found.drift,
        )

    async def _run(self, check: str, ctx: CheckContext) -> _Found:
        """The check (and, with analysis, the A/B stats), bounded by the budget; never raises."""

        async def work() -> _Found:
            if check != "analysis":
                run = await run_check(self.client, check, ctx)
                return _Found(run.result, run.baselines, shadow=run.shadow, drift=run.drift)
            run, stats, baselines = await analysis_with_stats(self.client, ctx)
            return _Found(run.result, baselines, stats)

        try:
            return await asyncio.wait_for(work(), timeout=self.budget)
        except TimeoutError:
            why = f"{check} took longer than {self.budget:g}s (settings.check_budget_seconds)"
        except Exception as exc:  # a probe bug must not stop the rollout loop; the next pass retries
            log.exception("check %s of %s/%s failed", check, ctx.namespace, ctx.name)
            metrics.ERRORS.labels(error=type(exc).__name__).inc()
            why = f"{check}: {type(exc).__name__}: {exc}"
        return _Found(_inconclusive(why), {color: dict(saved) for color, saved in ctx.baselines.items()})

    async def _api_key(self, namespace: str, spec: ModelDeploymentSpec) -> str | None:
        ref = spec.security.api_key_secret_ref if spec.security else None
        if ref is None:
            return None
        try:
            secret = await self.kube.get(SECRET, namespace, ref.name)
        except Exception as exc:  # reported through the check's own (unauthorised) result
            log.warning("cannot read Secret %s/%s for probes: %s", namespace, ref.name, exc)
            return None
        encoded = ((secret or {}).get("data") or {}).get(ref.key)
        if not encoded:
            return None
        return first_api_key(base64.b64decode(encoded).decode(errors="replace"))

    def _export_scores(
        self, namespace: str, name: str, status: ModelDeploymentStatus, check: str, result: CheckResult
    ) -> None:
        state = status.rollout
        revision = (state.revision if state else None) or status.active_revision or ""
        if check in ("evaluation", "drift"):  # both judge the live revision, not a candidate
            revision = status.active_revision or revision
        for attribute, metric in _SCORED.items():
            value = getattr(result, attribute)
            if value is not None:
                metrics.set_check_score(namespace, name, revision, check, metric, float(value))
