"""Live figures from late labels: a window of the last N labelled rows per revision, exported as sums.

Each worker process keeps its own window and exports its sums as `livesum` gauges; the figures (accuracy,
macro f1, rmse, mae) are computed at scrape time from the sums of all live workers, so they are right for
the pod as a whole (over up to N rows per worker).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from .feedback import Label

WINDOW_LABELS = ("prediction_revision",)
MAX_REVISIONS = 4
MAX_CLASSES_FOR_F1 = 50
FIGURES = {
    "accuracy": "Share of labelled rows predicted right, over the window.",
    "f1": "Macro-averaged F1 over the classes seen in the window.",
    "rmse": "Root mean squared error of labelled rows, over the window.",
    "mae": "Mean absolute error of labelled rows, over the window.",
}


@dataclass
class WindowSums:
    """What the figures are computed from; sums of several workers add up."""

    rows: float = 0.0
    correct: float = 0.0
    squared_error: float = 0.0
    absolute_error: float = 0.0
    outcomes: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)


def compute_figures(sums: WindowSums, classifier: bool) -> dict[str, float]:
    """accuracy and macro f1 for classifiers, rmse and mae for regressors (pure)."""
    n = sums.rows
    if n <= 0:
        return {}
    if not classifier:
        return {"rmse": math.sqrt(max(sums.squared_error, 0.0) / n), "mae": max(sums.absolute_error, 0.0) / n}
    counts: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for (cls, outcome), count in sums.outcomes.items():
        counts[cls][outcome] = count
    scores = []
    for c in counts.values():
        tp, fp, fn = c.get("tp", 0.0), c.get("fp", 0.0), c.get("fn", 0.0)
        if tp + fp + fn > 0:
            scores.append(2 * tp / (2 * tp + fp + fn))
    figures = {"accuracy": sums.correct / n}
    if scores:
        figures["f1"] = sum(scores) / len(scores)
    return figures


@dataclass
class RevisionWindow:
    """The last `size` labelled rows of one revision; an evicted row is subtracted from the sums."""

    size: int
    classifier: bool
    rows: collections.deque[tuple[Any, Any]] = field(default_factory=collections.deque)
    sums: WindowSums = field(default_factory=WindowSums)

    def _apply(self, predicted: Any, label: Any, sign: int) -> None:
        sums = self.sums
        sums.rows += sign
        if not self.classifier:
            error = float(predicted) - label
            sums.squared_error += sign * error * error
            sums.absolute_error += sign * abs(error)
        elif str(predicted) == str(label):
            sums.correct += sign
            sums.outcomes[(str(label), "tp")] += sign
        else:
            sums.outcomes[(str(label), "fn")] += sign
            sums.outcomes[(str(predicted), "fp")] += sign

    def add(self, predicted: Any, label: Any) -> None:
        self.rows.append((predicted, label))
        self._apply(predicted, label, 1)
        if len(self.rows) > self.size:
            self._apply(*self.rows.popleft(), -1)


class LiveFigures:
    """Scores labels into per-revision windows (at most MAX_REVISIONS, least recently labelled dropped) and
    keeps the per-process gauges in step."""

    def __init__(
        self, registry: CollectorRegistry, base: dict[str, str], window_rows: int, classifier: bool
    ) -> None:
        self.window_rows = window_rows
        self.classifier = classifier
        self.base = base
        names = [*base, *WINDOW_LABELS]
        self.windows: collections.OrderedDict[str, RevisionWindow] = collections.OrderedDict()
        self.labels = Counter(
            "modelserve_feedback_labels",
            "Feedback labels by result (scored, duplicate, refused).",
            [*base, "result"],
            registry=registry,
        )
        self.gauges = {
            name: Gauge(
                f"modelserve_feedback_window_{name}",
                f"Window sum of {name.replace('_', ' ')} over the last labelled rows (per worker, summed).",
                names,
                registry=registry,
                multiprocess_mode="livesum",
            )
            for name in ("rows", "correct", "squared_error", "absolute_error")
        }
        self.outcomes = Gauge(
            "modelserve_feedback_window_outcomes",
            "Window counts of true positives, false positives and false negatives per class.",
            [*names, "class", "outcome"],
            registry=registry,
            multiprocess_mode="livesum",
        )

    def count(self, result: str, amount: int) -> None:
        self.labels.labels(*self.base.values(), result).inc(amount)

    def score(self, labels: Iterable[Label]) -> None:
        touched: set[str] = set()
        for label in labels:
            revision = label.prediction.revision
            window = self.windows.get(revision)
            if window is None:
                if len(self.windows) >= MAX_REVISIONS:
                    dropped, _ = self.windows.popitem(last=False)
                    self.export(dropped, RevisionWindow(self.window_rows, self.classifier))
                window = self.windows[revision] = RevisionWindow(self.window_rows, self.classifier)
            self.windows.move_to_end(revision)
            window.add(label.prediction.predicted[label.row], label.label)
            touched.add(revision)
        for revision in touched:
            self.export(revision, self.windows[revision])

    def export(self, revision: str, window: RevisionWindow) -> None:
        values = [*self.base.values(), revision]
        sums = window.sums
        self.gauges["rows"].labels(*values).set(sums.rows)
        self.gauges["correct"].labels(*values).set(sums.correct)
        self.gauges["squared_error"].labels(*values).set(sums.squared_error)
        self.gauges["absolute_error"].labels(*values).set(sums.absolute_error)
        if len({cls for cls, _ in sums.outcomes}) <= MAX_CLASSES_FOR_F1:
            for (cls, outcome), count in sums.outcomes.items():
                self.outcomes.labels(*values, cls, outcome).set(count)


def derived_exposition(families: Iterable[Any], classifier: bool) -> bytes:
    """`modelserve_feedback_<figure>` gauges computed from the (worker-summed) window sums (pure)."""
    by_labels: dict[tuple[tuple[str, str], ...], WindowSums] = collections.defaultdict(WindowSums)
    for family in families:
        if not family.name.startswith("modelserve_feedback_window_"):
            continue
        part = family.name.removeprefix("modelserve_feedback_window_")
        for sample in family.samples:
            labels = dict(sample.labels)
            if part == "outcomes":
                cls, outcome = labels.pop("class"), labels.pop("outcome")
                by_labels[tuple(sorted(labels.items()))].outcomes[(cls, outcome)] += sample.value
            elif part in ("rows", "correct", "squared_error", "absolute_error"):
                sums = by_labels[tuple(sorted(labels.items()))]
                setattr(sums, part, getattr(sums, part) + sample.value)
    lines: dict[str, list[str]] = {name: [] for name in FIGURES}
    for key, sums in by_labels.items():
        shown = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
        for name, value in compute_figures(sums, classifier).items():
            lines[name].append(f"modelserve_feedback_{name}{{{shown}}} {value!r}")
    out = []
    for name, samples in lines.items():
        if samples:
            out += [
                f"# HELP modelserve_feedback_{name} {FIGURES[name]}",
                f"# TYPE modelserve_feedback_{name} gauge",
            ]
            out += samples
    return ("\n".join(out) + "\n").encode() if out else b""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
