"""The iris model the tests, benchmarks and the demo serve: StandardScaler + LogisticRegression, trained
here."""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# Three rows the demo and the release lane send: one of each species.
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def train_iris(X: np.ndarray | None = None, y: np.ndarray | None = None, *, c: float = 1.0) -> Pipeline:
    """The iris pipeline fitted on (X, y), all of iris by default; `c` is LogisticRegression's C."""
    if X is None or y is None:
        X, y = load_iris(return_X_y=True)
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)).fit(X, y)


def save_iris(path: Path, X: np.ndarray | None = None, y: np.ndarray | None = None) -> Path:
    """train_iris(X, y) dumped with joblib to `path`."""
    joblib.dump(train_iris(X, y), path)
    return path


def demo_files() -> dict[str, bytes]:
    """The demo's iris v1 and v2 (joblib) and a labelled holdout CSV, as files."""
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=3, stratify=y)
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        for version, c in (("1", 0.05), ("2", 10.0)):
            path = Path(tmp) / f"iris-v{version}.joblib"
            joblib.dump(train_iris(X_train, y_train, c=c), path)
            files[path.name] = path.read_bytes()
    rows = [",".join([*IRIS_COLUMNS, "species"])] + [
        ",".join([*(f"{v:.3f}" for v in row), str(label)]) for row, label in zip(X_test, y_test, strict=True)
    ]
    files["holdout.csv"] = ("\n".join(rows) + "\n").encode()
    return files


@contextmanager
def user_package(root: Path, name: str, *, forget: bool = True) -> Iterator[ModuleType]:
    """Imports package `name` from directory `root` for as long as models made of its classes are pickled (the
    pickle names the module, which must import then); `forget` drops it from sys.modules afterwards."""
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(root))
        if forget:
            sys.modules.pop(name, None)
