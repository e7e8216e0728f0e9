"""Rollout analysis through a Prometheus server (PromQL over the HTTP API), when an address is configured.

Public: ``PrometheusError``, ``promql_selector(selector, extra, errors_only)``, ``window_queries(selector,
since, extra)``, ``prometheus_window_stats(http, address, selector, since, now, extra)``.

The window is [since, now]. Counts are exact deltas per series, ``x - x @ since``, rather than
``increase(x[w])``: a series born inside the window (the first 5xx answer creates the
``status_code="500"`` series) has no earlier sample, and ``increase`` would drop its first value -- the very
errors the analysis looks for. A series absent at `since` (new pod, new status code) counts fully, and one
that went backwards (a restarted container) counts from its restart: ``((x - x @ since) >= 0) or x``.
p99 is ``histogram_quantile(0.99, sum by (le) (<bucket deltas>))``, the same interpolation as direct mode.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from modeldeploy.probes.analysis_math import (
    INFERENCE_ROUTE_REGEX,
    LATENCY_BUCKET_SAMPLE,
    REQUESTS_SAMPLE,
    SeriesSelector,
    WindowStats,
)
from modeldeploy.probes.bounded import PROMETHEUS_MAX_BYTES, BoundedHttp


class PrometheusError(Exception):
    """Prometheus could not answer; the message names the address and the reason."""


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def promql_selector(
    selector: SeriesSelector, extra: Mapping[str, str] | None = None, errors_only: bool = False
) -> str:
    matchers = [f"{k}={_quote(v)}" for k, v in {**selector.labels(), **(extra or {})}.items()]
    matchers.append(f"route=~{_quote(INFERENCE_ROUTE_REGEX)}")
    if errors_only:
        matchers.append('status_code=~"5.."')
    return "{" + ",".join(matchers) + "}"


def _delta(series: str, since: float) -> str:
    return f"((({series}) - ({series} @ {since:.3f})) >= 0) or ({series})"


def window_queries(
    selector: SeriesSelector, since: datetime, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The three PromQL queries of one analysis pass (requests, errors, p99 seconds)."""
    ts = since.timestamp()
    requests = REQUESTS_SAMPLE + promql_selector(selector, extra)
    errors = REQUESTS_SAMPLE + promql_selector(selector, extra, errors_only=True)
    buckets = LATENCY_BUCKET_SAMPLE + promql_selector(selector, extra)
    return {
        "requests": f"sum({_delta(requests, ts)})",
        "errors": f"sum({_delta(errors, ts)})",
        "p99": f"histogram_quantile(0.99, sum by (le) ({_delta(buckets, ts)}))",
    }


async def _instant(http: BoundedHttp, address: str, query: str, at: float) -> float | None:
    url = f"{address.rstrip('/')}/api/v1/query"
    try:
        response = await http.get(
            url, params={"query": query, "time": f"{at:.3f}"}, max_bytes=PROMETHEUS_MAX_BYTES
        )
    except httpx.HTTPError as err:
        raise PrometheusError(f"{url}: {type(err).__name__}: {err}") from None
    try:
        doc: dict[str, Any] = response.json()
    except ValueError:
        raise PrometheusError(f"{url} answered HTTP {response.status_code}, not JSON") from None
    if response.status_code != 200 or doc.get("status") != "success":
        raise PrometheusError(f"{url} answered HTTP {response.status_code}: {doc.get('error', doc)}")
    result = doc.get("data", {}).get("result", [])
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


async def prometheus_window_stats(
    http: BoundedHttp,
    address: str,
    selector: SeriesSelector,
    since: datetime,
    now: datetime,
    extra: Mapping[str, str] | None = None,
) -> WindowStats:
    queries = window_queries(selector, since, extra)
    at = now.timestamp()
    requests, errors, p99 = await asyncio.gather(
        *(_instant(http, address, queries[k], at) for k in ("requests", "errors", "p99"))
    )
    return WindowStats(
        requests=requests or 0.0,
        errors=errors or 0.0,
        latency_p99_ms=None if p99 is None else round(p99 * 1000.0, 3),
    )
