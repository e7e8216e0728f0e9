"""Pure maths of rollout analysis: /metrics text -> per-pod counts -> deltas since a baseline -> verdict.

Public: ``SeriesSelector``, ``PodCounts``, ``MetricsSnapshot``, ``WindowStats``, ``INFERENCE_ROUTE_REGEX``,
``LATENCY_BUCKETS_LE``, ``parse_pod_counts(text, selector)``, ``window_stats(baseline, current)``,
``histogram_quantile(q, buckets)``, ``judge_analysis(stats, analysis, at)``.

Only inference routes count (``/predict``, ``/v1/models/{name}:predict``, ``/v2/models/{name}/infer``...):
kubelet probes and metric scrapes would otherwise dilute the error rate and the latency. Counts are summed
over every series of a pod (routes, status codes; workers are already summed by modelserve's multiprocess
collector) and then over pods. A pod whose counter went backwards restarted: its whole current count is new.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeldeploy.api import Analysis, CheckResult
from modeldeploy.probes.exposition import samples_of

REQUESTS_SAMPLE = "modelserve_requests_total"
LATENCY_BUCKET_SAMPLE = "modelserve_request_duration_seconds_bucket"
# One definition of "an inference route", used by direct scraping and by the PromQL selectors.
INFERENCE_ROUTE_REGEX = r".*(/infer|:predict|/predict)"
_INFERENCE_ROUTE = re.compile(INFERENCE_ROUTE_REGEX)
SNAPSHOT_FORMAT = 1


@dataclass(frozen=True)
class SeriesSelector:
    """Which series belong to the model server under judgement (the candidate's revision and colour)."""

    model: str | None = None
    revision: str | None = None
    color: str | None = None

    def labels(self) -> dict[str, str]:
        wanted = {"model": self.model, "revision": self.revision, "color": self.color}
        return {k: v for k, v in wanted.items() if v is not None}

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.labels().items()) and bool(
            _INFERENCE_ROUTE.fullmatch(labels.get("route", ""))
        )


@dataclass(frozen=True)
class PodCounts:
    """Cumulative counters of one pod: requests, 5xx answers, latency histogram buckets (le -> count)."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "buckets": {_le_text(le): count for le, count in sorted(self.buckets.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PodCounts:
        buckets = {float(le): float(count) for le, count in dict(data.get("buckets", {})).items()}
        return cls(float(data.get("requests", 0)), float(data.get("errors", 0)), buckets)


@dataclass(frozen=True)
class MetricsSnapshot:
    """Counts of every pod of one colour at one moment; serialisable into status (``to_dict``)."""

    taken_at: datetime
    pods: Mapping[str, PodCounts] = field(default_factory=dict)
    unreachable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "takenAt": self.taken_at.isoformat(),
            "pods": {pod: counts.to_dict() for pod, counts in sorted(self.pods.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricsSnapshot:
        """Raises ValueError (naming the field) for a snapshot this version cannot read."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot.format: expected {SNAPSHOT_FORMAT}, got {data.get('format')!r}")
        try:
            taken_at = datetime.fromisoformat(str(data["takenAt"]))
        except (KeyError, ValueError):
            raise ValueError("snapshot.takenAt: expected an ISO 8601 timestamp") from None
        pods = {str(pod): PodCounts.from_dict(counts) for pod, counts in dict(data.get("pods", {})).items()}
        return cls(taken_at, pods)


@dataclass(frozen=True)
class WindowStats:
    """What happened between two snapshots (or over a PromQL window), summed over pods."""

    requests: float
    errors: float
    latency_p99_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None


def parse_pod_counts(text: str, selector: SeriesSelector) -> PodCounts:
    """One pod's /metrics exposition -> its cumulative counts for the selected series."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for sample in samples_of(text, REQUESTS_SAMPLE, LATENCY_BUCKET_SAMPLE):
        if sample.name == REQUESTS_SAMPLE and selector.matches(sample.labels):
            requests += sample.value
            if sample.labels.get("status_code", "").startswith("5"):
                errors += sample.value
        elif sample.name == LATENCY_BUCKET_SAMPLE and selector.matches(sample.labels):
            le = float(sample.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + sample.value
    return PodCounts(requests, errors, buckets)


def _pod_delta(before: PodCounts | None, now: PodCounts) -> PodCounts:
    # A counter that went backwards means the pod restarted: everything it counted since is new.
    if before is None or now.requests < before.requests or now.errors < before.errors:
        return now
    buckets = {le: max(count - before.buckets.get(le, 0.0), 0.0) for le, count in now.buckets.items()}
    return PodCounts(now.requests - before.requests, now.errors - before.errors, buckets)


def window_stats(baseline: MetricsSnapshot | None, current: MetricsSnapshot) -> WindowStats:
    """Deltas per pod since the baseline, summed over pods (a pod absent from the baseline counts fully)."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    before = baseline.pods if baseline else {}
    for pod, counts in current.pods.items():
        delta = _pod_delta(before.get(pod), counts)
        requests += delta.requests
        errors += delta.errors
        for le, count in delta.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + count
    return WindowStats(requests, errors, _ms(histogram_quantile(0.99, buckets)))


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' histogram_quantile on cumulative buckets (le -> count), so both modes agree.

    Linear interpolation inside the bucket holding the rank; the first bucket starts at 0; a rank in the
    +Inf bucket answers the largest finite bound. None when there are no observations.
    """
    ordered = sorted(buckets.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for i, (le, count) in enumerate(ordered):
        if count >= rank:
            if math.isinf(le):
                return ordered[i - 1][0] if i > 0 else None
            if i == 0 and le <= 0:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_bound, lower_count = le, count
    return ordered[-2][0] if len(ordered) > 1 else None


def judge_analysis(stats: WindowStats, analysis: Analysis, at: datetime, source: str = "") -> CheckResult:
    """Verdict: inconclusive below minRequests, failed past maxErrorRate or maxLatencyP99Ms, else passed."""
    requests = round(stats.requests)
    rate, p99 = stats.error_rate, stats.latency_p99_ms
    figures = f"{requests} requests, error rate {_pct(rate)}, p99 {_fmt_ms(p99)}"
    suffix = f" ({source})" if source else ""
    result = CheckResult(requests=requests, error_rate=rate, latency_p99_ms=p99, at=at)
    if requests < analysis.min_requests:
        message = f"inconclusive: {requests} of {analysis.min_requests} requests needed so far; waiting"
        return result.model_copy(update={"passed": None, "message": message + suffix})
    problems = []
    if analysis.max_error_rate is not None and rate is not None and rate > analysis.max_error_rate:
        problems.append(f"error rate {_pct(rate)} > maxErrorRate {_pct(analysis.max_error_rate)}")
    limit = analysis.max_latency_p99_ms
    if limit is not None and p99 is not None and p99 > limit:
        problems.append(f"p99 latency {_fmt_ms(p99)} > maxLatencyP99Ms {limit:g} ms")
    if problems:
        where = f"{figures}; {source}" if source else figures
        return result.model_copy(update={"passed": False, "message": "; ".join(problems) + f" ({where})"})
    return result.model_copy(update={"passed": True, "message": figures + suffix})


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _le_text(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)
