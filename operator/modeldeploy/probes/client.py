"""The one component that talks HTTP to model servers: metrics snapshots and analysis, smoke requests,
the quality gate and the live evaluation. Every method answers a ``CheckResult`` (or a snapshot); network
trouble becomes an inconclusive result (``passed=None``) with the reason, never an exception.

Public: ``ProbeClient``, ``AnalysisOutcome``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from modeldeploy.api import Analysis, CheckResult, Evaluation, MonitoringEvaluation, QualityGate, Smoke
from modeldeploy.probes.analysis_math import (
    MetricsSnapshot,
    PodCounts,
    SeriesSelector,
    judge_analysis,
    parse_pod_counts,
    window_stats,
)
from modeldeploy.probes.bounded import (
    METRICS_MAX_BYTES,
    SMOKE_MAX_BYTES,
    BoundedHttp,
    BoundedResponse,
)
from modeldeploy.probes.dataset import (
    DATASET_DEADLINE_SECONDS,
    MAX_DATASET_BYTES,
    DatasetError,
    LabelledData,
    load_dataset,
)
from modeldeploy.probes.feedback import LabelSums, judge_feedback, parse_label_sums
from modeldeploy.probes.guard import DestinationGuard, hosts_of, parse_networks
from modeldeploy.probes.inference import (
    BATCH_ROWS,
    InferenceError,
    feature_order,
    model_info,
    predict_rows,
)
from modeldeploy.probes.prometheus import PrometheusError, prometheus_window_stats
from modeldeploy.probes.resolver import AddressResolver, ClusterResolver, StaticResolver, Target
from modeldeploy.probes.scoring import judge_scores, output_shape, score, shape_matches


@dataclass(frozen=True)
class AnalysisOutcome:
    """The verdict and the baseline to keep in status for the next pass of the same step."""

    result: CheckResult
    baseline: MetricsSnapshot | None


def _now() -> datetime:
    return datetime.now(UTC)


class ProbeClient:
    """HTTP to serving pods. One instance per operator; `aclose()` on shutdown.

    `prometheus_url` switches analysis to PromQL. There, series are also matched on the target's namespace
    through `prometheus_namespace_label` (``namespace``, as Prometheus Operator and the usual
    ``kubernetes-pods`` relabelling set it; None to skip) plus any fixed `prometheus_labels`. `api_key`
    arguments are sent as ``Authorization: Bearer`` when the ModelDeployment has API keys.

    No redirect is followed, and every answer is read within a cap and a deadline (``bounded``).
    `dataset_guard` decides which data set hosts may be fetched (``guard``); without one, the platform's
    settings give it: ``dataset_blocked_networks`` refused, the Prometheus and static-map hosts exempt.
    """

    def __init__(
        self,
        resolver: AddressResolver | None = None,
        *,
        timeout_seconds: float = 10.0,
        prometheus_url: str | None = None,
        prometheus_labels: Mapping[str, str] | None = None,
        prometheus_namespace_label: str | None = "namespace",
        batch_rows: int = BATCH_ROWS,
        http: httpx.AsyncClient | None = None,
        dataset_guard: DestinationGuard | None = None,
        dataset_max_bytes: int = MAX_DATASET_BYTES,
        dataset_deadline_seconds: float = DATASET_DEADLINE_SECONDS,
    ) -> None:
        self.resolver: AddressResolver = resolver or ClusterResolver()
        self.prometheus_url = prometheus_url
        self.prometheus_labels = dict(prometheus_labels or {})
        self.prometheus_namespace_label = prometheus_namespace_label
        self.batch_rows = batch_rows
        self.http = http or httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)
        self.reader = BoundedHttp(self.http, timeout_seconds)
        self.dataset_guard = dataset_guard or _platform_guard(self.resolver, prometheus_url)
        self.dataset_max_bytes = dataset_max_bytes
        self.dataset_deadline_seconds = dataset_deadline_seconds

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---------------------------------------------------------------- metrics and analysis

    async def snapshot(self, target: Target, selector: SeriesSelector) -> MetricsSnapshot:
        """Scrapes /metrics of every pod of the target concurrently; unreachable pods are listed."""
        urls = self.resolver.pod_urls(target)
        taken_at = _now()
        texts = await asyncio.gather(*(self._get_text(f"{u}/metrics") for u in urls))
        pods: dict[str, PodCounts] = {}
        unreachable = []
        for url, text in zip(urls, texts, strict=True):
            if text is None:
                unreachable.append(url)
            else:
                pods[url] = parse_pod_counts(text, selector)
        return MetricsSnapshot(taken_at, pods, tuple(unreachable))

    async def analyse(
        self,
        target: Target,
        selector: SeriesSelector,
        analysis: Analysis,
        since: datetime,
        baseline: MetricsSnapshot | None = None,
    ) -> AnalysisOutcome:
        """Judges the selected series since `since` (the step's start).

        Direct mode needs the `baseline` snapshot taken when the step began; pass the one returned by the
        previous call (kept in status). Without one, or with one older than `since`, this pass records the
        baseline and answers inconclusive. With a Prometheus address, `baseline` is not needed.
        """
        if self.prometheus_url:
            result = await self._analyse_prometheus(target, selector, analysis, since)
            return AnalysisOutcome(result, None)
        current = await self.snapshot(target, selector)
        if not current.pods:
            why = f"no pod answered /metrics ({len(current.unreachable)} unreachable)"
            return AnalysisOutcome(
                CheckResult(passed=None, message=f"inconclusive: {why}", at=_now()), baseline
            )
        if baseline is None or baseline.taken_at < since:
            message = (
                f"inconclusive: baseline taken from {len(current.pods)} pods; judging from the next pass"
            )
            return AnalysisOutcome(
                CheckResult(passed=None, message=message, requests=0, at=current.taken_at), current
            )
        stats = window_stats(baseline, current)
        source = f"{len(current.pods)} pods"
        if current.unreachable:
            source += f", {len(current.unreachable)} unreachable"
        return AnalysisOutcome(judge_analysis(stats, analysis, current.taken_at, source), baseline)

    async def _analyse_prometheus(
        self, target: Target, selector: SeriesSelector, analysis: Analysis, since: datetime
    ) -> CheckResult:
        now = _now()
        assert self.prometheus_url
        labels = dict(self.prometheus_labels)
        if self.prometheus_namespace_label:
            labels[self.prometheus_namespace_label] = target.namespace
        try:
            stats = await prometheus_window_stats(
                self.reader, self.prometheus_url, selector, since, now, labels
            )
        except PrometheusError as err:
            return CheckResult(passed=None, message=f"inconclusive: Prometheus: {err}", at=now)
        return judge_analysis(stats, analysis, now, "prometheus")

    # ---------------------------------------------------------------- smoke

    async def smoke(self, target: Target, smoke: Smoke, api_key: str | None = None) -> CheckResult:
        """Sends each configured request to the target's Service; all must get the expected status/shape."""
        base = self.resolver.service_url(target)
        headers = _auth(api_key)
        problems: list[str] = []
        for i, request in enumerate(smoke.requests):
            where = f"requests[{i}] POST {request.path}"
            try:
                response = await self.reader.post(
                    f"{base}{request.path}", json=request.body, headers=headers, max_bytes=SMOKE_MAX_BYTES
                )
            except httpx.HTTPError as err:
                return CheckResult(
                    passed=None, message=f"inconclusive: {where}: {type(err).__name__}: {err}", at=_now()
                )
            if response.status_code != request.expected_status:
                problems.append(
                    f"{where}: HTTP {response.status_code}, expected {request.expected_status}"
                    + _excerpt(response)
                )
                continue
            if request.expected_output_shape is not None:
                try:
                    body: Any = response.json()
                except ValueError:
                    body = None
                shape = output_shape(request.path, body)
                if not shape_matches(request.expected_output_shape, shape):
                    problems.append(
                        f"{where}: output shape {shape}, expected {request.expected_output_shape}"
                    )
        count = len(smoke.requests)
        if problems:
            return CheckResult(
                passed=False, message=f"{len(problems)} of {count} failed: " + "; ".join(problems), at=_now()
            )
        return CheckResult(passed=True, message=f"{count} of {count} requests passed", at=_now())

    # ---------------------------------------------------------------- quality gate and evaluation

    async def quality_gate(
        self,
        candidate: Target,
        gate: QualityGate,
        model_name: str,
        active: Target | None = None,
        api_key: str | None = None,
    ) -> CheckResult:
        """Scores the candidate on the labelled rows; with `active` and `gate.max_regression`, also the
        active model on the same rows (champion/challenger)."""
        compare = active if gate.max_regression is not None else None
        return await self._evaluate(candidate, gate, model_name, compare, gate.max_regression, api_key)

    async def evaluate(
        self, target: Target, evaluation: Evaluation, model_name: str, api_key: str | None = None
    ) -> CheckResult:
        """Regular evaluation of the live model on fresh labelled data (threshold only)."""
        return await self._evaluate(target, evaluation, model_name, None, None, api_key)

    async def feedback(
        self, target: Target, evaluation: MonitoringEvaluation, model_name: str, revision: str
    ) -> CheckResult:
        """The live revision judged on the labels clients sent back: every pod's window sums, added."""
        urls = self.resolver.pod_urls(target)
        texts = await asyncio.gather(*(self._get_text(f"{u}/metrics") for u in urls))
        sums, unreachable = LabelSums(), 0
        for text in texts:
            if text is None:
                unreachable += 1
                continue
            try:
                sums = sums.add(parse_label_sums(text, model_name, revision))
            except ValueError:  # not Prometheus text: that pod says nothing
                unreachable += 1
        return judge_feedback(evaluation, revision, sums, len(urls), unreachable, _now())

    async def _evaluate(
        self,
        candidate: Target,
        spec: Evaluation,
        model_name: str,
        active: Target | None,
        max_regression: float | None,
        api_key: str | None,
    ) -> CheckResult:
        fmt = spec.dataset_format.value if spec.dataset_format else None
        try:
            data = await load_dataset(
                self.http,
                spec.dataset_uri,
                spec.label_column,
                spec.max_rows,
                fmt,
                self.dataset_guard,
                max_bytes=self.dataset_max_bytes,
                deadline_seconds=self.dataset_deadline_seconds,
            )
        except DatasetError as err:
            return CheckResult(passed=None, message=f"inconclusive: {err}", at=_now())
        headers = _auth(api_key)
        targets = [candidate] + ([active] if active is not None else [])
        scores = await asyncio.gather(
            *(self._score(t, spec, model_name, data, headers) for t in targets), return_exceptions=True
        )
        candidate_score = scores[0]
        if isinstance(candidate_score, InferenceError | ValueError):
            return CheckResult(passed=False, message=f"candidate: {candidate_score}", at=_now())
        if isinstance(candidate_score, BaseException):
            raise candidate_score
        active_score = scores[1] if active is not None else None
        if isinstance(active_score, InferenceError | ValueError):
            return CheckResult(
                passed=None,
                message=f"inconclusive: active model: {active_score}",
                score=candidate_score,
                at=_now(),
            )
        if isinstance(active_score, BaseException):
            raise active_score
        return judge_scores(
            spec.metric, spec.threshold, candidate_score, active_score, max_regression, len(data), _now()
        )

    async def _score(
        self, target: Target, spec: Evaluation, model_name: str, data: LabelledData, headers: dict[str, str]
    ) -> float:
        base = self.resolver.service_url(target)
        info = await model_info(self.reader, base, model_name, headers)
        order = feature_order(info, data.columns)
        rows = [[row[i] for i in order] for row in data.rows]
        predictions = await predict_rows(
            self.reader, base, model_name, rows, headers, info.classes, batch_rows=self.batch_rows
        )
        return score(spec.metric, data.labels, predictions)

    # ---------------------------------------------------------------- helpers

    async def metrics_text(self, pod_url: str) -> str | None:
        """One pod's /metrics, within the cap and the deadline; None unless it answered 200."""
        return await self._get_text(f"{pod_url}/metrics")

    async def _get_text(self, url: str) -> str | None:
        try:
            response = await self.reader.get(url, max_bytes=METRICS_MAX_BYTES)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None


def _platform_guard(resolver: AddressResolver, prometheus_url: str | None) -> DestinationGuard:
    """The guard from the operator's settings: blocked ranges, and the hosts the platform itself named."""
    from modeldeploy.settings import get_settings  # the platform's rules, when the caller passes none

    settings = get_settings()
    urls = [prometheus_url or ""]
    urls += [u for colours in settings.probe_addresses.values() for us in colours.values() for u in us]
    if isinstance(resolver, StaticResolver):
        urls += [u for us in resolver.pods.values() for u in us] + list((resolver.services or {}).values())
    return DestinationGuard(parse_networks(settings.dataset_blocked_networks), hosts_of(urls))


def _excerpt(response: BoundedResponse) -> str:
    """A short, printable excerpt of a model server's answer (its own pod's words, never a third party's)."""
    text = "".join(c if c.isprintable() else " " for c in response.text[:200]).strip()
    return f" ({text})" if text else ""


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
