"""Fixtures: iris models trained here (good, deliberately bad, weaker, failing on a marker), real modelserve
processes on loopback as the colours' pods, and a loopback HTTP server holding the labelled CSV files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.models import IRIS_COLUMNS, train_iris, user_package
from harness.probes import PROBE_MODELS, file_server, write_csv
from harness.serving import Server, iris_env, start_server

SERVING_MODULES = ("test_probes_serving", "test_probes_prometheus", "test_probes_checks")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in str(item.fspath) for name in SERVING_MODULES):
            item.add_marker(pytest.mark.serving)


@pytest.fixture(scope="session")
def iris_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return tuple(train_test_split(X, y, test_size=0.4, random_state=7, stratify=y))  # type: ignore[return-value]


@pytest.fixture(scope="session")
def probe_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe-models")


@pytest.fixture(scope="session")
def probe_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probe-userpkg")
    (root / "probe_models").mkdir()
    (root / "probe_models" / "__init__.py").write_text(PROBE_MODELS)
    return root


@pytest.fixture(scope="session")
def model_files(iris_split, probe_models_dir: Path, probe_package: Path) -> dict[str, Path]:
    """good: ~0.95 accuracy; bad: trained on shuffled labels (~chance); weaker: looks at the two sepal
    columns only (~0.75); failing: the good model, but raising (HTTP 500) on the marker row."""
    X_train, _, y_train, _ = iris_split
    shuffled = np.random.default_rng(0).permutation(y_train)
    sepal_only = ColumnTransformer([("sepal", "passthrough", [0, 1])])
    good = train_iris(X_train, y_train)
    built = {
        "good": good,
        "bad": train_iris(X_train, shuffled),
        "weaker": make_pipeline(sepal_only, StandardScaler(), LogisticRegression(max_iter=500)).fit(
            X_train, y_train
        ),
    }
    with user_package(probe_package, "probe_models", forget=False) as probe_models:
        built["failing"] = probe_models.FailOnMarker(good)
        paths = {}
        for name, model in built.items():
            paths[name] = probe_models_dir / f"{name}.joblib"
            joblib.dump(model, paths[name])
    return paths


@pytest.fixture(scope="session")
def holdout_dir(iris_split, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CSV files: the iris holdout with named columns and a `species` label."""
    _, X_test, _, y_test = iris_split
    root = tmp_path_factory.mktemp("datasets")
    rows = [[*map(float, x), int(label)] for x, label in zip(X_test, y_test, strict=True)]
    write_csv(root / "holdout.csv", [*IRIS_COLUMNS, "species"], rows)
    # The same data with the label first and feature columns reordered: matched by position only.
    write_csv(root / "label-first.csv", ["species", *IRIS_COLUMNS], [[r[-1], *r[:-1]] for r in rows])
    columns = {name: [r[i] for r in rows] for i, name in enumerate([*IRIS_COLUMNS, "species"])}
    pq.write_table(pa.table(columns), root / "holdout.parquet")
    return root


@pytest.fixture(scope="session")
def dataset_url(holdout_dir: Path) -> Iterator[str]:
    with file_server(holdout_dir) as url:
        yield url


def _serve(tmp_path_factory, name: str, model: Path, color: str, revision: str, **env: str) -> Server:
    """Starts without waiting: fixtures start all their servers, then wait for all (start-up overlaps)."""
    return start_server(
        tmp_path_factory.mktemp(f"srv-{name}"),
        iris_env(model, MODELSERVE_MODEL_COLOR=color, MODELSERVE_MODEL_REVISION=revision, **env),
        wait=False,
    )


def _all_ready(servers: list[Server]) -> None:
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise


@pytest.fixture(scope="session")
def quality_servers(tmp_path_factory, model_files: dict[str, Path]) -> Iterator[dict[str, Server]]:
    """blue = the active (good) model; green-* = candidates."""
    servers = {
        "blue": _serve(tmp_path_factory, "blue", model_files["good"], "blue", "rev-good"),
        "green-good": _serve(tmp_path_factory, "green-good", model_files["good"], "green", "rev-good2"),
        "green-bad": _serve(tmp_path_factory, "green-bad", model_files["bad"], "green", "rev-bad"),
        "green-weaker": _serve(tmp_path_factory, "green-weak", model_files["weaker"], "green", "rev-weak"),
    }
    _all_ready(list(servers.values()))
    yield servers
    for server in servers.values():
        server.stop()


ANALYSIS_REVISION = "rev-cand"


@pytest.fixture(scope="session")
def candidate_pods(
    tmp_path_factory, model_files: dict[str, Path], probe_package: Path
) -> Iterator[list[Server]]:
    """Two pods of the green candidate (one request per model call, so counts are exact)."""
    env = {"PYTHONPATH": str(probe_package), "MODELSERVE_MAX_BATCH_SIZE": "1"}
    pods = [
        _serve(tmp_path_factory, f"cand-{i}", model_files["failing"], "green", ANALYSIS_REVISION, **env)
        for i in range(2)
    ]
    _all_ready(pods)
    yield pods
    for pod in pods:
        pod.stop()


DRIFT_REVISION = "rev-drift"
DRIFT_WINDOW_ROWS = 100


@pytest.fixture(scope="session")
def drift_pods(tmp_path_factory, model_files: dict[str, Path]) -> Iterator[list[Server]]:
    """Two pods of the active (blue) colour tracking drift against all of iris, 100-row windows."""
    from harness.rollout import write_drift_reference

    reference = tmp_path_factory.mktemp("drift-reference") / "reference.csv"
    write_drift_reference(reference)
    env = {"MODELSERVE_DRIFT_REFERENCE_FILE": str(reference),
           "MODELSERVE_DRIFT_WINDOW_ROWS": str(DRIFT_WINDOW_ROWS)}  # fmt: skip
    pods = [
        _serve(tmp_path_factory, f"drift-{i}", model_files["good"], "blue", DRIFT_REVISION, **env)
        for i in range(2)
    ]
    _all_ready(pods)
    yield pods
    for pod in pods:
        pod.stop()
