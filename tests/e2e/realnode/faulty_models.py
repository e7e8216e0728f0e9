"""Models that misbehave on purpose, trained here and pinned by digest like any other.

Each pickles one step as a `builtins.eval` of a short source line, so the server needs no module of ours to
load it: the line runs inside the real serving process, which is what these tests are about.
"""

from __future__ import annotations

import io

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

FAIL_SHARE = 0.3
# Passes the warm-up's all-zero row; any other row fails (IndexError -> 500) with probability FAIL_SHARE.
FLAKY = f"lambda X: X if not X.any() or __import__('random').random() >= {FAIL_SHARE} else X[[len(X)]]"


class Evaluated:
    """Behaves as `source` evaluated, and pickles as that evaluation."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, x):
        return eval(self.source)(x)

    def __reduce__(self):
        return (eval, (self.source,))


def flaky_iris() -> bytes:
    """An iris classifier whose predictions fail (HTTP 500) on a share of the requests, never at warm-up."""
    x, y = load_iris(return_X_y=True)
    model = make_pipeline(FunctionTransformer(), StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    model.steps[0][1].func = Evaluated(FLAKY)  # after fitting: the training rows never see a failure
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def loading_runs(source: str) -> bytes:
    """A model file whose loading runs `source` in the server (allocates, exits...) before anything else."""
    buffer = io.BytesIO()
    joblib.dump(Evaluated(source), buffer)
    return buffer.getvalue()
