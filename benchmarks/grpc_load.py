"""gRPC load for serving_bench.py: C calls in flight for D seconds, one channel each; JSON on stdout.

    python benchmarks/grpc_load.py HOST:PORT CONCURRENCY SECONDS [API_KEY]

Sends one OIP v2 ModelInfer (model "iris", one FP32 row as raw_input_contents) serialised once, as raw
bytes (no per-call protobuf work in the client). Runs with a Python that has grpcio and modelserve (the
benchmark's modelserve virtualenv); the same bytes serve every OIP v2 gRPC server.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time

import grpc

METHOD = "/inference.GRPCInferenceService/ModelInfer"
SETOSA = (5.1, 3.5, 1.4, 0.2)


def request_bytes() -> bytes:
    from modelserve.oip import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(struct.pack("<4f", *SETOSA))
    return request.SerializeToString()


async def caller(target: str, payload: bytes, metadata: tuple, stop_at: float, out: dict) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)  # no (de)serialisers: bytes in, bytes out
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                await call(payload, metadata=metadata, timeout=5)
            except grpc.aio.AioRpcError as err:
                out["errors"] += 1
                out["last_error"] = f"{err.code().name}: {err.details()}"
                continue
            out["latencies"].append(time.perf_counter() - started)


async def run(target: str, concurrency: int, seconds: float, api_key: str) -> dict:
    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    out: dict = {"errors": 0, "latencies": []}
    payload = request_bytes()
    started = time.monotonic()
    stop_at = started + seconds
    await asyncio.gather(*(caller(target, payload, metadata, stop_at, out) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies = sorted(out.pop("latencies"))

    def percentile(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {
        **out,
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
    }


if __name__ == "__main__":
    target, concurrency, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    key = sys.argv[4] if len(sys.argv) > 4 else ""
    print(json.dumps(asyncio.run(run(target, concurrency, seconds, key))))
