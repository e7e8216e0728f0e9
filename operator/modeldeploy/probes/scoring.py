"""Pure judgement of model answers: scikit-learn scores, threshold and champion/challenger verdicts, and the
output shape of a smoke response.

Public: ``Predictions``, ``canonical_label(value)``, ``score(metric, labels, predictions)``,
``higher_is_better(metric)``, ``judge_scores(metric, threshold, score, active_score, max_regression, rows,
at)``, ``output_shape(path, body)``, ``shape_matches(expected, actual)``.

Labels are compared as text after turning whole floats into integers, so a CSV label ``1`` (read as 1.0)
equals a predicted class ``1`` and ``setosa`` equals ``setosa``. For F1 on two classes the positive class is
the model's second class (scikit-learn's ``classes_[1]``); with more classes F1 is macro-averaged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modeldeploy.api import HIGHER_IS_BETTER, CheckResult, Metric


@dataclass(frozen=True)
class Predictions:
    """What a model server answered for a batch of rows, in row order."""

    predicted: list[Any]
    probabilities: list[list[float]] | None = None  # one row per input row, columns in `classes` order
    classes: list[Any] | None = None


def canonical_label(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value.strip()
        return str(int(number)) if number.is_integer() else value.strip()
    return str(value)


def higher_is_better(metric: Metric | str) -> bool:
    return Metric(metric) in HIGHER_IS_BETTER


def score(metric: Metric | str, labels: Sequence[Any], predictions: Predictions) -> float:
    """The metric of `predictions` against the true `labels`; ValueError (with the reason) if it cannot be
    computed, e.g. ROC-AUC from a model that gives no probabilities."""
    from sklearn import metrics as skm  # scikit-learn is needed only by the quality gate / evaluation

    metric = Metric(metric)
    if len(labels) != len(predictions.predicted):
        raise ValueError(f"{len(labels)} labels but {len(predictions.predicted)} predictions")
    if not labels:
        raise ValueError("no rows to score")
    if metric in (Metric.rmse, Metric.mae):
        truth = [_number(v, "label") for v in labels]
        guess = [_number(v, "prediction") for v in predictions.predicted]
        if metric == Metric.mae:
            return float(skm.mean_absolute_error(truth, guess))
        return float(math.sqrt(skm.mean_squared_error(truth, guess)))
    truth_text = [canonical_label(v) for v in labels]
    if metric == Metric.accuracy:
        return float(skm.accuracy_score(truth_text, [canonical_label(v) for v in predictions.predicted]))
    classes = [canonical_label(c) for c in predictions.classes] if predictions.classes else None
    if metric == Metric.f1:
        guess_text = [canonical_label(v) for v in predictions.predicted]
        known = classes or sorted(set(truth_text) | set(guess_text))
        if len(known) == 2:
            return float(skm.f1_score(truth_text, guess_text, pos_label=known[1], average="binary"))
        return float(skm.f1_score(truth_text, guess_text, average="macro"))
    # roc_auc
    if predictions.probabilities is None or not classes:
        raise ValueError("roc_auc needs class probabilities (predict_proba) and the model's classes")
    if len(classes) == 2:
        positive = [row[1] for row in predictions.probabilities]
        return float(skm.roc_auc_score([t == classes[1] for t in truth_text], positive))
    return float(skm.roc_auc_score(truth_text, predictions.probabilities, multi_class="ovr", labels=classes))


def judge_scores(
    metric: Metric | str,
    threshold: float,
    candidate_score: float,
    active_score: float | None,
    max_regression: float | None,
    rows: int,
    at: datetime,
) -> CheckResult:
    """Absolute threshold, then (when an active score and a margin are given) champion/challenger."""
    metric = Metric(metric)
    up = higher_is_better(metric)
    name = metric.value
    figures = f"{name} {candidate_score:.4f} on {rows} rows"
    if active_score is not None:
        figures += f" (active model {active_score:.4f})"
    problems = []
    if (candidate_score < threshold) if up else (candidate_score > threshold):
        problems.append(f"{name} {candidate_score:.4f} {'<' if up else '>'} threshold {threshold:g}")
    if active_score is not None and max_regression is not None:
        worse_by = (active_score - candidate_score) if up else (candidate_score - active_score)
        if worse_by > max_regression + 1e-12:
            problems.append(
                f"{name} is {worse_by:.4f} worse than the active model's {active_score:.4f} on the same rows "
                f"(maxRegression {max_regression:g})"
            )
    passed = not problems
    message = figures if passed else "; ".join(problems) + f" ({figures})"
    return CheckResult(
        passed=passed, message=message, score=candidate_score, active_score=active_score, at=at
    )


def output_shape(path: str, body: Any) -> list[int] | None:
    """Shape of a smoke answer: v2 ``outputs[0].shape``; otherwise the ``predictions`` array's shape."""
    if isinstance(body, dict) and isinstance(body.get("outputs"), list) and body["outputs"]:
        shape = body["outputs"][0].get("shape") if isinstance(body["outputs"][0], dict) else None
        return [int(d) for d in shape] if isinstance(shape, list) else None
    if isinstance(body, dict) and "predictions" in body:
        return _nested_shape(body["predictions"])
    return None


def shape_matches(expected: Sequence[int], actual: Sequence[int] | None) -> bool:
    """-1 in `expected` matches any size along that axis."""
    if actual is None or len(expected) != len(actual):
        return False
    return all(e == -1 or e == a for e, a in zip(expected, actual, strict=True))


def _nested_shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not a number (rmse/mae need numeric labels)") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} {value!r} is not finite")
    return number
