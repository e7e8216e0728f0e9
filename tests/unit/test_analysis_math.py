"""Pure analysis maths: parsing real prometheus_client expositions, per-pod deltas, histogram_quantile,
and the verdict table."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from modeldeploy.api import Analysis
from modeldeploy.probes import (
    MetricsSnapshot,
    PodCounts,
    SeriesSelector,
    WindowStats,
    histogram_quantile,
    judge_analysis,
    parse_pod_counts,
    window_stats,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BUCKETS = (0.005, 0.01, 0.1, 1.0)
LABELS = ("model", "version", "revision", "color")


def exposition(requests: dict[tuple[str, str, str, str], int], latencies: dict[tuple[str, str], list]) -> str:
    """modelserve's two series, built with prometheus_client: requests[(revision, color, route, code)] = n,
    latencies[(revision, route)] = observed seconds (colour green)."""
    reg = CollectorRegistry()
    counter = Counter("modelserve_requests", "", [*LABELS, "route", "status_code"], registry=reg)
    hist = Histogram(
        "modelserve_request_duration_seconds", "", [*LABELS, "route"], buckets=BUCKETS, registry=reg
    )
    for (revision, color, route, code), n in requests.items():
        counter.labels("iris", "3", revision, color, route, code).inc(n)
    for (revision, route), values in latencies.items():
        for value in values:
            hist.labels("iris", "3", revision, "green", route).observe(value)
    return generate_latest(reg).decode()


CAND = SeriesSelector(model="iris", revision="r2", color="green")


def test_counts_only_inference_routes_of_the_selected_revision_and_colour():
    text = exposition(
        {
            ("r2", "green", "/v2/models/{name}/infer", "200"): 7,
            ("r2", "green", "/v2/models/{name}/infer", "500"): 2,
            ("r2", "green", "/v1/models/{name}:predict", "503"): 1,
            ("r2", "green", "/predict", "400"): 4,
            ("r2", "green", "/v2/health/ready", "200"): 100,  # kubelet probes
            ("r2", "green", "/metrics", "200"): 50,  # scrapes
            ("r1", "blue", "/predict", "500"): 9,  # the active colour
            ("r1", "green", "/predict", "200"): 9,  # an older revision on the same slot
        },
        {("r2", "/predict"): [0.003, 0.05], ("r2", "/v2/health/ready"): [0.5]},
    )
    counts = parse_pod_counts(text, CAND)
    assert counts.requests == 14
    assert counts.errors == 3  # 500 and 503; a 400 is the client's fault
    assert counts.buckets[0.005] == 1 and counts.buckets[0.1] == 2 and counts.buckets[math.inf] == 2


def pod(requests: float, errors: float, buckets: dict[float, float]) -> PodCounts:
    return PodCounts(requests, errors, buckets)


INF = math.inf


@pytest.mark.parametrize(
    ("before", "after", "requests", "errors"),
    [
        ({"a": pod(10, 1, {INF: 10})}, {"a": pod(30, 3, {INF: 30})}, 20, 2),  # one pod: delta
        (
            {"a": pod(10, 1, {INF: 10}), "b": pod(5, 0, {INF: 5})},
            {"a": pod(12, 1, {INF: 12}), "b": pod(9, 4, {INF: 9})},
            6,
            4,
        ),  # summed over pods
        ({"a": pod(10, 1, {INF: 10})}, {"a": pod(4, 2, {INF: 4})}, 4, 2),  # restarted pod: all new
        (
            {"a": pod(10, 1, {INF: 10})},
            {"a": pod(10, 1, {INF: 10}), "n": pod(3, 1, {INF: 3})},
            3,
            1,
        ),  # new pod
        ({"a": pod(10, 1, {INF: 10}), "gone": pod(9, 9, {INF: 9})}, {"a": pod(11, 1, {INF: 11})}, 1, 0),
    ],
    ids=["delta", "summed-over-pods", "restart", "new-pod", "vanished-pod"],
)
def test_window_counts_are_per_pod_deltas_summed(before, after, requests, errors):
    stats = window_stats(MetricsSnapshot(T0, before), MetricsSnapshot(T0 + timedelta(seconds=10), after))
    assert (stats.requests, stats.errors) == (requests, errors)


def test_p99_comes_from_bucket_deltas_not_totals():
    # Before the window: 1000 slow requests; in the window: 100 fast ones. Only the fast ones count.
    before = {"a": pod(1000, 0, {0.01: 0, 0.1: 0, 1.0: 1000, INF: 1000})}
    after = {"a": pod(1100, 0, {0.01: 100, 0.1: 100, 1.0: 1100, INF: 1100})}
    stats = window_stats(MetricsSnapshot(T0, before), MetricsSnapshot(T0, after))
    assert stats.latency_p99_ms == pytest.approx(9.9)  # 0.99 of the way through (0, 10 ms]


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {0.1: 50, 0.2: 100, INF: 100}, 0.1),
        (0.99, {0.1: 50, 0.2: 100, INF: 100}, 0.198),
        (0.99, {0.1: 0, 0.2: 0, INF: 10}, 0.2),  # rank in +Inf: the largest finite bound
        (0.5, {0.4: 10, INF: 10}, 0.2),  # the first bucket starts at 0
        (0.99, {0.1: 0, INF: 0}, None),  # no observations
        (0.99, {0.1: 5}, None),  # no +Inf bucket: not a histogram
        (0.99, {}, None),
        (0.99, {INF: 10}, None),  # only +Inf: nothing to interpolate (Prometheus: NaN)
    ],
)
def test_histogram_quantile_matches_prometheus(q, buckets, expected):
    got = histogram_quantile(q, buckets)
    assert got == (pytest.approx(expected) if expected is not None else None)


STRICT = Analysis(max_error_rate=0.01, max_latency_p99_ms=250, min_requests=50)


@pytest.mark.parametrize(
    ("stats", "passed", "needle"),
    [
        (WindowStats(49, 0, 10.0), None, "inconclusive: 49 of 50 requests needed"),
        (WindowStats(100, 0, 10.0), True, "100 requests, error rate 0.00%, p99 10.0 ms"),
        (WindowStats(100, 1, 10.0), True, "error rate 1.00%"),  # at the limit passes
        (WindowStats(100, 2, 10.0), False, "error rate 2.00% > maxErrorRate 1.00%"),
        (WindowStats(100, 0, 300.0), False, "p99 latency 300.0 ms > maxLatencyP99Ms 250 ms"),
        (WindowStats(100, 5, 300.0), False, "maxErrorRate 1.00%; p99 latency 300.0 ms"),  # both named
        (WindowStats(100, 0, None), True, "p99 n/a"),
    ],
)
def test_verdict_table(stats, passed, needle):
    result = judge_analysis(stats, STRICT, T0)
    assert result.passed is passed
    assert needle in result.message
    assert result.requests == stats.requests and result.at == T0


def test_zero_requests_never_pass_even_with_min_requests_zero():
    # minRequests 0 (stored before the CRD minimum of 1) counts as 1: no traffic, no verdict, no promotion.
    analysis = Analysis(min_requests=0, max_error_rate=0.0)
    assert analysis.min_requests == 1
    result = judge_analysis(WindowStats(0, 0, None), analysis, T0)
    assert result.passed is None and "inconclusive" in result.message


def test_snapshot_round_trips_through_json_shaped_status():
    snap = MetricsSnapshot(T0, {"http://10.0.0.7:8080": pod(12, 3, {0.005: 4, 1.0: 12, INF: 12})})
    data = snap.to_dict()
    assert data["pods"]["http://10.0.0.7:8080"]["buckets"]["+Inf"] == 12
    assert MetricsSnapshot.from_dict(data) == snap


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"takenAt": T0.isoformat(), "pods": {}}, "snapshot.format"),
        ({"format": 1, "takenAt": "yesterday", "pods": {}}, "snapshot.takenAt"),
        ({"format": 1, "pods": {}}, "snapshot.takenAt"),
    ],
)
def test_unreadable_snapshot_names_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        MetricsSnapshot.from_dict(data)
