"""Prometheus metrics, every series labelled model/version/revision/color.

With several workers, prometheus_client's multiprocess mode is used: PROMETHEUS_MULTIPROC_DIR must be
set (by the server, under /tmp) before prometheus_client is imported.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

from .bypass.observers import Add, fast_add, fast_observe

disable_created_metrics()  # the *_created series double the exposition for no operational value

BASE_LABELS = ("model", "version", "revision", "color")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def public_add(child: Any) -> Add:
    return child.inc  # type: ignore[no-any-return]


def public_observe(child: Any) -> Add:
    return child.observe  # type: ignore[no-any-return]


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """Children are bound once per label set so the hot path is a dict lookup and an increment.

    `bypass` picks the observers: prometheus_client's internals (`fast_add`/`fast_observe`) or its public API.
    """

    def __init__(self, labels: dict[str, str], bypass: bool = True) -> None:
        self._add = fast_add if bypass else public_add
        self._observe = fast_observe if bypass else public_observe
        self.registry = CollectorRegistry()
        self.labels = labels
        values = [labels[k] for k in BASE_LABELS]
        self._define_request_metrics(self.registry)
        self._define_model_metrics(self.registry, values)
        self._values = values
        # Hot-path observers, bound once per label set.
        self._request_children: dict[tuple[str, int, str], Add] = {}
        self._latency_children: dict[tuple[str, str], Add] = {}
        self._class_children: dict[Any, Add] = {}
        self._inflight_add = self._add(self.inflight)
        self._observe_batch_size = self._observe(self.batch_size)
        self._observe_predict_latency = self._observe(self.predict_latency)

    def _define_request_metrics(self, reg: CollectorRegistry) -> None:
        """Per-request families, labelled by route: children are bound lazily on the hot path."""
        self._requests = Counter(
            "modelserve_requests",
            "Requests by route, status code and protocol (http, grpc: a gRPC call counts under the route and "
            "status code of its REST equivalent).",
            [*BASE_LABELS, "route", "status_code", "protocol"],
            registry=reg,
        )
        self._request_latency = Histogram(
            "modelserve_request_duration_seconds",
            "Time from request start to response, by route and protocol.",
            [*BASE_LABELS, "route", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )

    def _define_model_metrics(self, reg: CollectorRegistry, values: list[str]) -> None:
        """The model's own figures, bound once to this server's labels."""
        self.predict_latency = Histogram(
            "modelserve_predict_duration_seconds",
            "Time the model spent on one (batched) prediction call.",
            BASE_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        ).labels(*values)
        self.batch_size = Histogram(
            "modelserve_batch_size",
            "Rows per model call after micro-batching.",
            BASE_LABELS,
            buckets=BATCH_BUCKETS,
            registry=reg,
        ).labels(*values)
        self.inflight = Gauge(
            "modelserve_inflight_requests",
            "Requests being handled right now.",
            BASE_LABELS,
            registry=reg,
            multiprocess_mode="livesum",
        ).labels(*values)
        self.load_seconds = Gauge(
            "modelserve_model_load_seconds",
            "Seconds it took to load and warm the model.",
            BASE_LABELS,
            registry=reg,
            multiprocess_mode="max",
        ).labels(*values)
        self.ready = Gauge(
            "modelserve_ready",
            "1 when the model is loaded, warmed and not draining.",
            BASE_LABELS,
            registry=reg,
            multiprocess_mode="min",
        ).labels(*values)
        self._predictions = Counter(
            "modelserve_predictions",
            "Predicted rows by predicted class.",
            [*BASE_LABELS, "class"],
            registry=reg,
        )
        self.prediction_values = Histogram(
            "modelserve_prediction_value",
            "Predicted values of regression models.",
            BASE_LABELS,
            buckets=(-1000, -100, -10, -1, 0, 1, 10, 100, 1000),
            registry=reg,
        ).labels(*values)

    def inflight_add(self, amount: float) -> None:
        self._inflight_add(amount)

    def observe_request(self, route: str, status: int, seconds: float, protocol: str = "http") -> None:
        key = (route, status, protocol)
        count = self._request_children.get(key)
        if count is None:
            count = self._request_children[key] = self._add(
                self._requests.labels(*self._values, route, str(status), protocol)
            )
        count(1)
        latency = self._latency_children.get((route, protocol))
        if latency is None:
            latency = self._latency_children[route, protocol] = self._observe(
                self._request_latency.labels(*self._values, route, protocol)
            )
        latency(seconds)

    def observe_batch(
        self, rows: int, seconds: float, outputs: dict[str, np.ndarray], classifier: bool
    ) -> None:
        self._observe_batch_size(rows)
        self._observe_predict_latency(seconds)
        predicted = outputs.get("predict")
        if predicted is None:
            return
        if classifier:
            # Counter beats np.unique by ~20x for the small batches an online server sees.
            for value, count in collections.Counter(predicted.tolist()).items():
                add = self._class_children.get(value)
                if add is None:
                    add = self._class_children[value] = self._add(
                        self._predictions.labels(*self._values, str(value))
                    )
                add(count)
        elif predicted.dtype.kind in "fiu":
            for value in predicted.reshape(-1)[:1024].tolist():
                self.prediction_values.observe(value)

    def exposition(self, derive: Callable[[list[Any]], bytes] | None = None) -> bytes:
        """The text exposition (every worker's samples combined), plus what `derive` computes from them."""
        registry = self.registry
        if multiprocess_enabled():
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)
        if derive is None:
            return generate_latest(registry)
        families = list(registry.collect())
        return generate_latest(Collected(families)) + derive(families)


class Collected:
    """Already collected families, shaped like a registry for generate_latest (one collection per scrape)."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def mark_worker_dead(pid: int) -> None:
    if multiprocess_enabled():
        prom_multiprocess.mark_process_dead(pid)
