"""Drift of the inputs and the predicted classes: a reference profile, a rolling window per worker, PSI.

The profile has 10 quantile bins per numeric feature (edges from the reference data) and, for a categorical
feature, its most frequent reference values plus "other"; predicted classes are profiled by the model's own
answers on the reference rows. Each worker counts the bins of its last rows and exports the counts as
`livesum` gauges (written at most once a second); the population stability index per feature is computed at
scrape time from the counts of all live workers.
"""

from __future__ import annotations

import collections
import csv
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge

EPSILON = 1e-4  # share given to an empty bin, so an empty bin costs a bounded amount instead of infinity
BINS = 10
MAX_CATEGORIES = 20
OTHER = "other"
PREDICTED = "predicted_class"
FLUSH_SECONDS = 1.0


@dataclass(frozen=True)
class FeatureProfile:
    """One feature's bins and the reference's share of each (shares sum to 1)."""

    name: str
    column: int
    edges: np.ndarray | None  # numeric: inner edges (searchsorted); None for categories
    categories: dict[str, int] | None  # categorical: value -> bin; the last bin is "other"
    expected: np.ndarray

    @property
    def bins(self) -> int:
        return len(self.expected)

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        if self.edges is not None:
            numbers = np.asarray(values, dtype=np.float64)
            return np.searchsorted(self.edges, numbers, side="right")
        assert self.categories is not None
        other = len(self.categories)
        return np.fromiter(
            (self.categories.get(str(v), other) for v in values), dtype=np.int64, count=len(values)
        )

    def labels(self) -> list[str]:
        if self.categories is not None:
            return [*self.categories, OTHER]
        return [str(i) for i in range(self.bins)]


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total else np.full(len(counts), 1 / len(counts))
    return np.maximum(shares, EPSILON)


def numeric_profile(name: str, column: int, values: np.ndarray) -> FeatureProfile:
    """Quantile edges of the reference (ties merged), so each bin holds about a tenth of it (pure)."""
    numbers = np.asarray(values, dtype=np.float64)
    numbers = numbers[np.isfinite(numbers)]
    edges = (
        np.unique(np.quantile(numbers, np.linspace(0, 1, BINS + 1)[1:-1])) if len(numbers) else np.array([])
    )
    counts = np.bincount(np.searchsorted(edges, numbers, side="right"), minlength=len(edges) + 1)
    return FeatureProfile(name, column, edges, None, _shares(counts.astype(np.float64)))


def categorical_profile(name: str, column: int, values: Iterable[Any]) -> FeatureProfile:
    """The most frequent reference values, the rest as "other" (pure)."""
    seen = collections.Counter(str(v) for v in values)
    categories = {value: i for i, (value, _) in enumerate(seen.most_common(MAX_CATEGORIES))}
    counts = np.zeros(len(categories) + 1)
    for value, count in seen.items():
        counts[categories.get(value, len(categories))] += count
    return FeatureProfile(name, column, None, categories, _shares(counts))


