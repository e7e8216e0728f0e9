"""The live judgement on late labels: the window sums modelserve exports per pod, added up and judged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modeldeploy.api import Metric, MonitoringEvaluation
from modeldeploy.probes.feedback import LabelSums, judge_feedback, label_figure, parse_label_sums

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
BASE = 'model="iris",version="2",revision="r2",color="green"'


def pod_metrics(revision: str, rows: int, correct: int, *, model: str = "iris") -> str:
    labels = BASE.replace('model="iris"', f'model="{model}"') + f',prediction_revision="{revision}"'
    wrong = rows - correct
    return "\n".join(
        [
            "# TYPE modelserve_feedback_window_rows gauge",
            f"modelserve_feedback_window_rows{{{labels}}} {rows}",
            "# TYPE modelserve_feedback_window_correct gauge",
            f"modelserve_feedback_window_correct{{{labels}}} {correct}",
            "# TYPE modelserve_feedback_window_outcomes gauge",
            f'modelserve_feedback_window_outcomes{{{labels},class="0",outcome="tp"}} {correct}',
            f'modelserve_feedback_window_outcomes{{{labels},class="1",outcome="fn"}} {wrong}',
            f'modelserve_feedback_window_outcomes{{{labels},class="0",outcome="fp"}} {wrong}',
            "",
        ]
    )


def feedback_spec(**extra) -> MonitoringEvaluation:
    return MonitoringEvaluation.model_validate(
        {"source": "feedback", "metric": "accuracy", "threshold": 0.8, "minLabels": 20, **extra}
    )


def test_pods_sums_for_the_revision_add_up_and_other_revisions_and_models_are_left_out():
    pods = [pod_metrics("r2", 10, 9), pod_metrics("r2", 30, 15), pod_metrics("r1", 50, 0),
            pod_metrics("r2", 40, 0, model="wine")]  # fmt: skip
    total = LabelSums()
    for text in pods:
        total = total.add(parse_label_sums(text, "iris", "r2"))
    assert (total.rows, total.correct) == (40, 24)
    assert label_figure(Metric.accuracy, total) == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("sums", "metric", "figure"),
    [
        (LabelSums(rows=4, correct=3), Metric.accuracy, 0.75),
        (LabelSums(rows=4, squared_error=4.0), Metric.rmse, 1.0),
        (LabelSums(rows=4, absolute_error=2.0), Metric.mae, 0.5),
        # class a: tp 2, fp 1, fn 0 -> 0.8; class b: tp 1, fn 1 -> 2/3; macro = 0.7333
        (LabelSums(rows=4, correct=3, outcomes={("a", "tp"): 2, ("a", "fp"): 1, ("b", "tp"): 1,
                                                ("b", "fn"): 1}), Metric.f1, (0.8 + 2 / 3) / 2),
        (LabelSums(), Metric.accuracy, None),
        (LabelSums(rows=3, squared_error=1.0), Metric.f1, None),
    ],
    ids=["accuracy", "rmse", "mae", "macro-f1", "no-rows", "f1-of-a-regressor"],
)  # fmt: skip
def test_label_figure(sums, metric, figure):
    got = label_figure(metric, sums)
    assert got == (pytest.approx(figure) if figure is not None else None)


@pytest.mark.parametrize(
    ("rows", "correct", "passed", "fragment"),
    [
        (19, 19, None, "inconclusive: 19 of 20 labelled rows (minLabels) for revision r2"),
        (40, 40, True, "accuracy 1.0000 on 40 rows labelled by clients"),
        (40, 20, False, "accuracy 0.5000 < threshold 0.8"),
    ],
    ids=["too-few-labels", "labels-agree", "wrong-half-the-time"],
)
def test_judge_feedback(rows, correct, passed, fragment):
    sums = parse_label_sums(pod_metrics("r2", rows, correct), "iris", "r2")
    result = judge_feedback(feedback_spec(), "r2", sums, pods=2, unreachable=0, at=AT)
    assert result.passed is passed and fragment in result.message, result.message


def test_an_unreachable_pod_is_named_in_the_verdict():
    sums = parse_label_sums(pod_metrics("r2", 40, 40), "iris", "r2")
    result = judge_feedback(feedback_spec(), "r2", sums, pods=3, unreachable=1, at=AT)
    assert "3 pod(s), 1 unreachable" in result.message
