"""Prometheus metrics (values and labels, one and several workers) and the JSON request log."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.serving import iris_env, start_server

V1 = "/v1/models/iris:predict"
LABELS = {"model": "iris", "version": "3", "revision": "7c9f1e2", "color": "blue"}


def samples(server) -> dict[str, list]:
    text = httpx.get(f"{server.url}/metrics").text
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(found: dict[str, list], name: str, **labels: str) -> float:
    matches = [s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert matches, f"no sample {name} {labels}"
    return sum(matches)


@pytest.fixture(scope="module")
def observed_server(tmp_path_factory, iris_joblib):
    env = iris_env(
        iris_joblib, MODELSERVE_LOG_REDACT_FIELDS="feature_2,predict_proba", MODELSERVE_LOG_PAYLOADS="true"
    )
    server = start_server(tmp_path_factory.mktemp("observed"), env)
    ok = [[5.1, 3.5, 1.4, 0.2]] * 2 + [[6.7, 3.0, 5.2, 2.3]]
    for i in range(5):
        server.client.post(V1, json={"instances": ok}, headers={"X-Request-ID": f"obs-{i}"})
    for _ in range(2):
        server.client.post(V1, json={"instances": [[1, 2, 3]]})
    yield server
    server.stop()


def test_request_counts_by_route_and_status(observed_server):
    found = samples(observed_server)
    route = "/v1/models/{name}:predict"
    assert value(found, "modelserve_requests_total", route=route, status_code="200", **LABELS) == 5
    assert value(found, "modelserve_requests_total", route=route, status_code="400", **LABELS) == 2
    assert value(found, "modelserve_request_duration_seconds_count", route=route, **LABELS) == 7


def test_every_series_carries_model_version_revision_and_color(observed_server):
    text = httpx.get(f"{observed_server.url}/metrics").text
    series = [line for line in text.splitlines() if line.startswith("modelserve_")]
    assert series
    for line in series:
        for key, val in LABELS.items():
            assert f'{key}="{val}"' in line, line


def test_prediction_batch_and_load_metrics(observed_server):
    found = samples(observed_server)
    assert value(found, "modelserve_predictions_total", **{"class": "0"}) == 10
    assert value(found, "modelserve_predictions_total", **{"class": "2"}) == 5
    assert value(found, "modelserve_batch_size_sum") == 15
    assert value(found, "modelserve_predict_duration_seconds_count") == 5
    assert value(found, "modelserve_model_load_seconds") > 0
    assert value(found, "modelserve_inflight_requests") == 0
    assert value(found, "modelserve_ready") == 1


def test_one_json_log_line_per_prediction_with_redaction(observed_server):
    lines = observed_server.predictions_logged(at_least=7)
    by_id = {rec["request_id"]: rec for rec in lines}
    assert {f"obs-{i}" for i in range(5)} <= set(by_id)
    rec = by_id["obs-0"]
    assert {k: rec[k] for k in ("model", "version", "revision", "color", "status")} == {
        **LABELS,
        "status": 200,
    }
    assert rec["route"] == "/v1/models/{name}:predict" and rec["latency_ms"] > 0
    assert rec["inputs"][0] == {
        "feature_0": 5.1,
        "feature_1": 3.5,
        "feature_2": "[REDACTED]",
        "feature_3": 0.2,
    }
    assert rec["outputs"]["predict"] == [0, 0, 2]
    assert rec["outputs"]["predict_proba"] == "[REDACTED]"
    errors = [r for r in lines if r["status"] == 400]
    assert len(errors) == 2 and errors[0]["error"] == "instances: expected 4 features, got 3"


def test_log_sampling_zero_keeps_errors_only(tmp_path, iris_joblib):
    server = start_server(tmp_path, iris_env(iris_joblib, MODELSERVE_LOG_SAMPLE_RATE="0"))
    try:
        for _ in range(5):
            server.client.post(V1, json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        server.client.post(V1, json={"instances": [[1, 2]]})
    finally:
        server.stop()
    statuses = [rec["status"] for rec in server.log_lines() if rec.get("event") == "prediction"]
    assert statuses == [400]


def test_metrics_add_up_across_worker_processes(tmp_path, iris_joblib):
    server = start_server(tmp_path, iris_env(iris_joblib, MODELSERVE_WORKERS="2"))
    try:
        deadline = time.monotonic() + 60
        while len({r["pid"] for r in server.log_lines() if r.get("event") == "ready"}) < 2:
            assert time.monotonic() < deadline, "second worker never became ready"
            time.sleep(0.2)

        async def load() -> None:
            limits = httpx.Limits(
                max_keepalive_connections=0
            )  # a new connection each time: both workers get some
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
                for _ in range(10):
                    responses = await asyncio.gather(
                        *(client.post(V1, json={"instances": [[5.1, 3.5, 1.4, 0.2]]}) for _ in range(8))
                    )
                    assert all(r.status_code == 200 for r in responses)

        asyncio.run(load())
        found = samples(server)
        route = "/v1/models/{name}:predict"
        assert value(found, "modelserve_requests_total", route=route, status_code="200", **LABELS) == 80
        assert value(found, "modelserve_predictions_total", **{"class": "0"}) == 80
        serving_pids = {r["pid"] for r in server.predictions_logged(at_least=80)}
        assert len(serving_pids) == 2, "both workers should have served (so the sum spans processes)"
    finally:
        server.stop()


def test_regression_model_reports_a_value_histogram(tmp_path, regression_joblib):
    server = start_server(tmp_path, iris_env(regression_joblib))
    try:
        resp = server.client.post(V1, json={"instances": [[5.1, 3.5, 1.4], [6.7, 3.0, 5.2]]})
        assert resp.status_code == 200 and len(resp.json()["predictions"]) == 2
        found = samples(server)
        assert value(found, "modelserve_prediction_value_count") == 2
        assert "modelserve_predictions_total" not in found
    finally:
        server.stop()
