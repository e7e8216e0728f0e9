"""Serving benchmark: modelserve against MLServer, KServe's ModelServer and a bare ASGI floor.

gRPC rows (`--servers modelserve-grpc,mlserver-grpc`): the same model over OIP v2 gRPC, driven by
benchmarks/grpc_load.py (a grpcio asyncio client, one channel per call in flight) on core 1 instead of wrk.

Every server gets the same iris model (StandardScaler + LogisticRegression, joblib; and its ONNX export),
runs on core 0 (`taskset -c 0`), and is driven by wrk on core 1 over loopback with the same OIP v2 body.
Prints req/s, p50 and p99 per point, resident memory after each server's run, the ratios against the best
peer, and a markdown table. Peers live in their own virtualenvs (their dependencies conflict with ours).

    python benchmarks/serving_bench.py            # creates the virtualenvs on first use
    python benchmarks/serving_bench.py --servers modelserve,floor --duration 5
    python benchmarks/serving_bench.py --servers modelserve --baseline-ref HEAD~3   # before/after, one run

Needs: wrk and taskset (util-linux) on PATH, uv to build the virtualenvs, 2+ cores.
Stdlib only, so any Python 3.11 runs it; the models are trained inside the floor's virtualenv.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.net import free_port

REPO = Path(__file__).resolve().parent.parent
PEERS_DIR = REPO / "benchmarks" / "peers"
LUA_SCRIPT = REPO / "benchmarks" / "wrk_post.lua"
DEFAULT_VENV_ROOT = Path.home() / ".cache" / "modeldeploy" / "bench-venvs"
API_KEY = "bench-key-0123456789abcdef"
SETOSA = [5.1, 3.5, 1.4, 0.2]
PEERS = ("mlserver", "kserve")
SERVER_CORE, LOAD_CORE = "0", "1"


def pinned(name: str) -> str:
    """`name==version` from serving-image/constraints.txt, so every server unpickles with the same sklearn."""
    for line in (REPO / "serving-image" / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line.strip()
    return name


def venv_requirements(modelserve: list[str]) -> dict[str, list[str]]:
    sklearn, joblib, numpy = pinned("scikit-learn"), pinned("joblib"), pinned("numpy")
    return {
        "modelserve": [*modelserve, sklearn, numpy],
        "mlserver": ["mlserver", "mlserver-sklearn", sklearn, joblib],
        "kserve": ["kserve", sklearn, joblib],
        # The floor's virtualenv also trains the models (skl2onnx), so peers never need modelserve installed.
        "floor": [
            "uvicorn[standard]",
            "orjson",
            pinned("onnxruntime"),
            "skl2onnx",
            "onnx",
            sklearn,
            joblib,
            numpy,
        ],
    }


def modelserve_source(ref: str | None, into: Path) -> tuple[list[str], str]:
    """What to install as modelserve (the editable working tree or a commit's serving-image/), and a label."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if ref is None:
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "serving-image"], capture_output=True, text=True
        )
        label = f"working tree at {head.stdout.strip()}" + (" + uncommitted changes" if dirty.stdout else "")
        return ["-e", f"{REPO / 'serving-image'}[sklearn,onnx]"], label
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "serving-image"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", ref], capture_output=True, text=True
    )
    return [
        f"{into / 'serving-image'}[sklearn,onnx]",
        "--reinstall-package",
        "modelserve",
    ], f"{ref} ({commit.stdout.strip()})"


