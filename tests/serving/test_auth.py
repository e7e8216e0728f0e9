"""API keys from the mounted file (both header styles, reload on change) and the per-key rate limit."""

from __future__ import annotations

import time

import pytest

from harness.serving import iris_env, start_server

V1 = "/v1/models/iris:predict"
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
KEY_FILE = "# team keys\nalpha-key-1\n\n  beta-key-2  \n"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    path.write_text(KEY_FILE)
    return path


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory, iris_joblib, keys_file):
    env = iris_env(
        iris_joblib,
        MODELSERVE_API_KEYS_FILE=str(keys_file),
        MODELSERVE_RATE_LIMIT_RPS="1",
        MODELSERVE_RATE_LIMIT_BURST="3",
    )
    server = start_server(tmp_path_factory.mktemp("auth"), env)
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"),
        ({"Authorization": "Bearer wrong"}, "invalid API key"),
        ({"X-API-Key": "alpha-key-"}, "invalid API key"),
        ({"Authorization": "Basic alpha-key-1"}, "missing API key"),
        ({"Authorization": "Bearer # team keys"}, "invalid API key"),
    ],
)
def test_missing_or_wrong_key_is_401(auth_server, headers, message):
    resp = auth_server.client.post(V1, json=BODY, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"].startswith(message)


def test_model_metadata_needs_a_key_too(auth_server):
    assert auth_server.client.get("/v2/models/iris").status_code == 401
    assert auth_server.client.get("/v2/models/iris", headers={"X-API-Key": "beta-key-2"}).status_code == 200


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/health", "/metrics"])
def test_health_and_metrics_stay_open(auth_server, path):
    assert auth_server.client.get(path).status_code == 200


def test_rate_limit_is_per_key_with_retry_after(auth_server):
    alpha = {"Authorization": "Bearer alpha-key-1"}
    statuses = [auth_server.client.post(V1, json=BODY, headers=alpha).status_code for _ in range(6)]
    assert statuses[:3] == [200, 200, 200]  # the burst
    assert 429 in statuses[3:]
    limited = auth_server.client.post(V1, json=BODY, headers=alpha)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json() == {"error": "rate limit exceeded (1 requests/s, burst 3)"}
    # Another key has its own bucket.
    assert auth_server.client.post(V1, json=BODY, headers={"X-API-Key": "beta-key-2"}).status_code == 200


def test_key_file_changes_are_picked_up(auth_server, keys_file):
    keys_file.write_text("gamma-key-3\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resp = auth_server.client.post(V1, json=BODY, headers={"X-API-Key": "gamma-key-3"})
        if resp.status_code == 200:
            break
        time.sleep(0.3)
    assert resp.status_code == 200
    old = auth_server.client.post(V1, json=BODY, headers={"X-API-Key": "beta-key-2"})
    assert old.status_code == 401
