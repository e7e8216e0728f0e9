"""Runs the rollout check a pass asks for (smoke, quality gate, analysis, evaluation) through
``modeldeploy.probes`` and hands the result back to the pass (``Context.check_runner``).

Public: ``ProbeCheckRunner(kube, settings, client=None)`` (callable as ``core.CheckRunner``; ``aclose()`` at
shutdown), ``AddressBook``, ``ready_pod_ips(pods)``, ``first_api_key(text)``.

One ``ProbeClient`` per operator process. A check never raises into the reconcile: a timeout (bounded by
``settings.check_budget_seconds``) or an unexpected error is an inconclusive result, which the step
function simply retries on a later pass. Direct-mode analysis windows (the ``/metrics`` snapshot per colour
taken when a window began) are kept in memory and in ``status.rollout.analysisBaselines``, so they survive
an operator restart; the per-colour A/B view (``status.colors``) is refreshed with each analysis.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modeldeploy import metrics
from modeldeploy.api import CheckResult, ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.desired.naming import LABEL_COLOR
from modeldeploy.desired.pods import pod_ready
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
from modeldeploy.reconcile.status import merge_patch
from modeldeploy.settings import OperatorSettings

log = logging.getLogger(__name__)

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


def _status_of(body: Mapping[str, Any]) -> ModelDeploymentStatus:
    raw = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError:
        return ModelDeploymentStatus()


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
            AddressBook(settings.probe_addresses),
            timeout_seconds=settings.probe_timeout_seconds,
            prometheus_url=settings.prometheus_url or None,
        )
        # (namespace, name, uid) -> colour -> snapshot: the live copy of status.rollout.analysisBaselines.
        self._baselines: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __call__(
        self, body: Mapping[str, Any], spec: ModelDeploymentSpec, check: Any, observed: Any
    ) -> dict[Any, CheckResult]:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        key = (namespace, name, str(meta.get("uid", "")))
        status = _status_of(body)
        saved = status.rollout.analysis_baselines if status.rollout else None
        baselines = self._baselines.get(key) or dict(saved or {})
        ctx = CheckContext(
            namespace=namespace,
            name=name,
            spec=spec,
            status=status,
            pod_ips=ready_pod_ips(observed.pods),
            api_key=await self._api_key(namespace, spec),
            baselines=baselines,
        )
        started = time.perf_counter()
        result, new_baselines, stats = await self._run(str(check), ctx)
        metrics.CHECK_SECONDS.labels(check=str(check)).observe(time.perf_counter() - started)
        metrics.CHECKS.labels(check=str(check), result=_verdict(result)).inc()
        self._export_scores(namespace, name, status, str(check), result)
        log.info("check %s of %s/%s: %s", check, namespace, name, _log_text(result))
        self._baselines[key] = new_baselines
        await self._save(namespace, name, body, saved or {}, new_baselines, stats)
        return {check: result}

    async def _run(
        self, check: str, ctx: CheckContext
    ) -> tuple[CheckResult, dict[str, dict[str, Any]], list[dict[str, Any]] | None]:
        """The check (and, with analysis, the A/B stats), bounded by the budget; never raises."""

        async def work() -> tuple[CheckResult, dict[str, dict[str, Any]], list[dict[str, Any]] | None]:
            if check != "analysis":
                run = await run_check(self.client, check, ctx)
                return run.result, run.baselines, None
            run, stats, baselines = await analysis_with_stats(self.client, ctx)
            dumped = [s.model_dump(by_alias=True, exclude_none=True, mode="json") for s in stats]
            return run.result, baselines, dumped

        try:
            return await asyncio.wait_for(work(), timeout=self.budget)
        except TimeoutError:
            why = f"{check} took longer than {self.budget:g}s (settings.check_budget_seconds)"
        except Exception as exc:  # a probe bug must not stop the rollout loop; the next pass retries
            log.exception("check %s of %s/%s failed", check, ctx.namespace, ctx.name)
            metrics.ERRORS.labels(error=type(exc).__name__).inc()
            why = f"{check}: {type(exc).__name__}: {exc}"
        return _inconclusive(why), dict(ctx.baselines), None

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
        if check == "evaluation":
            revision = status.active_revision or revision
        for attribute, metric in _SCORED.items():
            value = getattr(result, attribute)
            if value is not None:
                metrics.set_check_score(namespace, name, revision, check, metric, float(value))

    async def _save(
        self,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        saved: Mapping[str, Any],
        baselines: dict[str, dict[str, Any]],
        stats: list[dict[str, Any]] | None,
    ) -> None:
        """Persist new analysis windows and the A/B view; the pass's own status patch leaves both alone."""
        patch: dict[str, Any] = {}
        if baselines != dict(saved) and (body.get("status") or {}).get("rollout") is not None:
            patch["rollout"] = {"analysisBaselines": merge_patch(saved, baselines)}
        if stats is not None and stats != (body.get("status") or {}).get("colors"):
            patch["colors"] = stats
        if not patch:
            return
        try:
            await self.kube.patch_status(namespace, name, patch)
        except Exception as exc:  # the in-memory copy still holds the window; next pass tries again
            log.warning("cannot save analysis windows of %s/%s: %s", namespace, name, exc)
            return
        # The pass that follows and its status diff start from this body (the reconcile's own copy): show
        # them what was saved, or the diff would write the older windows back over the new ones.
        if isinstance(body, MutableMapping) and isinstance(body.get("status"), MutableMapping):
            status = body["status"]
            if "rollout" in patch and isinstance(status.get("rollout"), MutableMapping):
                status["rollout"]["analysisBaselines"] = baselines
            if "colors" in patch:
                status["colors"] = stats
