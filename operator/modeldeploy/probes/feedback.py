"""Pure maths of the live judgement on late labels: the window sums modelserve exports per pod -> one figure.

Public: ``LabelSums``, ``parse_label_sums(text, model, revision)``, ``label_figure(metric, sums)``,
``judge_feedback(evaluation, sums, pods, unreachable, at)``.

Each pod exports the sums of its window of labelled rows per ``prediction_revision`` (its workers already
summed); the operator adds the pods' sums and computes the figure the spec names, the same way modelserve
computes ``modelserve_feedback_<metric>`` for one pod.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.api import CheckResult, Metric, MonitoringEvaluation
from modeldeploy.probes.scoring import judge_scores

WINDOW_PREFIX = "modelserve_feedback_window_"
_SUMS = ("rows", "correct", "squared_error", "absolute_error")


@dataclass
class LabelSums:
    """Window sums of labelled rows of one revision; several pods' sums add up."""

    rows: float = 0.0
    correct: float = 0.0
    squared_error: float = 0.0
    absolute_error: float = 0.0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, other: LabelSums) -> LabelSums:
        return LabelSums(
            self.rows + other.rows,
            self.correct + other.correct,
            self.squared_error + other.squared_error,
            self.absolute_error + other.absolute_error,
            self.outcomes + other.outcomes,
        )


def parse_label_sums(text: str, model: str, revision: str) -> LabelSums:
    """The sums of `model`'s labelled predictions made by `revision`, from one pod's /metrics text."""
    sums = LabelSums()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(WINDOW_PREFIX):
            continue
        part = family.name.removeprefix(WINDOW_PREFIX)
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or labels.get("prediction_revision") != revision:
                continue
            if part == "outcomes":
                sums.outcomes[(labels.get("class", ""), labels.get("outcome", ""))] += int(sample.value)
            elif part in _SUMS:
                setattr(sums, part, getattr(sums, part) + sample.value)
    return sums


def label_figure(metric: Metric, sums: LabelSums) -> float | None:
    """accuracy, macro f1, rmse or mae over the summed window; None when the window cannot give it."""
    n = sums.rows
    if n <= 0:
        return None
    if metric == Metric.accuracy:
        return sums.correct / n
    if metric == Metric.rmse:
        return math.sqrt(max(sums.squared_error, 0.0) / n)
    if metric == Metric.mae:
        return max(sums.absolute_error, 0.0) / n
    if metric == Metric.f1:
        per_class: dict[str, dict[str, float]] = {}
        for (cls, outcome), count in sums.outcomes.items():
            per_class.setdefault(cls, {})[outcome] = count
        scores = []
        for counts in per_class.values():
            tp, fp, fn = counts.get("tp", 0.0), counts.get("fp", 0.0), counts.get("fn", 0.0)
            if tp + fp + fn > 0:
                scores.append(2 * tp / (2 * tp + fp + fn))
        return sum(scores) / len(scores) if scores else None
    return None


def judge_feedback(
    evaluation: MonitoringEvaluation,
    revision: str,
    sums: LabelSums,
    pods: int,
    unreachable: int,
    at: datetime,
) -> CheckResult:
    """Passed/failed on the threshold once `minLabels` labelled rows are in; inconclusive before."""
    where = f"{pods} pod(s)" + (f", {unreachable} unreachable" if unreachable else "")
    rows = int(sums.rows)
    if rows < evaluation.min_labels:
        return CheckResult(
            passed=None,
            message=f"inconclusive: {rows} of {evaluation.min_labels} labelled rows (minLabels) for revision "
            f"{revision} on {where}",
            at=at,
        )
    figure = label_figure(evaluation.metric, sums)
    if figure is None:
        return CheckResult(
            passed=None,
            message=f"inconclusive: the labels of revision {revision} give no {evaluation.metric.value} "
            "(a classifier's metric on a regressor, or the other way round)",
            at=at,
        )
    result = judge_scores(evaluation.metric, evaluation.threshold, figure, None, None, rows, at)
    return result.model_copy(update={"message": f"{result.message} labelled by clients ({where})"})
