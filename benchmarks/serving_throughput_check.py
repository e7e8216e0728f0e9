"""Quick local throughput check for modelserve (not a test; the real comparison lives in benchmarks/).

Trains the iris pipeline (StandardScaler + LogisticRegression), serves it with one worker pinned to core 0
with production switches on (API key, metrics, request log at its default sampling, a non-binding rate
limit), drives it with wrk pinned to core 1, and prints req/s, p50 and p99 at each concurrency.

    nice python benchmarks/serving_throughput_check.py [--format onnx] [--seconds 5] [--concurrency 1 8 64]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from harness.models import train_iris
from harness.net import free_port

BODY = '{"instances":[[5.1,3.5,1.4,0.2]]}'


def train(directory: Path, fmt: str) -> Path:
    import joblib

    model = train_iris()
    if fmt == "onnx":
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, 4]))], options={"zipmap": False})
        path = directory / "iris.onnx"
        path.write_bytes(onx.SerializeToString())
        return path
    path = directory / "iris.joblib"
    joblib.dump(model, path)
    return path


def cpu_seconds(pid: int) -> float:
    """utime + stime of the server: CPU per request is steadier than req/s on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_wrk(output: str) -> tuple[float, str, str]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        print(f"  warning: {errors.group(1)} non-2xx responses", file=sys.stderr)
    return rps, p50, p99


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", choices=["sklearn", "onnx"], default="sklearn")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="modelserve-throughput-"))
    model = train(work, args.format)
    (work / "api-keys").write_text("bench-key\n")
    port = free_port()
    env = {
        **os.environ,
        "MODELSERVE_MODEL_PATH": str(model),
        "MODELSERVE_MODEL_NAME": "iris",
        "MODELSERVE_MODEL_SHA256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "MODELSERVE_PORT": str(port),
        "MODELSERVE_HOST": "127.0.0.1",
        "MODELSERVE_API_KEYS_FILE": str(work / "api-keys"),
        "MODELSERVE_RATE_LIMIT_RPS": "1000000",
        "MODELSERVE_TERMINATION_MESSAGE_PATH": str(work / "termination"),
    }
    with open(work / "server.log", "wb") as log:
        server = subprocess.Popen(
            ["taskset", "-c", args.server_core, sys.executable, "-m", "modelserve", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        lua = work / "post.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = '{BODY}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.headers["Authorization"] = "Bearer bench-key"\n'
        )
        print(
            f"modelserve {args.format}, 1 worker on core {args.server_core}, wrk on core {args.client_core}"
        )
        print(f"{'conc':>5} {'req/s':>10} {'p50':>10} {'p99':>10} {'cpu us/req':>11}")
        for conc in args.concurrency:
            cpu_before = cpu_seconds(server.pid)
            out = subprocess.run(
                [
                    "taskset",
                    "-c",
                    args.client_core,
                    "wrk",
                    "-t1",
                    f"-c{conc}",
                    f"-d{args.seconds}s",
                    "--latency",
                    "-s",
                    str(lua),
                    f"{url}/v1/models/iris:predict",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rps, p50, p99 = parse_wrk(out)
            cpu_per_request = (cpu_seconds(server.pid) - cpu_before) / (rps * args.seconds) * 1e6
            print(f"{conc:>5} {rps:>10.0f} {p50:>10} {p99:>10} {cpu_per_request:>11.0f}")
        rss = Path(f"/proc/{server.pid}/status").read_text()
        print("server", re.search(r"VmRSS:\s+(\d+ kB)", rss).group(1), "resident")
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
