"""The numpy fast path for scaler + linear pipelines reproduces sklearn exactly, or is not used."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, PolynomialFeatures, StandardScaler

from modelserve.fastpath import compile_linear

X, Y = load_iris(return_X_y=True)
NAMES = np.array(["setosa", "versicolor", "virginica"])

COMPILED = [
    pytest.param(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), Y, id="scaler+multinomial"
    ),
    pytest.param(LogisticRegression(max_iter=500), NAMES[Y], id="string-labels"),
    pytest.param(
        make_pipeline(MinMaxScaler(), LogisticRegression(solver="liblinear")), Y == 0, id="liblinear-binary"
    ),
    pytest.param(make_pipeline(MaxAbsScaler(), LogisticRegression(max_iter=500)), Y == 2, id="binary"),
    pytest.param(make_pipeline(StandardScaler(), MinMaxScaler(), Ridge()), X[:, 0], id="two-scalers+ridge"),
    pytest.param(LinearRegression(), X[:, :2], id="multi-output-regression"),
]


@pytest.mark.parametrize(("model", "target"), COMPILED)
def test_supported_pipelines_compile_to_identical_outputs(model, target):
    fitted = model.fit(X, target)
    fast = compile_linear(fitted, X.shape[1])
    assert fast is not None
    probe = np.vstack([X, X * 3.0 - 5.0])
    out = fast(probe)
    assert np.array_equal(out["predict"], fitted.predict(probe)) or np.allclose(
        out["predict"], fitted.predict(probe), rtol=0, atol=1e-9
    )
    if hasattr(fitted, "predict_proba"):
        assert np.allclose(out["predict_proba"], fitted.predict_proba(probe), rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(RandomForestClassifier(n_estimators=3, random_state=0), id="trees"),
        pytest.param(
            make_pipeline(PolynomialFeatures(), LogisticRegression(max_iter=500)), id="non-affine-step"
        ),
    ],
)
def test_other_models_keep_the_sklearn_call(model):
    assert compile_linear(model.fit(X, Y), X.shape[1]) is None
