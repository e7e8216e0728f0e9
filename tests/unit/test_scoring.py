"""Pure judgement: scikit-learn scores, threshold and champion/challenger verdicts, smoke output shapes,
CSV parsing and addresses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modeldeploy.probes import ClusterResolver, Predictions, StaticResolver, Target, judge_scores, score
from modeldeploy.probes.dataset import DatasetError, parse_csv, parse_parquet
from modeldeploy.probes.scoring import canonical_label, output_shape, shape_matches

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), ("1", "1"), ("1.0", "1"), (1, "1"), (True, "1"), ("setosa", "setosa"), (0.5, "0.5")],
)
def test_labels_compare_as_canonical_text(value, text):
    assert canonical_label(value) == text


BINARY = Predictions(
    predicted=[1, 0, 1, 1], probabilities=[[0.2, 0.8], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7]], classes=[0, 1]
)


@pytest.mark.parametrize(
    ("metric", "labels", "predictions", "expected"),
    [
        ("accuracy", [1.0, 0.0, 0.0, 1.0], BINARY, 0.75),
        ("f1", [1.0, 0.0, 0.0, 1.0], BINARY, 0.8),  # positive class = classes[1]
        ("roc_auc", [1.0, 0.0, 0.0, 1.0], BINARY, 0.625),  # one tie, one inversion in four pairs
        ("accuracy", ["a", "b", "c"], Predictions(["a", "b", "b"]), 2 / 3),
        ("f1", ["a", "b", "c"], Predictions(["a", "b", "b"], classes=["a", "b", "c"]), (1 + 2 / 3 + 0) / 3),
        ("mae", [1.0, 2.0, 3.0], Predictions([1.5, 2.0, 2.0]), 0.5),
        ("rmse", [1.0, 2.0, 3.0], Predictions([1.0, 2.0, 5.0]), (4 / 3) ** 0.5),
        (
            "roc_auc",
            ["a", "b", "c"],
            Predictions(
                ["a", "b", "c"], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], ["a", "b", "c"]
            ),
            1.0,
        ),
    ],
)
def test_scores_match_scikit_learn_definitions(metric, labels, predictions, expected):
    assert score(metric, labels, predictions) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("metric", "labels", "predictions", "needle"),
    [
        ("roc_auc", [0, 1], Predictions([0, 1]), "needs class probabilities"),
        ("mae", ["x", "y"], Predictions([1.0, 2.0]), "label 'x' is not a number"),
        ("accuracy", [0, 1, 1], Predictions([0, 1]), "3 labels but 2 predictions"),
        ("accuracy", [], Predictions([]), "no rows"),
    ],
)
def test_scores_that_cannot_be_computed_say_why(metric, labels, predictions, needle):
    with pytest.raises(ValueError, match=needle):
        score(metric, labels, predictions)


@pytest.mark.parametrize(
    ("metric", "threshold", "candidate", "active", "margin", "passed", "needle"),
    [
        ("accuracy", 0.9, 0.95, None, None, True, "accuracy 0.9500 on 60 rows"),
        ("accuracy", 0.9, 0.85, None, None, False, "accuracy 0.8500 < threshold 0.9"),
        ("accuracy", 0.8, 0.85, 0.97, 0.05, False, "0.1200 worse than the active model's 0.9700"),
        ("accuracy", 0.8, 0.95, 0.97, 0.05, True, "(active model 0.9700)"),
        ("accuracy", 0.8, 0.95, 0.97, None, True, "active model 0.9700"),  # no margin: threshold only
        ("rmse", 0.5, 0.4, None, None, True, "rmse 0.4000"),
        ("rmse", 0.5, 0.6, None, None, False, "rmse 0.6000 > threshold 0.5"),
        ("mae", 1.0, 0.5, 0.3, 0.1, False, "0.2000 worse"),  # lower is better: 0.5 vs 0.3
        ("mae", 1.0, 0.35, 0.3, 0.1, True, "mae 0.3500"),
    ],
)
def test_threshold_and_champion_challenger_table(
    metric, threshold, candidate, active, margin, passed, needle
):
    result = judge_scores(metric, threshold, candidate, active, margin, 60, T0)
    assert result.passed is passed
    assert needle in result.message
    assert result.score == candidate and result.active_score == active


@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        ("/v2/models/m/infer", {"outputs": [{"name": "predict", "shape": [2], "data": [0, 1]}]}, [2]),
        ("/v1/models/m:predict", {"predictions": [[0.1, 0.9], [0.5, 0.5], [1, 0]]}, [3, 2]),
        ("/predict", {"predictions": [1, 2]}, [1 + 1]),
        ("/predict", {"error": "bad"}, None),
        ("/predict", None, None),
    ],
)
def test_output_shape_of_each_protocol(path, body, shape):
    assert output_shape(path, body) == shape


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ([2], [2], True),
        ([-1], [7], True),
        ([-1, 3], [4, 3], True),
        ([2], [3], False),
        ([2], None, False),
        ([2], [2, 1], False),
    ],
)
def test_shape_matching_with_wildcards(expected, actual, ok):
    assert shape_matches(expected, actual) is ok


def test_csv_rows_labels_and_cap():
    data = b"\xef\xbb\xbfa,label,b\n1,x,2.5\n3,y,hello\n\n5,z,6\n"
    parsed = parse_csv(data, "label", max_rows=2, where="mem.csv")
    assert parsed.columns == ["a", "b"]
    assert parsed.rows == [[1.0, 2.5], [3.0, "hello"]]
    assert parsed.labels == ["x", "y"]


@pytest.mark.parametrize(
    ("data", "label", "needle"),
    [
        (b"", "y", "empty file"),
        (b"a,b\n1,2\n", "y", "labelColumn: 'y' is not among the 2 columns of the data set"),
        (b"a,y\n1,2\n3\n", "y", "line 3 has 1 fields, the header has 2"),
        (b"a,y\n", "y", "no data rows"),
        (b"\xff\xfe", "y", "not UTF-8"),
    ],
)
def test_bad_csv_names_the_problem(data, label, needle):
    with pytest.raises(DatasetError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        parse_csv(data, label, 10, "mem.csv")


@pytest.mark.parametrize(
    ("resolver", "target", "pods", "service"),
    [
        (
            ClusterResolver(),
            Target("ml", "iris-preview", "green", ("10.0.0.7", "fd00::5")),
            ["http://10.0.0.7:8080", "http://[fd00::5]:8080"],
            "http://iris-preview.ml.svc.cluster.local:80",
        ),
        (
            StaticResolver({"green": ["http://127.0.0.1:9001"]}, {"iris": "http://127.0.0.1:9000"}),
            Target("ml", "iris", "green"),
            ["http://127.0.0.1:9001"],
            "http://127.0.0.1:9000",
        ),
        (
            StaticResolver({"green": ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]}),
            Target("ml", "iris-preview", "green"),
            ["http://127.0.0.1:9001", "http://127.0.0.1:9002"],
            "http://127.0.0.1:9001",
        ),
    ],
)
def test_resolvers_give_pod_and_service_urls(resolver, target, pods, service):
    assert resolver.pod_urls(target) == pods
    assert resolver.service_url(target) == service


def test_static_resolver_without_an_address_names_the_service():
    with pytest.raises(LookupError, match="iris-preview"):
        StaticResolver({}).service_url(Target("ml", "iris-preview", "green"))


def _parquet(columns: dict) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def test_parquet_rows_labels_and_cap():
    data = _parquet({"a": [1, 2, 3], "kind": ["x", "y", "z"], "y": [0, 1, 1]})
    parsed = parse_parquet(data, "y", max_rows=2, where="mem.parquet")
    assert parsed.columns == ["a", "kind"]
    assert parsed.rows == [[1.0, "x"], [2.0, "y"]]
    assert parsed.labels == [0, 1]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"PAR1 not really", "not a readable Parquet file"),
        (_parquet({"a": [1]}), "labelColumn: 'y' is not among the 1 columns of the data set"),
    ],
)
def test_bad_parquet_names_the_problem(data, needle):
    with pytest.raises(DatasetError, match=needle):
        parse_parquet(data, "y", 10, "mem.parquet")
