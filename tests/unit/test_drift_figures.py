"""The live revision's drift as the operator reads it from the pods' /metrics: one pod's series, several
pods combined (weighted by the rows each saw), the worst features first and rounded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modeldeploy.probes.drift import PodDrift, combine_drift, drift_result, parse_pod_drift

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def exposition(revision: str, rows: int, model: str = "iris", **psi: float) -> str:
    """What modelserve exports: the window's bins per feature and the index per feature."""
    base = f'model="{model}",version="1",revision="{revision}",color="blue"'
    lines = ["# TYPE modelserve_drift_window_bin gauge"]
    for feature in psi:
        counts = [rows // 2, rows - rows // 2] + [0] * 8  # the window's rows in two of its ten bins
        lines += [
            f'modelserve_drift_window_bin{{{base},feature="{feature}",bin="{b}"}} {n}.0'
            for b, n in enumerate(counts)
        ]
    lines.append("# TYPE modelserve_feature_drift gauge")
    lines += [f'modelserve_feature_drift{{{base},feature="{f}"}} {v!r}' for f, v in psi.items()]
    lines += ["# TYPE modelserve_requests_total counter", f"modelserve_requests_total{{{base}}} 9.0"]
    return "\n".join(lines) + "\n"


def test_one_pods_series_of_the_revision_are_read_and_others_left_out():
    text = (
        exposition("r1", 200, sepal_length=0.31, petal_width=0.02)
        + exposition("r0", 50, sepal_length=9.0).replace("# TYPE", "# OLD")
        + exposition("r1", 500, model="other", sepal_length=7.0).replace("# TYPE", "# OTHER")
    )
    assert parse_pod_drift(text, "iris", "r1") == PodDrift({"sepal_length": 0.31, "petal_width": 0.02}, 200)
    assert parse_pod_drift(text, "iris", "r9") == PodDrift({}, 0)


# pods (psi per feature, rows) -> (feature, psi) worst first, total rows
COMBINED = [
    ([({"a": 0.4, "b": 0.1}, 100), ({"a": 0.1, "b": 0.1}, 300)], [("a", 0.175), ("b", 0.1)], 400),
    ([({"a": 0.9}, 0), ({"a": 0.05}, 100)], [("a", 0.05)], 100),  # a pod that saw nothing adds nothing
    ([({"a": 0.123456789}, 10)], [("a", 0.1235)], 10),  # rounded to 4 decimals
    ([({f"f{i}": i / 100 for i in range(9)}, 10)], [(f"f{i}", i / 100) for i in (8, 7, 6, 5, 4)], 10),
    ([], [], 0),
]


@pytest.mark.parametrize(("pods", "worst", "rows"), COMBINED, ids=["weighted", "empty pod", "rounded",
                                                                    "top five", "no pods"])  # fmt: skip
def test_pods_are_combined_weighted_by_rows_and_the_worst_five_kept(pods, worst, rows):
    figures = combine_drift([PodDrift(psi, n) for psi, n in pods], AT, "r1")
    assert [(f.feature, f.psi) for f in figures.features] == [(n, pytest.approx(v)) for n, v in worst]
    assert (figures.rows, figures.pods, figures.revision, figures.checked_at) == (rows, len(pods), "r1", AT)


def test_the_check_result_scores_the_worst_feature():
    figures = combine_drift([PodDrift({"a": 0.4, "b": 0.1}, 100)], AT, "r1")
    result = drift_result(figures)
    assert (result.passed, result.score, result.requests) == (None, 0.4, 100)
    assert result.message == "worst a 0.4 over 100 rows on 1 pod(s)"
