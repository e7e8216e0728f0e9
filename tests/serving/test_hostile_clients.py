"""modelserve against hostile clients: real processes, real sockets, deadlines made small by settings."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness.hostile import connect, keep_alive_request, read_until_closed, trickle
from harness.serving import custom_model, iris_env, run_to_exit, start_server, wait_for_status

V1 = "/v1/models/iris:predict"
V2 = "/v2/models/iris/infer"
ROW = [5.1, 3.5, 1.4, 0.2]
HUGE = "9" * 400


def v2_tensor(row: list[float], datatype: str = "FP64") -> dict:
    return {"inputs": [{"name": "input", "shape": [1, len(row)], "datatype": datatype, "data": row}]}


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory, iris_joblib):
    env = iris_env(
        iris_joblib,
        MODELSERVE_HEADER_TIMEOUT_SECONDS="1",
        MODELSERVE_BODY_TIMEOUT_SECONDS="1",
        MODELSERVE_MAX_CONNECTIONS="4",
        MODELSERVE_MAX_ROWS="5",
    )
    server = start_server(tmp_path_factory.mktemp("guarded"), env)
    yield server
    server.stop()


def test_headers_trickled_byte_by_byte_get_408_and_a_closed_connection(guarded_server):
    with connect(guarded_server) as sock:
        started = time.monotonic()
        still_open = trickle(sock, b"POST /predict HTTP/1.1\r\nHost: t\r\n", b"X", every=0.2, for_seconds=4)
        data, closed = read_until_closed(sock, timeout=3)
    assert not still_open or closed
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"MODELSERVE_HEADER_TIMEOUT_SECONDS" in data
    assert time.monotonic() - started < 6


def test_a_connection_that_never_sends_a_byte_is_closed(guarded_server):
    with connect(guarded_server) as sock:
        data, closed = read_until_closed(sock, timeout=5)
    assert closed and data == b""


def test_a_body_trickled_byte_by_byte_gets_408_and_a_closed_connection(guarded_server):
    head = (
        b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    with connect(guarded_server) as sock:
        trickle(sock, head, b" ", every=0.2, for_seconds=3)
        data, closed = read_until_closed(sock, timeout=3)
    assert closed
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"MODELSERVE_BODY_TIMEOUT_SECONDS" in data
    assert guarded_server.client.post(V1, json={"instances": [ROW]}).status_code == 200


def test_past_the_connection_cap_the_longest_idle_connection_is_closed(guarded_server):
    socks = [connect(guarded_server) for _ in range(4)]
    try:
        for sock in socks:  # each answers one request and then idles; the first has idled longest
            assert keep_alive_request(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.05)
        with connect(guarded_server) as newcomer:
            assert keep_alive_request(newcomer).startswith(b"HTTP/1.1 200 ")
            _, first_closed = read_until_closed(socks[0], timeout=2)
            assert first_closed
            assert keep_alive_request(socks[-1]).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    ("rows", "status"),
    [(5, 200), (6, 413)],
    ids=["at-the-cap", "over-the-cap"],
)
def test_rows_per_request_are_capped(guarded_server, rows, status):
    resp = guarded_server.client.post(V1, json={"instances": [ROW] * rows})
    assert resp.status_code == status, resp.text
    if status == 413:
        assert resp.json() == {"error": "request has 6 rows; the limit is 5 (MODELSERVE_MAX_ROWS)"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (V1, '{"instances": [[HUGE, 1, 1, 1]]}'),
        (V1, '{"instances": [[-HUGE, 1, 1, 1]]}'),
        ("/predict", '[{"feature_0": HUGE, "feature_1": 1, "feature_2": 1, "feature_3": 1}]'),
        (V1, '{"instances": ' + "[" * 3000 + "NaN" + "]" * 3000 + "}"),
        (V1, '{"instances": ' + "[" * 3000 + "]" * 3000 + "}"),
        (V1, '{"instances": ' + "[" * 40_000 + "]" * 40_000 + "}"),
        (
            V2,
            '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "BYTES", "data": [HUGE, 1, 1, 1]}]}',
        ),
    ],
    ids=["huge-int", "huge-negative-int", "huge-int-record", "deep-nan", "deep", "deep-large", "huge-int-v2"],
)
def test_huge_integers_and_deep_nesting_are_400_never_500(guarded_server, path, body):
    body = body.replace("HUGE", HUGE)
    resp = guarded_server.client.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert set(resp.json()) == {"error"}
    assert "Traceback" not in guarded_server.stderr()


@pytest.fixture(scope="module")
def categorical_server(tmp_path_factory, iris_joblib):
    """Iris with a manifest: feature d is an integer category, and redacted in logs and messages."""
    work = tmp_path_factory.mktemp("categorical")
    model = work / "iris.joblib"
    shutil.copy(iris_joblib, model)
    manifest = {
        "features": [
            {"name": "a"},
            {"name": "b"},
            {"name": "c"},
            {"name": "d", "dtype": "int", "categories": [0, 1, 2]},
        ]
    }
    Path(f"{model}.schema.json").write_text(json.dumps(manifest))
    server = start_server(work, iris_env(model, MODELSERVE_LOG_REDACT_FIELDS="c"))
    yield server
    server.stop()


def v2_columns(row: list[float]) -> dict:
    return {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
            for name, value in zip("abcd", row, strict=True)
        ]
    }


@pytest.mark.parametrize(
    ("path", "doc", "message"),
    [
        (V2, v2_tensor([5.1, 3.5, 1.4, 7.0]), "not one of the allowed values [0, 1, 2]"),
        (V2, v2_tensor([5.1, 3.5, 1.4, 1.5]), "expected an integer, got 1.5"),
        (V2, v2_columns([5.1, 3.5, 1.4, 7.0]), "not one of the allowed values [0, 1, 2]"),
        (V1, {"instances": [[5.1, 3.5, 1.4, 7]]}, "not one of the allowed values [0, 1, 2]"),
        ("/predict", [{"a": 5.1, "b": 3.5, "c": 1.4, "d": 7}], "not one of the allowed values [0, 1, 2]"),
    ],
    ids=["v2-tensor-category", "v2-tensor-int", "v2-columns-category", "v1-category", "records-category"],
)
def test_v2_tensors_get_the_same_value_rules_as_records(categorical_server, path, doc, message):
    resp = categorical_server.client.post(path, json=doc)
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["error"]


def test_a_valid_v2_tensor_to_a_categorical_schema_is_served(categorical_server):
    resp = categorical_server.client.post(V2, json=v2_tensor([5.1, 3.5, 1.4, 1.0]))
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("path", "doc", "hidden"),
    [
        (V1, {"instances": [[5.1, 3.5, "secret-value", 1]]}, "secret-value"),
        ("/predict", [{"a": 5.1, "b": 3.5, "c": "secret-value", "d": 1}], "secret-value"),
    ],
    ids=["v1", "records"],
)
def test_error_messages_never_quote_a_redacted_field(categorical_server, path, doc, hidden):
    resp = categorical_server.client.post(path, json=doc)
    assert resp.status_code == 400
    assert hidden not in resp.text and "feature 'c'" in resp.json()["error"]
    time.sleep(0.3)  # log lines are flushed within 0.1 s
    assert hidden not in categorical_server.stdout_path.read_text()


def test_error_messages_quote_at_most_24_characters_of_a_value(categorical_server):
    long_name = "n" * 5000
    resp = categorical_server.client.post("/predict", json=[{long_name: 1}])
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert "n" * 20 in error and "n" * 24 not in error and len(error) < 100


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, iris_joblib):
    work = tmp_path_factory.mktemp("keyed")
    keys = work / "api-keys"
    keys.write_text("good-key-0123456789\n")
    env = iris_env(
        iris_joblib,
        MODELSERVE_API_KEYS_FILE=str(keys),
        MODELSERVE_AUTH_FAILURE_RPS="0.01",
        MODELSERVE_AUTH_FAILURE_BURST="3",
    )
    server = start_server(work, env)
    yield server
    server.stop()


GOOD = {"Authorization": "Bearer good-key-0123456789"}


def test_openapi_lists_feature_names_only_for_a_valid_key(keyed_server):
    public = keyed_server.client.get("/openapi.json")
    assert public.status_code == 200 and "/predict" in public.json()["paths"]
    assert "feature_0" not in public.text
    full = keyed_server.client.get("/openapi.json", headers=GOOD)
    assert full.status_code == 200 and "feature_0" in full.text


def test_openapi_lists_feature_names_when_auth_is_off(guarded_server):
    assert "feature_0" in guarded_server.client.get("/openapi.json").text


def test_failed_key_attempts_are_limited_per_address_and_a_valid_key_still_served(keyed_server):
    wrong = [
        keyed_server.client.post(V1, json={"instances": [ROW]}, headers={"X-API-Key": f"guess-{i}"})
        for i in range(3)
    ]
    assert [r.status_code for r in wrong] == [401, 401, 401]
    refused = [
        keyed_server.client.post(V1, json={"instances": [ROW]}, headers={"X-API-Key": "guess-x"}),
        keyed_server.client.post(V1, json={"instances": [ROW]}),
        keyed_server.client.get("/v2/models/iris"),
        keyed_server.client.get("/openapi.json", headers={"X-API-Key": "guess-y"}),
    ]
    for resp in refused:
        assert resp.status_code == 429, resp.text
        assert int(resp.headers["retry-after"]) >= 1
        assert "failed API-key attempts" in resp.json()["error"]
    assert keyed_server.client.post(V1, json={"instances": [ROW]}, headers=GOOD).status_code == 200
    assert keyed_server.client.get("/v2/models/iris", headers=GOOD).status_code == 200


def test_every_429_of_the_rate_limit_carries_retry_after(tmp_path, iris_joblib):
    env = iris_env(iris_joblib, MODELSERVE_RATE_LIMIT_RPS="0.001", MODELSERVE_RATE_LIMIT_BURST="1")
    server = start_server(tmp_path, env)
    try:
        statuses = [server.client.post(V1, json={"instances": [ROW]}) for _ in range(3)]
    finally:
        server.stop()
    assert [r.status_code for r in statuses] == [200, 429, 429]
    assert all(int(r.headers["retry-after"]) >= 1 for r in statuses[1:])


def test_a_named_key_file_that_is_missing_exits_2(tmp_path, iris_joblib):
    env = iris_env(iris_joblib, MODELSERVE_API_KEYS_FILE=str(tmp_path / "absent-keys"))
    code, stderr, message = run_to_exit(tmp_path, env)
    assert code == 2, stderr
    assert "MODELSERVE_API_KEYS_FILE" in stderr and "does not exist" in stderr
    assert "absent-keys does not exist" in message


@pytest.fixture
def hanging_server(tmp_path, custom_package, models_dir, iris_data):
    X, _ = iris_data
    path = custom_model(custom_package, models_dir, "hanging", lambda m: m.HangingModel().fit(X))
    env = iris_env(
        path,
        PYTHONPATH=str(custom_package),
        MODELSERVE_PREDICT_MODE="thread",
        MODELSERVE_TIMEOUT_SECONDS="0.3",
        MODELSERVE_STALL_SECONDS="1",
    )
    server = start_server(tmp_path, env)
    yield server
    server.process.kill()  # the hung call would hold a clean exit for an hour
    server.stop()


def test_liveness_fails_when_a_model_call_hangs(hanging_server):
    assert hanging_server.client.get("/v2/health/live").status_code == 200
    resp = hanging_server.client.post(V1, json={"instances": [ROW]})
    assert resp.status_code == 504
    live = wait_for_status(hanging_server.client, "/v2/health/live", 503, timeout=5)
    assert live.status_code == 503
    assert "no progress" in live.json()["error"]


def test_liveness_holds_while_the_model_is_busy_but_finishing(
    tmp_path, custom_package, models_dir, iris_data
):
    X, _ = iris_data
    path = custom_model(custom_package, models_dir, "slowish", lambda m: m.SlowModel(delay=0.3).fit(X))
    env = iris_env(
        path, PYTHONPATH=str(custom_package), MODELSERVE_PREDICT_MODE="thread", MODELSERVE_STALL_SECONDS="1"
    )
    server = start_server(tmp_path, env)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                client.post(V1, json={"instances": [ROW]})

    workers = [threading.Thread(target=load) for _ in range(3)]
    try:
        for worker in workers:
            worker.start()
        statuses = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            statuses.append(server.client.get("/v2/health/live").status_code)
            time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        server.stop()
    assert len(statuses) > 10 and set(statuses) == {200}


def test_the_guard_holds_without_the_framework_bypass(tmp_path, iris_joblib):
    env = iris_env(iris_joblib, MODELSERVE_FRAMEWORK_BYPASS="false", MODELSERVE_BODY_TIMEOUT_SECONDS="1")
    server = start_server(tmp_path, env)
    head = (
        b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n["
    )
    try:
        with connect(server) as sock:
            trickle(sock, head, b" ", every=0.2, for_seconds=3)
            data, closed = read_until_closed(sock, timeout=3)
        assert server.client.post(V1, json={"instances": [ROW]}).status_code == 200
    finally:
        server.stop()
    assert closed and data.startswith(b"HTTP/1.1 408 ")