def ensure_venv(root: Path, name: str, requirements: list[str]) -> Path:
    """Creates (once per requirement set) a virtualenv under root; returns its bin directory."""
    venv = root / name
    stamp = venv / ".bench-requirements"
    # An editable install follows code changes by itself; dependency changes come with pyproject.toml.
    pyprojects = [Path(r.split("[")[0]) / "pyproject.toml" for r in requirements if r.startswith("/")]
    fingerprint = "\n".join(requirements + [p.read_text() for p in pyprojects if p.exists()])
    wanted = hashlib.sha256(fingerprint.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return venv / "bin"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        raise SystemExit("serving_bench.py needs uv (pip install uv) to build the virtualenvs")
    print(f"# setting up virtualenv {venv}", file=sys.stderr)
    subprocess.run([uv, "venv", "-q", "--allow-existing", "--python", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([uv, "pip", "install", "-q", "--python", python, *requirements], check=True)
    stamp.write_text(wanted)
    return venv / "bin"


@dataclass
class Point:
    server: str
    model: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float  # the server's CPU time per request: robust to a busy machine
    core_share: float  # the server's CPU time over wall time: below ~0.9 under load, others took its core


@dataclass
class ServerRun:
    name: str
    points: list[Point] = field(default_factory=list)
    rss_mb: float | None = None


@dataclass
class ServerSpec:
    name: str
    command: list[str]
    env: dict[str, str]
    ready_url: str
    infer_url: str
    api_key: str = ""
    grpc_target: str = ""  # host:port: the load is gRPC (grpc_load.py), not wrk


def v2_body(input_name: str = "input") -> bytes:
    tensor = {"name": input_name, "shape": [1, 4], "datatype": "FP32", "data": SETOSA}
    return json.dumps({"inputs": [tensor]}).encode()


def modelserve_spec(bin_dir: Path, model_path: Path, work: Path) -> ServerSpec:
    """modelserve as production runs it: API keys, metrics, request logs at default sampling, a rate limit."""
    keys_file = work / "api-keys"
    keys_file.write_text(f"# benchmark key\n{API_KEY}\n")
    port = free_port()
    return ServerSpec(
        name="modelserve",
        command=[str(bin_dir / "modelserve"), "serve"],
        env={
            "MODELSERVE_HOST": "127.0.0.1",
            "MODELSERVE_PORT": str(port),
            "MODELSERVE_MODEL_PATH": str(model_path),
            "MODELSERVE_MODEL_NAME": "iris",
            "MODELSERVE_MODEL_VERSION": "1",
            "MODELSERVE_MODEL_SHA256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
            "MODELSERVE_WORKERS": "1",
            "MODELSERVE_API_KEYS_FILE": str(keys_file),
            # Switched on, but high enough never to bind under this load.
            "MODELSERVE_RATE_LIMIT_RPS": "1000000",
            "MODELSERVE_RATE_LIMIT_BURST": "1000000",
            "MODELSERVE_TERMINATION_MESSAGE_PATH": str(work / "termination-log"),
        },
        ready_url=f"http://127.0.0.1:{port}/v2/health/ready",
        infer_url=f"http://127.0.0.1:{port}/v2/models/iris/infer",
        api_key=API_KEY,
    )


def modelserve_grpc_spec(bin_dir: Path, model_path: Path, work: Path) -> ServerSpec:
    """modelserve as above, measured over its gRPC port."""
    spec = modelserve_spec(bin_dir, model_path, work)
    port = free_port()
    spec.name, spec.grpc_target = "modelserve-grpc", f"127.0.0.1:{port}"
    spec.env["MODELSERVE_GRPC_PORT"] = str(port)
    return spec


def mlserver_grpc_spec(bin_dir: Path, model_path: Path, work: Path) -> ServerSpec:
    """MLServer as above, measured over its gRPC port."""
    spec = mlserver_spec(bin_dir, model_path, work)
    settings = json.loads((work / "mlserver" / "settings.json").read_text())
    spec.name, spec.grpc_target = "mlserver-grpc", f"127.0.0.1:{settings['grpc_port']}"
    return spec


def floor_spec(bin_dir: Path, model_path: Path, work: Path) -> ServerSpec:
    port = free_port()
    return ServerSpec(
        name="floor",
        command=[
            str(bin_dir / "uvicorn"),
            "floor_app:app",
            "--app-dir",
            str(PEERS_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={"FLOOR_MODEL_PATH": str(model_path)},
        ready_url=f"http://127.0.0.1:{port}/health",
        infer_url=f"http://127.0.0.1:{port}/v2/models/iris/infer",
    )


def mlserver_spec(bin_dir: Path, model_path: Path, work: Path) -> ServerSpec:
    """MLServer with its defaults except parallel_workers=0 (inference in the HTTP process)."""
    port = free_port()
    settings_dir = work / "mlserver"
    (settings_dir / "iris").mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
    }
    model_settings = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_path), "version": "1"},
    }
    (settings_dir / "settings.json").write_text(json.dumps(settings))
    (settings_dir / "iris" / "model-settings.json").write_text(json.dumps(model_settings))
    return ServerSpec(
        name="mlserver",
        command=[str(bin_dir / "mlserver"), "start", str(settings_dir)],
        env={},
        ready_url=f"http://127.0.0.1:{port}/v2/health/ready",
        infer_url=f"http://127.0.0.1:{port}/v2/models/iris/infer",
    )


def kserve_spec(bin_dir: Path, model_path: Path, work: Path) -> ServerSpec:
    port = free_port()
    return ServerSpec(
        name="kserve",
        command=[
            str(bin_dir / "python"),
            str(PEERS_DIR / "kserve_iris.py"),
            "--model_path",
            str(model_path),
            "--http_port",
            str(port),
            "--grpc_port",
            str(free_port()),
            "--enable_grpc",
            "false",
            "--workers",
            "1",
        ],
        env={},
        ready_url=f"http://127.0.0.1:{port}/v2/health/ready",
        infer_url=f"http://127.0.0.1:{port}/v2/models/iris/infer",
    )


# Which servers serve which model files (MLServer and KServe have no ONNX runtime of their own).
SPEC_BUILDERS = {
    ("modelserve", "sklearn"): modelserve_spec,
    ("modelserve", "onnx"): modelserve_spec,
    ("baseline", "sklearn"): modelserve_spec,  # modelserve built from --baseline-ref
    ("baseline", "onnx"): modelserve_spec,
    ("mlserver", "sklearn"): mlserver_spec,
    ("modelserve-grpc", "sklearn"): modelserve_grpc_spec,
    ("mlserver-grpc", "sklearn"): mlserver_grpc_spec,
    ("kserve", "sklearn"): kserve_spec,
    ("floor", "sklearn"): floor_spec,
    ("floor", "onnx"): floor_spec,
}


def process_tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU time of the server's process tree so far."""
    ticks = 0
    for pid in process_tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(root_pid: int) -> float:
    """Resident memory of the server's whole process tree (workers included), in MB."""
    total_kb = 0
    for pid in process_tree(root_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total_kb += int(match.group(1)) if match else 0
    return total_kb / 1024


def http(url: str, body: bytes | None = None, api_key: str = "", timeout: float = 5.0) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


@contextmanager
def running(spec: ServerSpec, log_path: Path, timeout: float = 180.0) -> Iterator[subprocess.Popen]:
    env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *spec.command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while http(spec.ready_url, timeout=1.0)[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{spec.name} did not become ready (exit {proc.poll()}):\n{tail}")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def check_prediction(spec: ServerSpec, body: bytes) -> None:
    """The server must answer the benchmark request correctly (setosa, class 0) before it is timed."""
    status, payload = http(spec.infer_url, body, spec.api_key)
    if status != 200:
        raise RuntimeError(f"{spec.name}: prediction returned {status}: {payload[:300]!r}")
    outputs = json.loads(payload)["outputs"]
    if not any(output["data"][:1] in ([0], ["0"]) for output in outputs):
        raise RuntimeError(f"{spec.name}: expected class 0 for setosa, got {payload[:300]!r}")


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparseable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def parse_wrk(output: str) -> WrkResult:
    """Throughput, latency percentiles, failed and total requests from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = parse_duration_ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))
    p99 = parse_duration_ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(n) for n in match.groups())
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return WrkResult(rps, p50, p99, errors, requests)


def run_wrk(spec: ServerSpec, body_file: Path, concurrency: int, duration: float) -> WrkResult:
    env = {**os.environ, "WRK_BODY_FILE": str(body_file), "WRK_API_KEY": spec.api_key}
    command = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{duration:g}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        spec.infer_url,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return parse_wrk(result.stdout)


def run_grpc_load(spec: ServerSpec, bin_dir: Path, concurrency: int, duration: float) -> WrkResult:
    """grpc_load.py on the load core, run by the modelserve virtualenv's python (grpcio, the OIP stubs)."""
    python = bin_dir.parent.parent / "modelserve" / "bin" / "python"
    command = ["taskset", "-c", LOAD_CORE, str(python), str(REPO / "benchmarks" / "grpc_load.py"),
               spec.grpc_target, str(concurrency), f"{duration:g}", spec.api_key]  # fmt: skip
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    if result["errors"]:
        print(
            f"# {spec.name}: {result['errors']} failed calls, last: {result['last_error']}", file=sys.stderr
        )
    return WrkResult(result["rps"], result["p50_ms"], result["p99_ms"], result["errors"], result["requests"])


def summarize_profile(raw: Path, top: int = 12) -> str:
    """Self time by package and by function from a py-spy raw (collapsed stacks) file."""
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        total += int(count)
        match = re.match(r"(.+?) \((.+?):\d+\)$", leaf)
        function, filename = match.groups() if match else (leaf, "?")
        by_package[filename.split("/")[0]] += int(count)
        by_function[f"{function} ({filename})"] += int(count)
    lines = [f"{raw.name}: {total} samples; self time by package, then by function"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_package.most_common(top)]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_function.most_common(top)]
    return "\n".join(lines)


@contextmanager
def profiled(pid: int, output: Path, seconds: float) -> Iterator[None]:
    """py-spy samples the server while the point runs (it costs some throughput: the figures are marked)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    duration = str(max(1, int(seconds) - 1))
    command = [py_spy, "record", "--pid", str(pid), "--duration", duration, "--rate", "250",
               "--format", "raw", "--nonblocking", "--output", str(output)]  # fmt: skip
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.wait(timeout=60)
        if output.exists():
            print(summarize_profile(output), file=sys.stderr)


def bench_server(
    key: str,
    spec: ServerSpec,
    concurrencies: list[int],
    duration: float,
    work: Path,
    profile: bool = False,
    bin_dir: Path | None = None,
) -> ServerRun:
    server, model_kind = key.split("/")
    body_file = work / "body.json"
    body_file.write_bytes(v2_body())
    run = ServerRun(name=key)

    def load(concurrency: int, seconds: float) -> WrkResult:
        if spec.grpc_target and bin_dir is not None:
            return run_grpc_load(spec, bin_dir, concurrency, seconds)
        return run_wrk(spec, body_file, concurrency, seconds)

    with running(spec, work / f"{server}-{model_kind}.log") as proc:
        check_prediction(spec, body_file.read_bytes())
        load(8, min(3.0, duration))  # warm-up, not reported
        for concurrency in concurrencies:
            raw = work / f"profile-{server}-{model_kind}-c{concurrency}.txt"
            cpu_before, wall_before = cpu_seconds(proc.pid), time.monotonic()
            with profiled(proc.pid, raw, duration) if profile else contextlib.nullcontext():
                wrk = load(concurrency, duration)
            cpu_used = cpu_seconds(proc.pid) - cpu_before
            cpu_us = cpu_used * 1e6 / max(wrk.requests, 1)
            share = cpu_used / (time.monotonic() - wall_before)
            point = Point(
                server, model_kind, concurrency, wrk.rps, wrk.p50_ms, wrk.p99_ms, wrk.errors, cpu_us, share
            )
            run.points.append(point)
            print(
                f"# {key:18} c={concurrency:<3} {wrk.rps:9.0f} req/s  p50 {wrk.p50_ms:7.2f} ms"
                f"  p99 {wrk.p99_ms:7.2f} ms  cpu {cpu_us:6.0f} us/req  core {share:.2f}"
                f"  errors {wrk.errors}",
                file=sys.stderr,
                flush=True,
            )
        run.rss_mb = rss_mb(proc.pid)
    return run


def best_peer(runs: dict[str, ServerRun], concurrency: int) -> Point | None:
    points = [
        p
        for name in PEERS
        if name + "/sklearn" in runs
        for p in runs[name + "/sklearn"].points
        if p.concurrency == concurrency
    ]
    return max(points, key=lambda p: p.rps, default=None)


def point_of(runs: dict[str, ServerRun], key: str, concurrency: int) -> Point | None:
    return next((p for p in runs[key].points if p.concurrency == concurrency), None) if key in runs else None


def verdicts(runs: dict[str, ServerRun]) -> list[tuple[str, str, str, str]]:
    """(target, measured, required, pass/miss) rows for the speed targets (docs/benchmarks.md)."""
    rows: list[tuple[str, str, str, str]] = []

    def row(target: str, value: float, required: str, ok: bool, fmt: str = "{:.2f}") -> None:
        rows.append((target, fmt.format(value), required, "pass" if ok else "MISS"))

    ours = "modelserve/sklearn"
    if (mine := point_of(runs, ours, 1)) and (peer := best_peer(runs, 1)):
        row(
            f"c=1 p50 vs best peer ({peer.server})",
            mine.p50_ms / peer.p50_ms,
            "<= 0.70x",
            mine.p50_ms <= 0.7 * peer.p50_ms,
            "{:.2f}x",
        )
    if (mine := point_of(runs, ours, 8)) and (peer := best_peer(runs, 8)):
        row(
            f"c=8 req/s vs best peer ({peer.server})",
            mine.rps / peer.rps,
            ">= 2.00x",
            mine.rps >= 2 * peer.rps,
            "{:.2f}x",
        )
        row(
            f"c=8 p99 vs best peer ({peer.server})",
            mine.p99_ms / peer.p99_ms,
            "<= 1.00x",
            mine.p99_ms <= peer.p99_ms,
            "{:.2f}x",
        )
    if (mine := point_of(runs, ours, 64)) and (peer := best_peer(runs, 64)):
        row(
            f"c=64 req/s vs best peer ({peer.server})",
            mine.rps / peer.rps,
            ">= 3.00x",
            mine.rps >= 3 * peer.rps,
            "{:.2f}x",
        )
        row("c=64 p99 (ms)", mine.p99_ms, "< 50", mine.p99_ms < 50, "{:.1f}")
    if mine := point_of(runs, "modelserve/onnx", 16):
        row("ONNX c=16 req/s", mine.rps, ">= 8000", mine.rps >= 8000, "{:.0f}")
    for key in ("sklearn", "onnx"):
        for mine in runs[f"modelserve/{key}"].points if f"modelserve/{key}" in runs else []:
            if base := point_of(runs, f"baseline/{key}", mine.concurrency):
                ratio = mine.cpu_us_per_request / base.cpu_us_per_request
                rows.append((f"{key} c={mine.concurrency} CPU/req vs baseline", f"{ratio:.2f}x", "-", "info"))
    peer_rss = [runs[f"{n}/sklearn"].rss_mb for n in PEERS if f"{n}/sklearn" in runs]
    if ours in runs and runs[ours].rss_mb and peer_rss:
        best = min(peer_rss)
        row(
            "RSS vs leanest peer",
            runs[ours].rss_mb / best,
            "<= 0.80x",
            runs[ours].rss_mb <= 0.8 * best,
            "{:.2f}x",
        )
    return rows


def markdown(runs: dict[str, ServerRun]) -> str:
    lines = [
        "| server | model | c | req/s | p50 ms | p99 ms | CPU µs/req | core used | failed | RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs.values():
        for p in run.points:
            lines.append(
                f"| {p.server} | {p.model} | {p.concurrency} | {p.rps:,.0f} | {p.p50_ms:.2f} | "
                f"{p.p99_ms:.2f} | {p.cpu_us_per_request:.0f} | {p.core_share:.2f} | {p.errors} | "
                f"{run.rss_mb:.0f} |"
            )
    rows = verdicts(runs)
    if rows:
        lines += ["", "| target | measured | required | result |", "|---|---:|---:|---|"]
        lines += [f"| {t} | {m} | {r} | {v} |" for t, m, r, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="modelserve,mlserver,kserve,floor")
    parser.add_argument("--concurrency", default="1,8,64", help="points for the joblib model")
    parser.add_argument("--onnx-concurrency", default="16", help="points for the ONNX export ('' to skip)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument("--venv-root", type=Path, default=DEFAULT_VENV_ROOT)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    parser.add_argument(
        "--modelserve-ref",
        help="benchmark this commit's serving-image/ (e.g. HEAD) instead of the working tree",
    )
    parser.add_argument(
        "--baseline-ref",
        help="also run modelserve built from this commit (as 'baseline', just before modelserve): "
        "a before/after comparison in the same run",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy modelserve during its points (pip py-spy)"
    )
    parser.add_argument(
        "--modelserve-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra MODELSERVE_* setting, e.g. MODELSERVE_LOG_SAMPLE_RATE=0 to price a feature (repeatable)",
    )
    args = parser.parse_args(argv)

    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            parser.error(f"{tool} is not on PATH (apt-get install wrk util-linux)")
    if (os.cpu_count() or 1) < 2:
        parser.error("needs 2 cores: the server on core 0, wrk on core 1")
    servers = [s for s in args.servers.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    try:
        modelserve, modelserve_label = modelserve_source(args.modelserve_ref, work)
        requirements = venv_requirements(modelserve)
        if args.baseline_ref and "modelserve" in servers:
            (work / "baseline").mkdir()
            baseline, baseline_label = modelserve_source(args.baseline_ref, work / "baseline")
            requirements["baseline"] = venv_requirements(baseline)["modelserve"]
            servers.insert(servers.index("modelserve"), "baseline")
        # A commit's build gets its own virtualenv, so the editable working-tree one stays as it is.
        venv_names = {name: name.removesuffix("-grpc") for name in {*servers, "floor"}}
        if any(name.endswith("-grpc") for name in servers):
            venv_names["modelserve"] = "modelserve"  # its python runs grpc_load.py
        if args.modelserve_ref and "modelserve" in venv_names:
            venv_names["modelserve"] = "modelserve-ref"
        if "baseline" in venv_names:
            venv_names["baseline"] = "modelserve-baseline"
        bins = {
            name: ensure_venv(args.venv_root, venv, requirements[name.removesuffix("-grpc")])
            for name, venv in venv_names.items()
        }
        load_before = os.getloadavg()[0]
        subprocess.run(
            [str(bins["floor"] / "python"), str(PEERS_DIR / "train_iris.py"), str(work)], check=True
        )
        models = {"sklearn": work / "iris.joblib", "onnx": work / "iris.onnx"}
        points = {
            "sklearn": [int(c) for c in args.concurrency.split(",") if c],
            "onnx": [int(c) for c in args.onnx_concurrency.split(",") if c],
        }
        runs = {}
        for model_kind in ("sklearn", "onnx"):
            for server in servers:
                builder = SPEC_BUILDERS.get((server, model_kind))
                if builder and points[model_kind]:
                    spec = builder(bins[server], models[model_kind], work)
                    if server in ("modelserve", "baseline", "modelserve-grpc"):
                        spec.env.update(item.split("=", 1) for item in args.modelserve_env)
                    key = f"{server}/{model_kind}"
                    profile = args.profile and server == "modelserve"
                    runs[key] = bench_server(
                        key, spec, points[model_kind], args.duration, work, profile, bins[server]
                    )
    finally:
        if args.keep:
            print(f"# work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(
        " ".join(["command: python benchmarks/serving_bench.py", *(sys.argv[1:] if argv is None else argv)])
    )
    print(f"modelserve: {modelserve_label}")
    if "baseline" in servers:
        print(f"baseline: modelserve at {baseline_label}")
    print(
        f"wrk -t1 on core {LOAD_CORE}, each server on core {SERVER_CORE}, {args.duration:g} s per point, "
        "OIP v2 body of one iris row.\n"
        "CPU µs/req = the server's CPU time over requests served (stable on a busy machine, unlike req/s);\n"
        "core used = its CPU time over wall time (a saturated server well below 1.0 had its core taken by\n"
        "other work, which inflates p99); RSS = resident memory of its process tree after its run\n"
    )
    # Other work on the machine moves req/s and p99 (the servers share core 0 with it); say how busy it was.
    print(
        f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} cores\n"
    )
    if args.profile:
        print("modelserve ran under py-spy: its figures are lower than an unprofiled run's\n")
    print(markdown(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
