"""The gRPC Open Inference Protocol: tritonclient's gRPC client unchanged, the health service, the same
validation, auth, limits, metrics and logs as REST, GOAWAY on SIGTERM and a bounded connection age."""

from __future__ import annotations

import signal
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.net import free_port
from harness.serving import custom_model, iris_env, run_to_exit, start_server

from .test_observability import LABELS, samples, value

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
KEY = "grpc-key-1"
WITH_KEY = {"authorization": f"Bearer {KEY}"}
INFER_ROUTE = "/v2/models/{name}/infer"


def grpc_env(model, port: int, **extra: str) -> dict[str, str]:
    return iris_env(model, MODELSERVE_GRPC_PORT=str(port), **extra)


def tensor(rows: np.ndarray, name: str = "input"):
    from tritonclient.grpc import InferInput

    t = InferInput(name, list(rows.shape), "FP64")
    t.set_data_from_numpy(rows.astype(np.float64))
    return t


def client_for(port: int):
    from tritonclient.grpc import InferenceServerClient

    return InferenceServerClient(url=f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory, iris_joblib):
    """Keys on, 50 rows and 4,000 bytes per request."""
    tmp = tmp_path_factory.mktemp("grpc")
    (tmp / "keys").write_text(KEY + "\n")
    port = free_port()
    env = grpc_env(
        iris_joblib,
        port,
        MODELSERVE_API_KEYS_FILE=str(tmp / "keys"),
        MODELSERVE_MAX_ROWS="50",
        MODELSERVE_MAX_BODY_BYTES="4000",
    )
    server = start_server(tmp, env)
    server.grpc_port = port
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(grpc_server):
    c = client_for(grpc_server.grpc_port)
    yield c
    c.close()


def test_infer_through_tritonclient(client, iris_pipeline):
    from tritonclient.grpc import InferRequestedOutput

    outputs = [InferRequestedOutput("predict"), InferRequestedOutput("predict_proba")]
    result = client.infer("iris", [tensor(ROWS)], outputs=outputs, request_id="req-7", headers=WITH_KEY)
    assert result.as_numpy("predict").tolist() == iris_pipeline.predict(ROWS).tolist()
    assert np.allclose(result.as_numpy("predict_proba"), iris_pipeline.predict_proba(ROWS))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("iris", "3", "req-7")


def test_every_output_when_none_is_requested(client, iris_pipeline):
    result = client.infer("iris", [tensor(ROWS)], headers={"x-api-key": KEY})
    assert [o.name for o in result.get_response().outputs] == ["predict", "predict_proba"]


def test_readiness_and_metadata_through_tritonclient(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "3")
    assert client.get_server_metadata().name == "modelserve"
    meta = client.get_model_metadata("iris", headers=WITH_KEY)
    assert (meta.name, list(meta.versions), meta.platform) == ("iris", ["3"], "modelserve-sklearn")
    assert [(i.name, i.datatype, list(i.shape)) for i in meta.inputs] == [("input", "FP64", [-1, 4])]
    assert [o.name for o in meta.outputs] == ["predict", "predict_proba"]


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (
            lambda c: c.is_model_ready("rose"),
            "NOT_FOUND",
            "model 'rose' not found; this server serves 'iris'",
        ),
        (lambda c: c.is_model_ready("iris", "9"), "NOT_FOUND", "version '9' of model 'iris' not found"),
        (lambda c: c.get_model_metadata("iris"), "UNAUTHENTICATED", "missing API key"),
        (lambda c: c.infer("iris", [tensor(ROWS)]), "UNAUTHENTICATED", "missing API key"),
        (
            lambda c: c.infer("iris", [tensor(ROWS)], headers={"authorization": "Bearer nope"}),
            "UNAUTHENTICATED",
            "invalid API key",
        ),
        (
            lambda c: c.infer("iris", [tensor(np.ones((60, 4)))], headers=WITH_KEY),
            "RESOURCE_EXHAUSTED",
            "request has 60 rows; the limit is 50 (MODELSERVE_MAX_ROWS)",
        ),
        (
            lambda c: c.infer("iris", [tensor(np.ones((200, 4)))], headers=WITH_KEY),
            "RESOURCE_EXHAUSTED",
            "Received message larger than max",
        ),
    ],
    ids=[
        "unknown-model",
        "unknown-version",
        "metadata-no-key",
        "no-key",
        "wrong-key",
        "rows",
        "message-size",
    ],
)
def test_refusals_carry_the_grpc_code_and_message(client, call, code, message):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as caught:
        call(client)
    assert caught.value.status() == f"StatusCode.{code}"
    assert message in caught.value.message()


def test_a_bad_tensor_gets_the_message_rest_gives(grpc_server, client):
    from tritonclient.utils import InferenceServerException

    short = np.array([[1.0, 2.0, 3.0]])
    rest = grpc_server.client.post(
        "/v2/models/iris/infer",
        json={"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": short.tolist()}]},
        headers=WITH_KEY,
    )
    assert rest.status_code == 400
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", [tensor(short)], headers=WITH_KEY)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert caught.value.message() == rest.json()["error"]


def test_health_service_answers_serving(grpc_server):
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def grpc_calls(server, status: str) -> float:
    found = samples(server).get("modelserve_requests_total", [])
    wanted = {"route": INFER_ROUTE, "status_code": status, "protocol": "grpc", **LABELS}
    return sum(s.value for s in found if all(s.labels.get(k) == v for k, v in wanted.items()))


