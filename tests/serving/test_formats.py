"""Every model format: a real model built here, served by a real process, answering v2 and v1."""

from __future__ import annotations

import operator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from harness.serving import Server, iris_env, run_to_exit, start_server

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def build_skops(models: Path, X, y) -> Path:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=500)).fit(X, y)
    path = models / "iris.skops"
    sio.dump(model, path)
    return path


def build_onnx(models: Path, pipeline) -> Path:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        pipeline, initial_types=[("float_input", FloatTensorType([None, 4]))], options={"zipmap": False}
    )
    path = models / "iris.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


def build_xgboost(models: Path, X, y) -> Path:
    import xgboost as xgb

    model = xgb.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    path = models / "iris.ubj"
    model.save_model(path)
    return path


def build_lightgbm(models: Path, X, y) -> Path:
    import lightgbm as lgb

    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, n_jobs=1, verbose=-1).fit(X, y)
    path = models / "iris-lgbm.model"  # no telling extension: the format is sniffed from the contents
    model.booster_.save_model(str(path))
    return path


def build_tensorflow(models: Path) -> Path:
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]])

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
        def serve(self, features):
            return {"scores": tf.matmul(features, self.w)}

    module = Scorer()
    path = models / "scorer-savedmodel"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


COLOURS = ["red", "green", "blue"]
NUMERIC = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def build_dataframe_pipeline(models: Path, X, y) -> Path:
    """A pipeline fitted on a DataFrame with a categorical column, plus its schema manifest."""
    import json

    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.DataFrame(X, columns=NUMERIC)
    frame["colour"] = [COLOURS[i % 3] for i in range(len(frame))]
    prep = ColumnTransformer([("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["colour"])])
    model = make_pipeline(prep, LogisticRegression(max_iter=500)).fit(frame, y)
    path = models / "iris-frame.joblib"
    joblib.dump(model, path)
    manifest = {"features": [*NUMERIC, {"name": "colour", "dtype": "string", "categories": COLOURS}]}
    Path(f"{path}.schema.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def format_models(models_dir, iris_data, iris_pipeline) -> dict[str, Path]:
    X, y = iris_data
    return {
        "skops": build_skops(models_dir, X, y),
        "onnx": build_onnx(models_dir, iris_pipeline),
        "xgboost": build_xgboost(models_dir, X, y),
        "lightgbm": build_lightgbm(models_dir, X, y),
        "tensorflow": build_tensorflow(models_dir),
        "dataframe": build_dataframe_pipeline(models_dir, X, y),
    }


@pytest.fixture(scope="module")
def format_servers(tmp_path_factory, format_models):
    """All format servers start together: start-up is mostly imports, so they overlap well."""
    extra = {"skops": {"MODELSERVE_SKOPS_TRUSTED_TYPES": "_operator.neg"}}

    def start(name: str) -> Server:
        env = iris_env(format_models[name], **extra.get(name, {}))
        return start_server(tmp_path_factory.mktemp(f"format-{name}"), env)

    with ThreadPoolExecutor(len(format_models)) as pool:
        futures = {name: pool.submit(start, name) for name in format_models}
    servers = {name: f.result() for name, f in futures.items() if f.exception() is None}
    try:
        failed = {name: f.exception() for name, f in futures.items() if f.exception() is not None}
        assert not failed, f"format servers failed to start: {failed}"
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def v2_infer(server: Server, rows, datatype="FP32") -> dict[str, dict]:
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": [len(rows), 4],
                "datatype": datatype,
                "data": [v for row in rows for v in row],
            }
        ]
    }
    resp = server.client.post("/v2/models/iris/infer", json=body)
    assert resp.status_code == 200, resp.text
    return {o["name"]: o for o in resp.json()["outputs"]}


@pytest.mark.parametrize("fmt", ["skops", "onnx", "xgboost", "lightgbm"])
def test_classifier_formats_agree_with_the_labels(format_servers, fmt):
    outputs = v2_infer(format_servers[fmt], ROWS)
    assert outputs["predict"]["data"] == [0, 2]
    assert outputs["predict_proba"]["shape"] == [2, 3]
    assert np.allclose(np.array(outputs["predict_proba"]["data"]).reshape(2, 3).sum(axis=1), 1.0, atol=1e-4)
    v1 = format_servers[fmt].client.post("/v1/models/iris:predict", json={"instances": ROWS}).json()
    assert v1 == {"predictions": [0, 2]}


@pytest.mark.parametrize(
    ("fmt", "platform", "input_name"),
    [
        ("skops", "modelserve-skops", "input"),
        ("onnx", "modelserve-onnx", "float_input"),
        ("xgboost", "modelserve-xgboost", "input"),
        ("lightgbm", "modelserve-lightgbm", "input"),
        ("tensorflow", "modelserve-tensorflow", "features"),
    ],
)
def test_metadata_reports_format_and_input_signature(format_servers, fmt, platform, input_name):
    doc = format_servers[fmt].client.get("/v2/models/iris").json()
    assert doc["platform"] == platform
    assert doc["inputs"][0]["name"] == input_name
    assert doc["inputs"][0]["shape"] == [-1, 4]


def test_tensorflow_savedmodel_computes_its_signature(format_servers):
    outputs = v2_infer(format_servers["tensorflow"], ROWS)
    expected = np.array(ROWS, dtype=np.float32) @ np.array(
        [[1, 0], [0, 1], [1, 1], [0.5, -0.5]], dtype=np.float32
    )
    assert outputs["scores"]["shape"] == [2, 2]
    assert np.allclose(outputs["scores"]["data"], expected.ravel(), rtol=1e-5)


def test_tensorflow_rejects_the_wrong_width(format_servers):
    resp = format_servers["tensorflow"].client.post(
        "/v1/models/iris:predict", json={"instances": [[1, 2, 3]]}
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "instances: expected 4 features, got 3"


def test_skops_refuses_untrusted_types_naming_them(tmp_path, format_models):
    code, _, termination = run_to_exit(tmp_path, iris_env(format_models["skops"], MODELSERVE_MODEL_SHA256=""))
    assert code == 1
    assert "contains types that are not trusted: _operator.neg" in termination
    assert "MODELSERVE_SKOPS_TRUSTED_TYPES" in termination


@pytest.mark.heavy
def test_torchscript_module_serves_with_a_manifest(tmp_path):
    import json

    import torch

    class Linear(torch.nn.Module):
        def forward(self, x):
            return x.sum(dim=1, keepdim=True)

    path = tmp_path / "sum.pt"
    torch.jit.script(Linear()).save(str(path))
    Path(f"{path}.schema.json").write_text(json.dumps({"shape": [-1, 4], "dtype": "float32"}))
    server = start_server(tmp_path, iris_env(path, MODELSERVE_MODEL_SHA256=""))
    try:
        outputs = v2_infer(server, ROWS)
        assert np.allclose(outputs["output_0"]["data"], [sum(r) for r in ROWS], rtol=1e-5)
    finally:
        server.stop()


def test_dataframe_pipeline_takes_named_records_with_categories(format_servers):
    server = format_servers["dataframe"]
    record = {
        "sepal_length": 5.1,
        "sepal_width": 3.5,
        "petal_length": 1.4,
        "petal_width": 0.2,
        "colour": "red",
    }
    resp = server.client.post("/predict", json=[record, {**record, "petal_length": 5.2, "petal_width": 2.3}])
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == [0, 2]
    v1 = server.client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2, "blue"]]})
    assert v1.json() == {"predictions": [0]}


@pytest.mark.parametrize(
    ("colour", "message"),
    [
        (
            "purple",
            "records: row 0, feature 'colour': 'purple' is not one of the allowed values "
            "['red', 'green', 'blue']",
        ),
        (3, "records: row 0, feature 'colour': expected a string, got int"),
    ],
)
def test_dataframe_pipeline_rejects_bad_categories(format_servers, colour, message):
    record = {
        "sepal_length": 5.1,
        "sepal_width": 3.5,
        "petal_length": 1.4,
        "petal_width": 0.2,
        "colour": colour,
    }
    resp = format_servers["dataframe"].client.post("/predict", json=[record])
    assert resp.status_code == 400
    assert resp.json() == {"error": message}
