"""Body size 413, timeout 504, bounded queue 503, a model that raises 500: each with its message."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness.serving import IRIS_IDENTITY, custom_model, identity, iris_env, start_server

V1 = "/v1/models/iris:predict"


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory, custom_package, models_dir, iris_data):
    X, _ = iris_data
    path = custom_model(custom_package, models_dir, "slow", lambda m: m.SlowModel(delay=0.6).fit(X))
    env = iris_env(
        path,
        PYTHONPATH=str(custom_package),
        MODELSERVE_TIMEOUT_SECONDS="1",
        MODELSERVE_MAX_QUEUE="2",
        MODELSERVE_MAX_BATCH_SIZE="1",
        MODELSERVE_MAX_BODY_BYTES="2000",
    )
    server = start_server(tmp_path_factory.mktemp("slow"), env)
    yield server
    server.stop()


def test_body_over_the_limit_is_413(slow_server):
    rows = [[1.0, 2.0, 3.0, 4.0]] * 200
    resp = slow_server.client.post(V1, json={"instances": rows})
    assert resp.status_code == 413
    assert "exceeds the limit of 2000 bytes" in resp.json()["error"]


def test_chunked_body_over_the_limit_is_413(slow_server):
    def chunks():
        yield b'{"instances": ['
        for _ in range(300):
            yield b"[1.0, 2.0, 3.0, 4.0],"
        yield b"[1, 2, 3, 4]]}"

    resp = slow_server.client.post(V1, content=chunks())
    assert resp.status_code == 413
    assert resp.json() == {"error": "request body exceeds the limit of 2000 bytes"}


def test_full_queue_is_503_and_queued_requests_still_succeed(slow_server):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=slow_server.url, timeout=30) as client:
            return await asyncio.gather(
                *(client.post(V1, json={"instances": [[1, 2, 3, 4]]}) for _ in range(6))
            )

    statuses = sorted(r.status_code for r in asyncio.run(burst()))
    # One runs, two wait in the queue (MAX_QUEUE=2), the other three are turned away at once.
    assert statuses.count(503) >= 1
    assert 503 in statuses and set(statuses) <= {200, 503, 504}
    overloaded = next(r for r in asyncio.run(burst()) if r.status_code == 503)
    assert "server overloaded" in overloaded.json()["error"]
    assert identity(overloaded) == IRIS_IDENTITY


def test_prediction_slower_than_the_timeout_is_504(slow_server):
    async def staggered() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=slow_server.url, timeout=30) as client:

            async def post(delay: float) -> httpx.Response:
                await asyncio.sleep(delay)
                return await client.post(V1, json={"instances": [[1, 2, 3, 4]]})

            return await asyncio.gather(post(0.0), post(0.1), post(0.2))

    # 0.6 s per call, one call at a time: the second waits ~0.5 s then runs 0.6 s > the 1 s timeout.
    responses = asyncio.run(staggered())
    statuses = [r.status_code for r in responses]
    # On a starved machine the client's 0.1 s spacing can collapse, so the third request may find the
    # queue (MAX_QUEUE=2) still holding the first two: 503 then, which is also the contract.
    assert statuses[:2] == [200, 504] and statuses[2] in (503, 504), statuses
    assert responses[1].json() == {
        "error": "prediction did not finish within 1s (MODELSERVE_TIMEOUT_SECONDS)"
    }
    assert identity(responses[1]) == IRIS_IDENTITY
    assert slow_server.client.get("/v2/health/live").status_code == 200


@pytest.fixture(scope="module")
def exploding_server(tmp_path_factory, custom_package, models_dir, iris_data):
    X, _ = iris_data
    path = custom_model(custom_package, models_dir, "exploding", lambda m: m.ExplodingModel().fit(X))
    server = start_server(
        tmp_path_factory.mktemp("exploding"), iris_env(path, PYTHONPATH=str(custom_package))
    )
    yield server
    server.stop()


def test_model_that_raises_is_500_with_a_short_message(exploding_server):
    resp = exploding_server.client.post(V1, json={"instances": [[1, 2, 3, 4]]})
    assert resp.status_code == 500
    assert resp.json() == {"error": "model raised ValueError: boom: this model refuses non-zero input"}
    assert "Traceback" not in resp.text
    assert identity(resp) == IRIS_IDENTITY
    fine = exploding_server.client.post(V1, json={"instances": [[0, 0, 0, 0]]})
    assert fine.status_code == 200