def test_calls_are_counted_and_logged_as_grpc(grpc_server, client):
    ok_before, bad_before = grpc_calls(grpc_server, "200"), grpc_calls(grpc_server, "400")
    for _ in range(3):
        client.infer("iris", [tensor(ROWS)], headers=WITH_KEY, request_id="counted")
    with pytest.raises(Exception, match="expected 4 features"):
        client.infer("iris", [tensor(ROWS[:, :3])], headers=WITH_KEY)
    assert (grpc_calls(grpc_server, "200") - ok_before, grpc_calls(grpc_server, "400") - bad_before) == (3, 1)
    found = samples(grpc_server)
    assert value(
        found, "modelserve_request_duration_seconds_count", route=INFER_ROUTE, protocol="grpc", **LABELS
    )
    lines = [r for r in grpc_server.predictions_logged(1) if r.get("protocol") == "grpc"]
    assert any(r["status"] == 200 and r["rows"] == 2 and r["api_key"].startswith("key-") for r in lines)
    assert any(r["status"] == 400 and "expected 4 features" in r["error"] for r in lines)


def test_connection_age_bound_makes_a_long_lived_channel_reconnect(tmp_path, iris_joblib):
    """Max connection age 1 s (+1 s grace): a channel kept for 4 s is sent GOAWAY and connects again; no call
    fails on the way."""
    port = free_port()
    env = grpc_env(
        iris_joblib,
        port,
        MODELSERVE_GRPC_MAX_CONNECTION_AGE_SECONDS="1",
        MODELSERVE_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS="1",
    )
    server = start_server(tmp_path, env)
    states: list[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.subscribe(states.append, try_to_connect=True)
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 4.0
        calls = 0
        while time.monotonic() < deadline:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5, wait_for_ready=True)
            calls += 1
            time.sleep(0.05)
    server.stop()
    ready = [s for s in states if s == grpc.ChannelConnectivity.READY]
    assert calls > 20 and len(ready) >= 2, f"{calls} calls, states {states}"


def test_sigterm_sends_goaway_and_the_call_in_flight_completes(
    tmp_path, custom_package, models_dir, iris_data
):
    X, _ = iris_data
    path = custom_model(custom_package, models_dir, "slow-grpc", lambda m: m.SlowModel(delay=1.0).fit(X))
    port = free_port()
    server = start_server(tmp_path, grpc_env(path, port, PYTHONPATH=str(custom_package)))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        from tritonclient.grpc import service_pb2, service_pb2_grpc  # tritonclient's own stubs

        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="iris")
        request.inputs.add(name="input", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend(X[0])
        in_flight = stub.ModelInfer.future(request, timeout=20)
        time.sleep(0.4)  # the call is inside the model
        server.process.send_signal(signal.SIGTERM)
        reply = in_flight.result()
        assert [o.name for o in reply.outputs] == ["predict"]
        metadata = dict(in_flight.initial_metadata())  # who answered, as REST's X-Model-* headers
        assert (metadata["x-model-color"], metadata["x-model-revision"]) == ("blue", "7c9f1e2")
        assert metadata["x-request-id"]
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.process.wait(30) == 0, server.stderr()
    events = [r["event"] for r in server.log_lines() if "event" in r and r["event"] != "prediction"]
    assert events == ["grpc_ready", "ready", "draining"]


def test_two_workers_share_the_grpc_port(tmp_path, iris_joblib):
    port = free_port()
    server = start_server(tmp_path, grpc_env(iris_joblib, port, MODELSERVE_WORKERS="2"))
    try:
        deadline = time.monotonic() + 120  # HTTP turns ready with the first worker; wait for both
        while len({r["pid"] for r in server.log_lines() if r.get("event") == "grpc_ready"}) < 2:
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.2)
        for _ in range(16):  # a fresh connection each time: the kernel spreads them over the workers
            c = client_for(port)
            c.infer("iris", [tensor(ROWS)])
            c.close()
        pids = {r["pid"] for r in server.predictions_logged(16) if r.get("protocol") == "grpc"}
        assert len(pids) == 2
        found = samples(server)
        assert value(found, "modelserve_requests_total", route=INFER_ROUTE, protocol="grpc", **LABELS) == 16
    finally:
        server.stop()


def test_a_busy_grpc_port_stops_start_up_with_its_name(tmp_path, iris_joblib):
    with _listening() as port:
        code, stderr, _ = run_to_exit(tmp_path, grpc_env(iris_joblib, port))
    assert code != 0
    assert f"cannot serve gRPC on 127.0.0.1:{port} (MODELSERVE_GRPC_PORT)" in stderr


def test_grpc_port_must_differ_from_the_http_port(tmp_path, iris_joblib):
    code, _, message = run_to_exit(
        tmp_path, iris_env(iris_joblib, MODELSERVE_GRPC_PORT="9999", MODELSERVE_PORT="9999")
    )
    assert code == 2
    assert "MODELSERVE_GRPC_PORT (--grpc-port)" in message and "must differ from MODELSERVE_PORT" in message


class _listening:
    """A plain TCP listener on a free port (the port start-up must refuse to share)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return self.sock.getsockname()[1]

    def __exit__(self, *_: object) -> None:
        self.sock.close()
