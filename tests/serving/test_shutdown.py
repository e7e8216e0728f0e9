"""SIGTERM under load: readiness turns false, in-flight requests finish, no accepted request fails, exit 0."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from harness.serving import custom_model, iris_env, start_server

V1 = "/v1/models/iris:predict"


def test_sigterm_under_load_fails_no_accepted_request(tmp_path, custom_package, models_dir, iris_data):
    X, _ = iris_data
    path = custom_model(custom_package, models_dir, "slowish", lambda m: m.SlowModel(delay=0.2).fit(X))
    env = iris_env(path, PYTHONPATH=str(custom_package), MODELSERVE_DRAIN_SECONDS="1")
    server = start_server(tmp_path, env)
    answered: list[int] = []
    refused: list[str] = []
    ready_during_drain: list[int] = []

    async def client_loop(client: httpx.AsyncClient, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            try:
                resp = await client.post(V1, json={"instances": [[1.0, 2.0, 3.0, 4.0]]})
            except httpx.ConnectError as err:  # never accepted: the listener is closed
                refused.append(type(err).__name__)
                await asyncio.sleep(0.05)
                continue
            except httpx.TransportError as err:  # accepted, then cut off: that is a failure
                answered.append(-1)
                refused.append(f"cut: {type(err).__name__}")
                continue
            answered.append(resp.status_code)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            stop_at = time.monotonic() + 4.0
            loops = [asyncio.create_task(client_loop(client, stop_at)) for _ in range(8)]
            await asyncio.sleep(1.0)
            before = len(answered)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as probe:
                ready_during_drain.append((await probe.get("/v2/health/ready")).status_code)
            await asyncio.gather(*loops)
            assert len(answered) > before, "requests kept being served while draining"

    asyncio.run(scenario())
    code = server.process.wait(30)
    assert code == 0, server.stderr()
    assert answered and set(answered) == {200}, f"answered {len(answered)}: {sorted(set(answered))} {refused}"
    assert refused, "the listener should have closed before the clients stopped"
    assert ready_during_drain == [503]
    events = [r["event"] for r in server.log_lines() if r.get("event") in ("ready", "draining")]
    assert events == ["ready", "draining"]
