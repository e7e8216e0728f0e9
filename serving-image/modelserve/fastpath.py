"""Numpy fast paths for common scikit-learn pipelines (scalers + a linear model).

sklearn spends ~100-300 us per call on validation and dispatch for a 4-feature model; the arithmetic is a
few microseconds. A fast path is only used after it reproduced sklearn's own outputs on a probe set at
load time (same labels, probabilities within 1e-9); anything else keeps the sklearn call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Predict = Callable[[np.ndarray], dict[str, np.ndarray]]
Affine = tuple[np.ndarray, np.ndarray]  # x * scale + offset, per feature


def _scaler_affine(step: Any) -> Affine | None:
    name = type(step).__name__
    n = getattr(step, "n_features_in_", None)
    if n is None:
        return None
    if name == "StandardScaler":
        mean = step.mean_ if step.with_mean and step.mean_ is not None else np.zeros(n)
        scale = step.scale_ if step.with_std and step.scale_ is not None else np.ones(n)
        return 1.0 / scale, -mean / scale
    if name == "MinMaxScaler" and not getattr(step, "clip", False):
        return step.scale_, step.min_
    if name == "MaxAbsScaler":
        return 1.0 / step.scale_, np.zeros(n)
    return None


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _candidates(final: Any, scale: np.ndarray, offset: np.ndarray) -> list[Predict]:
    """Ways sklearn may compute this estimator's outputs; the probe picks the one that matches."""
    name = type(final).__name__
    coef = np.asarray(getattr(final, "coef_", None), dtype=np.float64)
    intercept = np.asarray(getattr(final, "intercept_", 0.0), dtype=np.float64)
    if coef.ndim == 0:
        return []
    coef2 = np.atleast_2d(coef)
    # Fold the scaler into the linear map: (x*s + o) @ W.T + b == x @ (W*s).T + (o @ W.T + b)
    weights = (coef2 * scale).T.copy()
    bias = offset @ coef2.T + intercept

    if name in ("LinearRegression", "Ridge", "Lasso", "ElasticNet", "SGDRegressor"):
        single = coef.ndim == 1

        def regress(x: np.ndarray) -> dict[str, np.ndarray]:
            y = x @ weights + bias
            return {"predict": y[:, 0] if single else y}

        return [regress]
    if name != "LogisticRegression":
        return []
    classes = np.asarray(final.classes_)

    if len(classes) == 2:

        def binary(x: np.ndarray) -> dict[str, np.ndarray]:
            z = (x @ weights + bias)[:, 0]
            p1 = 1.0 / (1.0 + np.exp(-z))
            proba = np.column_stack([1.0 - p1, p1])
            return {"predict": classes.take((z > 0).astype(np.intp)), "predict_proba": proba}

        return [binary]

    def multinomial(x: np.ndarray) -> dict[str, np.ndarray]:
        proba = _softmax(x @ weights + bias)
        return {"predict": classes.take(proba.argmax(axis=1)), "predict_proba": proba}

    def one_vs_rest(x: np.ndarray) -> dict[str, np.ndarray]:
        z = x @ weights + bias
        p = 1.0 / (1.0 + np.exp(-z))
        p /= p.sum(axis=1, keepdims=True)
        return {"predict": classes.take(z.argmax(axis=1)), "predict_proba": p}

    return [multinomial, one_vs_rest]


def compile_linear(estimator: Any, n_features: int) -> Predict | None:
    steps = [s for _, s in estimator.steps] if hasattr(estimator, "steps") else [estimator]
    steps = [s for s in steps if s is not None and s != "passthrough"]
    scale, offset = np.ones(n_features), np.zeros(n_features)
    for step in steps[:-1]:
        affine = _scaler_affine(step)
        if affine is None:
            return None
        s, o = (np.asarray(a, dtype=np.float64) for a in affine)
        scale, offset = scale * s, offset * s + o
    for candidate in _candidates(steps[-1], scale, offset):
        if _agrees(candidate, estimator, n_features, offset, scale):
            return candidate
    return None


def _agrees(
    candidate: Predict, estimator: Any, n_features: int, offset: np.ndarray, scale: np.ndarray
) -> bool:
    """Compare with sklearn on points spread over the region the scalers were fitted on."""
    rng = np.random.default_rng(0)
    centre = -offset / np.where(scale == 0, 1.0, scale)
    spread = 3.0 / np.where(scale == 0, 1.0, np.abs(scale))
    probe = centre + rng.uniform(-1.0, 1.0, size=(256, n_features)) * spread
    probe = np.vstack([probe, np.zeros((1, n_features))])
    try:
        mine = candidate(probe)
        theirs = np.asarray(estimator.predict(probe))
        if "predict_proba" in mine:  # a classifier: identical labels, probabilities to 1e-9
            return bool(
                np.array_equal(mine["predict"], theirs)
                and np.allclose(mine["predict_proba"], estimator.predict_proba(probe), rtol=0, atol=1e-9)
            )
        return bool(np.allclose(mine["predict"], theirs, rtol=1e-12, atol=1e-9))
    except Exception:
        return False
