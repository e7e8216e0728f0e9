"""Start-up: the pickle guard, load failures (exit 1 + termination message), bad configuration (exit 2),
failed warm-up (exit 5)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from harness.serving import custom_model, iris_env, run_to_exit, sha256_file, start_server


def test_pickle_without_digest_or_waiver_is_refused(tmp_path, iris_joblib):
    env = iris_env(iris_joblib, MODELSERVE_MODEL_SHA256="")
    code, stderr, termination = run_to_exit(tmp_path, env)
    assert code == 1
    assert "refusing to load pickle file iris.joblib" in stderr
    assert (
        "set MODELSERVE_MODEL_SHA256 to its SHA-256 digest or MODELSERVE_ALLOW_UNVERIFIED_PICKLE=true"
        in stderr
    )
    assert termination.strip() == stderr.strip().splitlines()[-1]
    assert len(termination.strip().splitlines()) == 1


def test_pickle_with_a_wrong_digest_is_refused_naming_both_digests(tmp_path, iris_joblib):
    wrong = "0" * 64
    code, _, termination = run_to_exit(tmp_path, iris_env(iris_joblib, MODELSERVE_MODEL_SHA256=wrong))
    assert code == 1
    assert f"its SHA-256 is {sha256_file(iris_joblib)} but MODELSERVE_MODEL_SHA256 is {wrong}" in termination


def test_pickle_loads_with_the_waiver(tmp_path, iris_joblib):
    env = iris_env(iris_joblib, MODELSERVE_MODEL_SHA256="", MODELSERVE_ALLOW_UNVERIFIED_PICKLE="true")
    server = start_server(tmp_path, env)
    try:
        resp = server.client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert resp.json() == {"predictions": [0]}
    finally:
        assert server.stop() == 0


def test_pickle_guard_applies_by_extension_even_with_another_format(tmp_path, iris_joblib):
    env = iris_env(iris_joblib, MODELSERVE_MODEL_SHA256="", MODELSERVE_MODEL_FORMAT="onnx")
    code, _, termination = run_to_exit(tmp_path, env)
    assert code == 1 and "refusing to load pickle file" in termination


def test_missing_user_module_is_named_in_the_load_error(tmp_path, custom_package, models_dir, iris_data):
    X, y = iris_data
    path = custom_model(custom_package, models_dir, "doubler", lambda m: _doubler_pipeline(m, X, y))
    code, stderr, termination = run_to_exit(tmp_path, iris_env(path))
    assert code == 1
    assert "the model needs Python module 'acme_models', which is not installed in this image" in termination
    assert "Traceback" not in stderr


def test_user_module_on_the_path_loads_the_custom_transformer(
    tmp_path, custom_package, models_dir, iris_data
):
    X, y = iris_data
    path = custom_model(custom_package, models_dir, "doubler", lambda m: _doubler_pipeline(m, X, y))
    server = start_server(tmp_path, iris_env(path, PYTHONPATH=str(custom_package)))
    try:
        resp = server.client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert resp.status_code == 200 and resp.json() == {"predictions": [0]}
    finally:
        server.stop()


def _doubler_pipeline(module, X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(module.Doubler(), LogisticRegression(max_iter=500)).fit(X, y)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MODELSERVE_MODEL_PATH": "/nonexistent/model.joblib"},
            "model path /nonexistent/model.joblib does not exist",
        ),
        ({"MODELSERVE_MODEL_FORMAT": ""}, None),
    ],
)
def test_missing_model_exits_1_with_reason(tmp_path, env, message):
    if message is None:
        (tmp_path / "mystery.bin").write_bytes(b"\x00\x01not a model")
        env = {**env, "MODELSERVE_MODEL_PATH": str(tmp_path / "mystery.bin")}
        message = "cannot infer the model format of mystery.bin from its name or contents"
    code, _, termination = run_to_exit(tmp_path, env)
    assert code == 1
    assert message in termination


def test_corrupt_model_file_exits_1(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not protobuf")
    code, _, termination = run_to_exit(tmp_path, {"MODELSERVE_MODEL_PATH": str(bad)})
    assert code == 1 and "broken.onnx is not a loadable ONNX model" in termination


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MODELSERVE_WORKERS": "0"},
            "MODELSERVE_WORKERS (--workers): Input should be greater than or equal to 1",
        ),
        ({"MODELSERVE_MODEL_COLOR": "red"}, "MODELSERVE_MODEL_COLOR (--model-color)"),
        (
            {"MODELSERVE_MODEL_SHA256": "xyz"},
            "MODELSERVE_MODEL_SHA256 (--model-sha256): Value error, must be 64",
        ),
        ({"MODELSERVE_LOG_SAMPLE_RATE": "2"}, "MODELSERVE_LOG_SAMPLE_RATE (--log-sample-rate)"),
        (  # it is echoed in a response header: no spaces or control characters
            {"MODELSERVE_MODEL_REVISION": "abc\r\nx-injected: 1"},
            "MODELSERVE_MODEL_REVISION (--model-revision): Value error, must be at most 128 visible ASCII",
        ),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(tmp_path, iris_joblib, env, message):
    code, stderr, termination = run_to_exit(tmp_path, iris_env(iris_joblib, **env))
    assert code == 2
    assert message in stderr and message in termination


def test_cli_flags_override_the_environment(tmp_path, iris_joblib):
    env = iris_env(iris_joblib, MODELSERVE_MODEL_NAME="from-env")
    server = start_server(tmp_path, env, args=["--model-name", "from-flag", "--model-version", "9"])
    try:
        doc = server.client.get("/v2/models/from-flag").json()
        assert (doc["name"], doc["versions"]) == ("from-flag", ["9"])
    finally:
        server.stop()


def test_manifest_next_to_the_model_sets_names_and_bounds(tmp_path, iris_joblib):
    model = tmp_path / "iris-named.joblib"
    model.write_bytes(iris_joblib.read_bytes())
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    manifest = {
        "features": [{"name": n, "dtype": "float", "min": 0, "max": 10} for n in names],
        "outputs": ["predict", "predict_proba"],
    }
    Path(f"{model}.schema.json").write_text(json.dumps(manifest))
    server = start_server(tmp_path, iris_env(model))
    try:
        doc = server.client.get("/v2/models/iris").json()
        assert [f["name"] for f in doc["parameters"]["schema"]["features"]] == names
        assert doc["parameters"]["schema"]["source"] == "manifest"
        record = dict(zip(names, [5.1, 3.5, 1.4, 0.2], strict=True))
        assert server.client.post("/predict", json=[record]).status_code == 200
        too_big = server.client.post("/predict", json=[{**record, "petal_width": 12.5}])
        assert too_big.status_code == 400
        assert (
            too_big.json()["error"] == "records: row 0, feature 'petal_width': 12.5 is above the maximum 10"
        )
        negative = server.client.post("/v1/models/iris:predict", json={"instances": [[-1, 3.5, 1.4, 0.2]]})
        assert (
            negative.json()["error"] == "instances: row 0, feature 'sepal_length': -1 is below the minimum 0"
        )
    finally:
        server.stop()


def test_manifest_with_an_unknown_dtype_fails_the_load(tmp_path, iris_joblib):
    model = tmp_path / "iris-badschema.joblib"
    model.write_bytes(iris_joblib.read_bytes())
    Path(f"{model}.schema.json").write_text(json.dumps({"features": [{"name": "a", "dtype": "complex"}]}))
    code, _, termination = run_to_exit(tmp_path, iris_env(model))
    assert code == 1 and "inputs[0].dtype: must be one of" in termination


@pytest.mark.parametrize(
    ("short", "reason"),
    [
        (False, "prediction on a sample row raised RuntimeError: weights were never trained"),
        (True, "the prediction on a sample row did not return one output row per input row"),
    ],
    ids=["prediction-raises", "wrong-row-count"],
)
def test_failed_warm_up_exits_5_with_the_reason_and_never_listens(
    tmp_path, custom_package, models_dir, iris_data, short, reason
):
    X, y = iris_data
    path = custom_model(
        custom_package, models_dir, f"unwarmable-{short}", lambda m: m.UnwarmableModel(short=short).fit(X, y)
    )
    server = start_server(tmp_path, iris_env(path, PYTHONPATH=str(custom_package)), wait=False)
    answers = []  # readiness polled for as long as the process lives: it must never say ready
    try:
        deadline = time.monotonic() + 120
        while server.process.poll() is None and time.monotonic() < deadline:
            try:
                answers.append(httpx.get(f"{server.url}/v2/health/ready", timeout=1.0).status_code)
            except httpx.HTTPError:
                answers.append(None)
            time.sleep(0.05)
        code = server.process.wait(5)
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.client.close()
    assert code == 5
    assert answers and 200 not in answers
    assert server.termination_path.read_text() == f"model warm-up failed: {reason}\n"
    assert "Traceback" not in server.stderr()
