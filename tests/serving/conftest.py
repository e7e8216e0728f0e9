"""Fixtures: real models trained here, real servers started on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression

from harness.models import save_iris
from harness.serving import CUSTOM_PACKAGE, Server, iris_env, start_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # Image tests (buildah) live here too but are selected by their own `image` marker.
        if "tests/serving" in str(item.fspath) and item.get_closest_marker("image") is None:
            item.add_marker(pytest.mark.serving)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def iris_data() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="session")
def iris_joblib(models_dir: Path, iris_data) -> Path:
    X, y = iris_data
    return save_iris(models_dir / "iris.joblib", X, y)


@pytest.fixture(scope="session")
def iris_pipeline(iris_joblib: Path):
    return joblib.load(iris_joblib)


@pytest.fixture(scope="session")
def regression_joblib(models_dir: Path, iris_data) -> Path:
    X, _ = iris_data
    model = LinearRegression().fit(X[:, :3], X[:, 3])
    path = models_dir / "petal-width.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="session")
def custom_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the user's package `acme_models`, to put on PYTHONPATH."""
    root = tmp_path_factory.mktemp("userpkg")
    (root / "acme_models").mkdir()
    (root / "acme_models" / "__init__.py").write_text(CUSTOM_PACKAGE)
    return root


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory, iris_joblib: Path) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("iris-server"), iris_env(iris_joblib))
    yield server
    server.stop()
