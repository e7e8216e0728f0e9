"""OIP v2, KServe v1 and plain /predict against a real server with a real iris pipeline."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
NAMES = ["feature_0", "feature_1", "feature_2", "feature_3"]


def test_v1_predict_matches_the_pipeline(iris_server, iris_pipeline):
    resp = iris_server.client.post("/v1/models/iris:predict", json={"instances": ROWS})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"predictions": iris_pipeline.predict(np.array(ROWS)).tolist()}


def test_v2_infer_returns_labels_and_probabilities(iris_server, iris_pipeline):
    body = {
        "id": "req-1",
        "inputs": [
            {"name": "input", "shape": [2, 4], "datatype": "FP64", "data": [v for row in ROWS for v in row]}
        ],
    }
    resp = iris_server.client.post("/v2/models/iris/infer", json=body)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("iris", "3", "req-1")
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["predict"]["data"] == iris_pipeline.predict(np.array(ROWS)).tolist()
    assert outputs["predict"]["datatype"] == "INT64"
    assert outputs["predict_proba"]["shape"] == [2, 3]
    expected = iris_pipeline.predict_proba(np.array(ROWS)).ravel()
    assert np.allclose(outputs["predict_proba"]["data"], expected)


def test_v2_infer_with_versioned_path_and_requested_output(iris_server):
    body = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [[5.1, 3.5, 1.4, 0.2]]}],
        "outputs": [{"name": "predict_proba"}],
    }
    resp = iris_server.client.post("/v2/models/iris/versions/3/infer", json=body)
    assert resp.status_code == 200, resp.text
    assert [o["name"] for o in resp.json()["outputs"]] == ["predict_proba"]


def test_v2_infer_accepts_one_tensor_per_feature(iris_server, iris_pipeline):
    inputs = [
        {"name": n, "shape": [2], "datatype": "FP64", "data": [r[i] for r in ROWS]}
        for i, n in enumerate(NAMES)
    ]
    resp = iris_server.client.post("/v2/models/iris/infer", json={"inputs": inputs})
    assert resp.status_code == 200, resp.text
    predict = next(o for o in resp.json()["outputs"] if o["name"] == "predict")
    assert predict["data"] == iris_pipeline.predict(np.array(ROWS)).tolist()


def test_records_return_predictions_and_class_probabilities(iris_server, iris_pipeline):
    records = [dict(zip(NAMES, row, strict=True)) for row in ROWS]
    resp = iris_server.client.post("/predict", json=records)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["predictions"] == iris_pipeline.predict(np.array(ROWS)).tolist()
    assert set(doc["probabilities"][0]) == {"0", "1", "2"}
    assert sum(doc["probabilities"][0].values()) == pytest.approx(1.0)


def test_metadata_reports_the_schema_from_the_model(iris_server):
    doc = iris_server.client.get("/v2/models/iris").json()
    assert doc["name"] == "iris" and doc["versions"] == ["3"]
    assert doc["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert {o["name"] for o in doc["outputs"]} == {"predict", "predict_proba"}
    assert [f["name"] for f in doc["parameters"]["schema"]["features"]] == NAMES
    assert doc["parameters"]["classes"] == [0, 1, 2]
    assert (doc["parameters"]["revision"], doc["parameters"]["color"]) == ("7c9f1e2", "blue")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        ("/health", {"ready": True}),
        ("/v2/models/iris/ready", {"name": "iris", "ready": True}),
        ("/v1/models/iris", {"name": "iris", "ready": True}),
    ],
)
def test_health_endpoints_answer_200(iris_server, path, expected):
    resp = iris_server.client.get(path)
    assert (resp.status_code, resp.json()) == (200, expected)


def test_server_metadata_and_openapi_docs(iris_server):
    assert iris_server.client.get("/v2").json()["name"] == "modelserve"
    spec = iris_server.client.get("/openapi.json").json()
    assert {"/v2/models/{name}/infer", "/v1/models/{name}:predict", "/predict"} <= set(spec["paths"])
    docs = iris_server.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


V1 = "/v1/models/iris:predict"
V2 = "/v2/models/iris/infer"


def v2(data, shape, datatype="FP64", **extra):
    return {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data, **extra}]}


BAD_REQUESTS = [
    pytest.param(V1, b"{not json", "malformed JSON", id="malformed-json"),
    pytest.param(V1, b"", "malformed JSON: the request body is empty", id="empty-body"),
    pytest.param(V1, {"rows": ROWS}, "instances: missing required field", id="v1-missing-instances"),
    pytest.param(
        V1, {"instances": [[5.1, 3.5, 1.4]]}, "instances: expected 4 features, got 3", id="v1-width"
    ),
    pytest.param(
        V1,
        {"instances": [[5.1, 3.5, 1.4, 0.2], [1, 2, 3]]},
        "instances: row 1: expected 4 features, got 3",
        id="v1-ragged",
    ),
    pytest.param(
        V1,
        {"instances": [[5.1, "wide", 1.4, 0.2]]},
        "instances: row 0, feature 'feature_1': expected a number, got string 'wide'",
        id="v1-wrong-type",
    ),
    pytest.param(
        V1,
        {"instances": [[5.1, None, 1.4, 0.2]]},
        "instances: row 0, feature 'feature_1': missing value (null)",
        id="v1-null",
    ),
    pytest.param(
        V1,
        b'{"instances": [[5.1, 3.5, NaN, 0.2]]}',
        "instances: row 0, feature 'feature_2': NaN and Infinity are not allowed",
        id="v1-nan",
    ),
    pytest.param(
        V1,
        b'{"instances": [[5.1, 3.5, 1.4, Infinity]]}',
        "instances: row 0, feature 'feature_3': NaN and Infinity are not allowed",
        id="v1-inf",
    ),
    pytest.param(V1, {"instances": []}, "instances: expected at least one row", id="v1-empty"),
    pytest.param(V2, {"inputs": []}, "inputs: missing required field", id="v2-no-inputs"),
    pytest.param(
        V2,
        {"inputs": [{"name": "input", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
        "inputs[0].datatype: missing required field",
        id="v2-missing-datatype",
    ),
    pytest.param(
        V2, v2([1, 2, 3, 4], [1, 4], "FLOAT"), "inputs[0].datatype: must be one of", id="v2-bad-datatype"
    ),
    pytest.param(
        V2, v2([1, 2, 3], [1, 4]), "inputs[0]: shape [1, 4] needs 4 values, data has 3", id="v2-count"
    ),
    pytest.param(V2, v2([1, 2, 3], [1, 3]), "inputs[0] 'input': expected 4 features, got 3", id="v2-width"),
    pytest.param(
        V2, v2([1, "a", 3, 4], [1, 4]), "inputs[0].data: values must all be of datatype FP64", id="v2-type"
    ),
    pytest.param(
        V2,
        {**v2([1, 2, 3, 4], [1, 4]), "outputs": [{"name": "logits"}]},
        "outputs[0].name: unknown output 'logits'",
        id="v2-unknown-output",
    ),
    pytest.param(
        "/predict",
        [{"feature_0": 1, "feature_1": 2, "feature_2": 3}],
        "records: row 0: missing required feature 'feature_3'",
        id="records-missing",
    ),
    pytest.param(
        "/predict",
        [{"feature_0": 1, "feature_1": 2, "feature_2": 3, "feature_3": 4, "colour": 1}],
        "records: row 0: unknown feature 'colour'",
        id="records-unknown",
    ),
    pytest.param(
        "/predict",
        [{"feature_0": 1, "feature_1": True, "feature_2": 3, "feature_3": 4}],
        "records: row 0, feature 'feature_1': expected a number, got boolean",
        id="records-bool",
    ),
    pytest.param("/predict", "hello", "records: expected a list of records", id="records-not-a-list"),
]


@pytest.mark.parametrize(("path", "body", "message"), BAD_REQUESTS)
def test_bad_input_is_400_naming_the_field_and_rule(iris_server, path, body, message):
    content = body if isinstance(body, bytes) else None
    kwargs = {"content": content} if content is not None else {"json": body}
    resp = iris_server.client.post(path, **kwargs)
    assert resp.status_code == 400, resp.text
    assert set(resp.json()) == {"error"}
    assert message in resp.json()["error"]
    assert "Traceback" not in resp.text


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("POST", "/v1/models/wine:predict", 404, "model 'wine' not found; this server serves 'iris'"),
        ("POST", "/v2/models/wine/infer", 404, "model 'wine' not found"),
        ("POST", "/v2/models/iris/versions/9/infer", 404, "version '9' of model 'iris' not found"),
        ("GET", "/v2/models/wine", 404, "model 'wine' not found"),
        ("GET", "/nowhere", 404, "not found: /nowhere"),
        ("GET", "/predict", 405, "method GET not allowed on /predict"),
    ],
)
def test_unknown_model_or_path_is_json(iris_server, method, path, status, message):
    resp = iris_server.client.request(method, path, json={"instances": ROWS})
    assert resp.status_code == status
    assert message in resp.json()["error"]


def test_server_keeps_serving_after_bad_requests(iris_server):
    for _ in range(5):
        iris_server.client.post(V1, content=b"\x00\xff garbage")
    assert iris_server.client.post(V1, json={"instances": ROWS}).status_code == 200


def test_request_id_is_echoed_or_generated(iris_server):
    given = iris_server.client.post(V1, json={"instances": ROWS}, headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = iris_server.client.post(V1, json={"instances": ROWS})
    assert len(generated.headers["x-request-id"]) >= 16


def test_concurrent_requests_are_batched_and_answered_correctly(iris_server, iris_pipeline, iris_data):
    X, _ = iris_data
    expected = iris_pipeline.predict(X).tolist()

    import asyncio

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=iris_server.url, timeout=30) as client:
            responses = await asyncio.gather(
                *(client.post(V1, json={"instances": [row.tolist()]}) for row in X)
            )
        return [r.json()["predictions"][0] for r in responses]

    assert asyncio.run(run()) == expected
