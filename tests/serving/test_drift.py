"""Drift: a reference profile, a rolling window, PSI per feature and for the predicted classes."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from harness.serving import iris_env, start_server
from modelserve.drift import categorical_profile, numeric_profile, psi

from .test_observability import samples

V1 = "/v1/models/iris:predict"
THRESHOLD = 0.25  # the usual line for "a different population"
FEATURES = [f"feature_{i}" for i in range(4)]


def test_psi_of_the_reference_itself_is_zero_and_grows_with_a_shift():
    values = np.random.default_rng(0).normal(size=5000)
    profile = numeric_profile("x", 0, values)
    assert len(profile.expected) == 10 and profile.expected.sum() == pytest.approx(1.0, abs=1e-3)
    same = np.bincount(profile.bin_of(values), minlength=10)
    shifted = np.bincount(profile.bin_of(values + 2.0), minlength=10)
    assert psi(profile.expected, same) == pytest.approx(0.0, abs=1e-9)
    assert psi(profile.expected, shifted) > 1.0


def test_categories_beyond_the_reference_fall_into_other():
    profile = categorical_profile("colour", 0, ["red"] * 60 + ["blue"] * 40)
    assert profile.labels() == ["red", "blue", "other"]
    assert profile.bin_of(np.array(["blue", "green"], dtype=object)).tolist() == [1, 2]


@pytest.fixture(scope="module")
def drift_server(tmp_path_factory, iris_joblib, iris_data):
    root = tmp_path_factory.mktemp("drift")
    X, _ = iris_data
    reference = root / "reference.csv"
    with reference.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FEATURES)
        writer.writerows(X.tolist())
    env = iris_env(
        iris_joblib, MODELSERVE_DRIFT_REFERENCE_FILE=str(reference), MODELSERVE_DRIFT_WINDOW_ROWS="450"
    )
    server = start_server(root, env)
    yield server, X
    server.stop()


def drift_by_feature(server) -> dict[str, float]:
    return {s.labels["feature"]: s.value for s in samples(server).get("modelserve_feature_drift", [])}


def send(server, rows: np.ndarray) -> None:
    for start in range(0, len(rows), 15):
        resp = server.client.post(V1, json={"instances": rows[start : start + 15].tolist()})
        assert resp.status_code == 200, resp.text


def test_rows_drawn_from_the_reference_stay_below_the_threshold(drift_server):
    server, X = drift_server
    send(server, X[np.random.default_rng(1).integers(0, len(X), 450)])
    found = drift_by_feature(server)
    assert set(found) == {*FEATURES, "predicted_class"}
    assert max(found.values()) < THRESHOLD, found


def test_one_feature_shifted_by_two_standard_deviations_crosses_on_that_feature_only(drift_server):
    server, X = drift_server
    rows = X[np.random.default_rng(2).integers(0, len(X), 450)].copy()
    rows[:, 1] += 2 * X[:, 1].std()  # sepal width
    send(server, rows)  # the window (450 rows) now holds only shifted rows
    found = drift_by_feature(server)
    crossed = {f for f in FEATURES if found[f] >= THRESHOLD}
    assert crossed == {"feature_1"}, found
    worst = samples(server)["modelserve_feature_drift_worst"]
    assert [s.labels["feature"] for s in worst] in (["feature_1"], ["predicted_class"]), worst
