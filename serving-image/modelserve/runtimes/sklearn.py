"""scikit-learn estimators and pipelines, from joblib/pickle files or skops files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError
from ..schema import InputSchema, tabular_schema
from .base import LoadOptions, explain_missing_code, plain

# Estimators whose predict() is exactly classes_[argmax(predict_proba())]: one pass instead of two.
ARGMAX_CONSISTENT = frozenset(
    {
        "LogisticRegression",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "HistGradientBoostingClassifier",
        "GradientBoostingClassifier",
        "GaussianNB",
        "MultinomialNB",
        "KNeighborsClassifier",
        "MLPClassifier",
    }
)


class SklearnModel:
    format = "sklearn"

    def __init__(self, estimator: Any, fmt: str = "sklearn") -> None:
        import sklearn

        sklearn.set_config(assume_finite=True)  # inputs are checked for NaN/Inf before they get here
        if not hasattr(estimator, "predict"):
            raise ModelLoadError(f"loaded object of type {type(estimator).__name__} has no predict() method")
        self.format = fmt
        self.estimator = estimator
        self.has_proba = _safe_hasattr(estimator, "predict_proba")
        self.classes = [plain(c) for c in estimator.classes_] if hasattr(estimator, "classes_") else None
        self._classes_array = np.asarray(estimator.classes_) if self.classes is not None else None
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        self._argmax_ok = type(final).__name__ in ARGMAX_CONSISTENT and self._classes_array is not None
        names = getattr(estimator, "feature_names_in_", None)
        self.frame_columns = [str(n) for n in names] if names is not None and _has_pandas() else None
        self.fast: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
        n_features = getattr(estimator, "n_features_in_", None)
        outputs = ("predict", "predict_proba") if self.has_proba else ("predict",)
        if n_features is None and self.frame_columns is None:
            self.schema = InputSchema(shape=(-1, -1), output_names=outputs)
        else:
            self.schema = tabular_schema(
                int(n_features or len(self.frame_columns or [])), self.frame_columns, output_names=outputs
            )

    def enable_fast_path(self) -> bool:
        """Swap sklearn's call for verified numpy arithmetic when the pipeline is scalers + a linear model."""
        from ..fastpath import compile_linear

        n_features = getattr(self.estimator, "n_features_in_", None)
        if n_features is None or self.frame_columns is not None:
            return False
        self.fast = compile_linear(self.estimator, int(n_features))
        return self.fast is not None

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.fast is not None and x.dtype != object:
            return self.fast(x)
        x_in: Any = x
        if self.frame_columns is not None:
            import pandas as pd

            x_in = pd.DataFrame(x, columns=self.frame_columns)
        if self.has_proba:
            proba = self.estimator.predict_proba(x_in)
            if self._argmax_ok:
                labels = self._classes_array.take(proba.argmax(axis=1))  # type: ignore[union-attr]
            else:
                labels = np.asarray(self.estimator.predict(x_in))
            return {"predict": labels, "predict_proba": proba}
        return {"predict": np.asarray(self.estimator.predict(x_in))}


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:  # without pandas, DataFrame-fitted models get arrays (fine for numeric columns)
        return False
    return True


def _safe_hasattr(obj: Any, name: str) -> bool:
    try:
        return hasattr(obj, name)
    except Exception:  # available_if checks may raise on odd estimators
        return False


def load_sklearn(path: Path, options: LoadOptions) -> SklearnModel:
    import joblib

    try:
        estimator = joblib.load(path)
    except (ModuleNotFoundError, AttributeError) as err:
        raise explain_missing_code(err) from None
    return SklearnModel(estimator)


def load_skops(path: Path, options: LoadOptions) -> SklearnModel:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:
        raise ModelLoadError(f"{path.name} is not a readable skops file: {err}".splitlines()[0]) from None
    not_allowed = [t for t in untrusted if t not in options.skops_trusted]
    if not_allowed:
        raise ModelLoadError(
            f"skops file {path.name} contains types that are not trusted: {', '.join(not_allowed)}; "
            "list them in "
            "MODELSERVE_SKOPS_TRUSTED_TYPES (comma-separated) if you trust them"
        )
    try:
        estimator = sio.load(path, trusted=untrusted)
    except (ModuleNotFoundError, AttributeError) as err:
        raise explain_missing_code(err) from None
    return SklearnModel(estimator, fmt="skops")
