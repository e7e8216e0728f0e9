"""The request log is buffered in memory, yet every prediction gets exactly one whole JSON line: within a
moment while serving, and at shutdown (SIGTERM, exit) for whatever was still buffered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest

from harness.serving import iris_env, start_server
from modelserve.reqlog import CHUNK_BYTES, LineBuffer

V1 = "/v1/models/iris:predict"
ROW = [5.1, 3.5, 1.4, 0.2]


def request_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


async def post_all(url: str, ids: list[str], rows: int = 1, fresh_connections: bool = False) -> list[int]:
    """POST one prediction per id, 16 at a time; returns the status codes (0: connection refused)."""
    limits = httpx.Limits(max_keepalive_connections=0) if fresh_connections else httpx.Limits()
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def post(rid: str) -> int:
            try:
                response = await client.post(
                    V1, json={"instances": [ROW] * rows}, headers={"X-Request-ID": rid}
                )
            except httpx.ConnectError:  # never accepted: the listener closed after the drain
                return 0
            return response.status_code

        statuses: list[int] = []
        for start in range(0, len(ids), 16):
            statuses += await asyncio.gather(*(post(rid) for rid in ids[start : start + 16]))
        return statuses


def stdout_records(server) -> list[dict]:
    """Every stdout line must be one whole JSON object: a torn or interleaved line fails here."""
    text = server.stdout_path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_lines_reach_stdout_within_a_moment_while_serving(tmp_path, iris_joblib):
    server = start_server(tmp_path, iris_env(iris_joblib))
    try:
        ids = request_ids("live", 40)
        assert asyncio.run(post_all(server.url, ids)) == [200] * 40
        started = time.monotonic()
        lines = server.predictions_logged(at_least=40, timeout=5.0)
        waited = time.monotonic() - started
        assert sorted(r["request_id"] for r in lines) == ids
        assert server.process.poll() is None, "the lines came out while the server kept running"
        assert waited < 2.0, f"buffered lines took {waited:.2f}s to reach stdout"
    finally:
        server.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_every_prediction_logged_exactly_once_through_sigterm(tmp_path, iris_joblib, workers):
    """Load runs through a SIGTERM (with a drain period): every answered request has its line."""
    env = iris_env(iris_joblib, MODELSERVE_WORKERS=str(workers), MODELSERVE_DRAIN_SECONDS="2")
    server = start_server(tmp_path, env)
    if workers > 1:
        deadline = time.monotonic() + 60
        while len({r["pid"] for r in server.log_lines() if r.get("event") == "ready"}) < workers:
            assert time.monotonic() < deadline, "second worker never became ready"
            time.sleep(0.2)
    answered: list[str] = []

    async def scenario() -> None:
        # 8 rows per request: ~1 kB lines, so several lines share each buffered write.
        before = request_ids("before", 400)
        statuses = await asyncio.gather(
            post_all(server.url, before[:200], rows=8, fresh_connections=workers > 1),
            post_all(server.url, before[200:], rows=8, fresh_connections=workers > 1),
        )
        assert statuses == [[200] * 200] * 2
        answered.extend(before)
        server.process.send_signal(signal.SIGTERM)  # the last lines are still in the buffer now
        during = request_ids("draining", 32)  # readiness is off, but the listener still serves
        statuses = await post_all(server.url, during, rows=8)
        assert set(statuses) <= {200, 0} and statuses[0] == 200, statuses
        answered.extend(rid for rid, status in zip(during, statuses, strict=True) if status == 200)

    asyncio.run(scenario())
    assert server.process.wait(60) == 0, server.stderr()
    records = stdout_records(server)
    predictions = [r for r in records if r.get("event") == "prediction"]
    assert Counter(r["request_id"] for r in predictions) == Counter(answered)
    assert all(r["rows"] == 8 and r["status"] == 200 for r in predictions)
    if workers > 1:
        assert len({r["pid"] for r in predictions}) == workers, "every worker should have logged"


def test_buffered_lines_are_written_at_interpreter_exit(tmp_path):
    code = (
        "from modelserve.reqlog import LINES\n"
        "for i in range(5):\n"
        "    LINES.add(b'{\"n\":%d}\\n' % i)\n"
        "assert LINES.pending == 5\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    assert out.stdout.decode().splitlines() == [f'{{"n":{i}}}' for i in range(5)]


@pytest.mark.parametrize("line_bytes", [100, CHUNK_BYTES - 1, CHUNK_BYTES, 3 * CHUNK_BYTES])
def test_line_buffer_writes_whole_lines_in_order(line_bytes):
    read_end, write_end = os.pipe()
    received = bytearray()

    def drain() -> None:  # a reader on the other end, as a log collector would be
        while chunk := os.read(read_end, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        buffer = LineBuffer(write_end)
        lines = [(b"%05d" % i).ljust(line_bytes - 1, b"x") + b"\n" for i in range(20)]
        for line in lines:
            buffer.add(line)
            assert buffer.pending <= max(1, CHUNK_BYTES // line_bytes)
        buffer.flush()
        assert buffer.pending == 0
    finally:
        os.close(write_end)
        reader.join(30)
        os.close(read_end)
    assert bytes(received) == b"".join(lines)