def psi(expected: np.ndarray, counts: np.ndarray) -> float:
    """Population stability index of observed bin counts against expected shares (pure)."""
    if counts.sum() <= 0:
        return 0.0
    actual = _shares(counts.astype(np.float64))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def read_reference(path: str, feature_names: list[str], max_rows: int = 100_000) -> dict[str, list[str]]:
    """Columns of a CSV reference file (header row with the feature names), as text."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in feature_names if f not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"drift reference {path}: no column for feature(s) {missing[:5]}")
        columns: dict[str, list[str]] = {f: [] for f in feature_names}
        for i, row in enumerate(reader):
            if i >= max_rows:
                break
            for f in feature_names:
                columns[f].append(row[f])
    return columns


def build_profiles(
    columns: dict[str, list[str]], feature_names: list[str], numeric: Callable[[str], bool]
) -> list[FeatureProfile]:
    profiles = []
    for index, name in enumerate(feature_names):
        if name not in columns:
            continue
        raw = columns[name]
        if numeric(name):
            profiles.append(numeric_profile(name, index, np.array([float(v) for v in raw if v != ""])))
        else:
            profiles.append(categorical_profile(name, index, raw))
    return profiles


class DriftWindow:
    """Bin counts of this worker's last `window_rows` rows (whole requests leave the window together).

    All counts live in one flat vector (each profile at its offset); the numeric features are binned in one
    vectorised comparison against a padded edge matrix, so a request costs a few numpy calls in all."""

    def __init__(
        self,
        profiles: list[FeatureProfile],
        window_rows: int,
        registry: CollectorRegistry,
        base: dict[str, str],
    ) -> None:
        self.profiles = profiles
        self.window_rows = window_rows
        sizes = [p.bins for p in profiles]
        self.offsets = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
        self.total = int(sum(sizes))
        self.counts = np.zeros(self.total, dtype=np.int64)
        numeric = [i for i, p in enumerate(profiles) if p.edges is not None]
        self.numeric_columns = np.array([profiles[i].column for i in numeric], dtype=np.int64)
        self.numeric_offsets = self.offsets[numeric]
        width = max((len(profiles[i].edges) for i in numeric), default=0)  # type: ignore[arg-type]
        self.edges = np.full((len(numeric), width), np.inf)
        for row, i in enumerate(numeric):
            edges = profiles[i].edges
            assert edges is not None
            self.edges[row, : len(edges)] = edges
        self.categorical = [(i, p) for i, p in enumerate(profiles) if p.edges is None]
        self.batches: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self.rows = 0
        self.flushed = 0.0
        self.base = list(base.values())
        self.gauge = Gauge(
            "modelserve_drift_window_bin",
            "Rows of the drift window in each reference bin, per feature (per worker, summed).",
            [*base, "feature", "bin"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.children = [self.gauge.labels(*self.base, p.name, b) for p in profiles for b in p.labels()]

    def bin_indices(self, rows: np.ndarray, predicted: np.ndarray | None) -> np.ndarray:
        """Flat bin index of every (row, profile) pair (pure but for the profiles)."""
        parts = []
        if len(self.numeric_columns):
            values = np.asarray(rows[:, self.numeric_columns], dtype=np.float64)
            bins = (values[:, :, None] >= self.edges[None, :, :]).sum(axis=2)
            parts.append((bins + self.numeric_offsets).ravel())
        for index, profile in self.categorical:
            values = predicted if profile.name == PREDICTED else rows[:, profile.column]
            if values is not None:
                parts.append(profile.bin_of(values.reshape(-1)) + self.offsets[index])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def observe(self, rows: np.ndarray, predicted: np.ndarray | None) -> None:
        added = np.bincount(self.bin_indices(rows, predicted), minlength=self.total)
        self.counts += added
        self.batches.append((len(rows), added))
        self.rows += len(rows)
        while self.rows > self.window_rows and len(self.batches) > 1:
            size, old = self.batches.popleft()
            self.rows -= size
            self.counts -= old
        now = time.monotonic()
        if now - self.flushed >= FLUSH_SECONDS:
            self.flush(now)

    def flush(self, now: float) -> None:
        self.flushed = now
        for child, count in zip(self.children, self.counts.tolist(), strict=True):
            child.set(count)


def derived_drift(families: Iterable[Any], profiles: list[FeatureProfile]) -> bytes:
    """`modelserve_feature_drift{feature}` (PSI) and the worst feature, from the summed bin counts (pure)."""
    wanted = {p.name: p for p in profiles}
    counts: dict[str, dict[str, float]] = collections.defaultdict(dict)
    base: dict[str, str] = {}
    for family in families:
        if family.name != "modelserve_drift_window_bin":
            continue
        for sample in family.samples:
            labels = dict(sample.labels)
            feature, bin_ = labels.pop("feature"), labels.pop("bin")
            base = labels
            counts[feature][bin_] = counts[feature].get(bin_, 0.0) + sample.value
    if not counts:
        return b""
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(base.items()))
    scores = {}
    for name, bins in counts.items():
        profile = wanted.get(name)
        if profile is None:
            continue
        observed = np.array([bins.get(label, 0.0) for label in profile.labels()])
        scores[name] = psi(profile.expected, observed)
    lines = [
        "# HELP modelserve_feature_drift Population stability index of the window against the reference.",
        "# TYPE modelserve_feature_drift gauge",
        *(f'modelserve_feature_drift{{{shown},feature="{n}"}} {s!r}' for n, s in scores.items()),
    ]
    if scores:
        worst = max(scores, key=lambda n: scores[n])
        lines += [
            "# HELP modelserve_feature_drift_worst The largest per-feature index, labelled with its feature.",
            "# TYPE modelserve_feature_drift_worst gauge",
            f'modelserve_feature_drift_worst{{{shown},feature="{worst}"}} {scores[worst]!r}',
        ]
    return ("\n".join(lines) + "\n").encode()


def load_drift(
    path: str,
    feature_names: tuple[str, ...],
    numeric: Callable[[str], bool],
    wanted: list[str],
    max_features: int,
    predict: Callable[[np.ndarray], dict[str, np.ndarray]] | None,
) -> list[FeatureProfile]:
    """The profiles for `wanted` features (all when empty), plus the predicted classes when `predict` is
    given (the model's answers on the reference rows); ValueError naming what is wrong."""
    chosen = wanted or list(feature_names)
    unknown = [f for f in chosen if f not in feature_names]
    if unknown:
        raise ValueError(f"drift features {unknown[:5]} are not among the model's features")
    if len(chosen) > max_features:
        raise ValueError(
            f"{len(chosen)} drift features; at most {max_features} (MODELSERVE_DRIFT_MAX_FEATURES)"
        )
    names = list(feature_names)
    columns = read_reference(path, [f for f in names if f in chosen or predict is not None])
    profiles = [p for p in build_profiles(columns, names, numeric) if p.name in chosen]
    if predict is not None and all(numeric(f) for f in names):
        rows = np.array(
            [[float(v) for v in values] for values in zip(*(columns[f] for f in names), strict=True)]
        )
        predicted = predict(rows).get("predict")
        if predicted is not None:
            profiles.append(categorical_profile(PREDICTED, -1, predicted.reshape(-1).tolist()))
    return profiles
