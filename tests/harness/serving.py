"""Helpers: real modelserve processes on free loopback ports."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib

from harness.models import user_package
from harness.net import free_port
from harness.poll import wait_for

STARTUP_TIMEOUT = 300.0  # generous: CI machines are small and may be busy

# A user package with its own estimators: a custom transformer, a slow model and failing models.
CUSTOM_PACKAGE = textwrap.dedent(
    '''
    import time

    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin


    class Doubler(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            self.n_features_in_ = np.asarray(X).shape[1]
            return self

        def transform(self, X):
            return np.asarray(X) * 2.0


    class SlowModel(BaseEstimator):
        """Sleeps `delay` seconds per call, except on the first `fast_calls` (the warm-up)."""

        def __init__(self, delay=1.0):
            self.delay = delay

        def fit(self, X, y=None):
            self.n_features_in_ = np.asarray(X).shape[1]
            return self

        def predict(self, X):
            time.sleep(self.delay)
            return np.zeros(len(X))


    class HangingModel(BaseEstimator):
        """Passes warm-up (all-zero rows), then hangs (far past any test) on anything else."""

        def fit(self, X, y=None):
            self.n_features_in_ = np.asarray(X).shape[1]
            return self

        def predict(self, X):
            if np.asarray(X).any():
                time.sleep(3600)
            return np.zeros(len(X))


    class ExplodingModel(BaseEstimator):
        """Passes warm-up (all-zero rows), raises on anything else."""

        def fit(self, X, y=None):
            self.n_features_in_ = np.asarray(X).shape[1]
            return self

        def predict(self, X):
            if np.asarray(X).any():
                raise ValueError("boom: this model refuses non-zero input")
            return np.zeros(len(X))


    class UnwarmableModel(BaseEstimator):
        """Loads fine, but every prediction raises (or, with `short=True`, returns one row too few)."""

        def __init__(self, short=False):
            self.short = short

        def fit(self, X, y=None):
            self.n_features_in_ = np.asarray(X).shape[1]
            return self

        def predict(self, X):
            if self.short:
                return np.zeros(len(X) - 1)
            raise RuntimeError("weights were never trained")
    '''
)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSERVE_")}
    env.update({"MODELSERVE_API_KEYS_FILE": "", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_fetch(
    uri: str, dest: Path, sha256: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`modelserve fetch URI DEST --sha256 HEX` as the init container runs it, with `env` added."""
    return subprocess.run(
        [sys.executable, "-m", "modelserve", "fetch", uri, str(dest), "--sha256", sha256],
        capture_output=True,
        text=True,
        env=base_env(**(env or {})),
        timeout=120,
    )


@dataclass
class Server:
    """A modelserve subprocess; stdout (JSON log lines) and stderr go to files."""

    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path
    termination_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}: {self.stderr()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_lines(self) -> list[dict]:
        import json

        lines = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def predictions_logged(self, at_least: int, timeout: float = 10.0) -> list[dict]:
        """Prediction lines on stdout, waiting up to `timeout` for at least `at_least` (lines are buffered
        for a fraction of a second before they are written)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [rec for rec in self.log_lines() if rec.get("event") == "prediction"]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_server(tmp: Path, env: dict[str, str], args: list[str] | None = None, wait: bool = True) -> Server:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = tmp / f"stdout-{port}.log", tmp / f"stderr-{port}.log"
    termination = tmp / f"termination-{port}"
    full_env = base_env(
        MODELSERVE_PORT=str(port),
        MODELSERVE_HOST="127.0.0.1",
        MODELSERVE_TERMINATION_MESSAGE_PATH=str(termination),
        MODELSERVE_METRICS_DIR=str(tmp / f"metrics-{port}"),
    )
    full_env.update(env)
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelserve", "serve", *(args or [])],
            env=full_env,
            stdout=out,
            stderr=err,
            cwd=tmp,
        )
    server = Server(process, port, stdout_path, stderr_path, termination)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.process.kill()  # never leave a half-started server behind
            server.process.wait()
            raise
    return server


def run_to_exit(tmp: Path, env: dict[str, str], timeout: float = STARTUP_TIMEOUT) -> tuple[int, str, str]:
    """Start a server that is expected to fail: returns (exit code, stderr, termination message)."""
    server = start_server(tmp, env, wait=False)
    try:
        code = server.process.wait(timeout)
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.client.close()
    message = server.termination_path.read_text() if server.termination_path.exists() else ""
    return code, server.stderr(), message


def custom_model(custom_package: Path, models_dir: Path, name: str, build) -> Path:
    """Pickle an estimator from `acme_models` (imported from the temp package)."""
    with user_package(custom_package, "acme_models", forget=False) as acme_models:
        path = models_dir / f"{name}.joblib"
        joblib.dump(build(acme_models), path)
        return path


IRIS_IDENTITY = {"x-model-color": "blue", "x-model-revision": "7c9f1e2"}  # iris_env's colour and revision


def identity(resp: httpx.Response) -> dict[str, str | None]:
    """The X-Model-* headers of a response (lower-case names, None when absent)."""
    return {name: resp.headers.get(name) for name in IRIS_IDENTITY}


def iris_env(model: Path, **extra: str) -> dict[str, str]:
    env = {
        "MODELSERVE_MODEL_PATH": str(model),
        "MODELSERVE_MODEL_NAME": "iris",
        "MODELSERVE_MODEL_VERSION": "3",
        "MODELSERVE_MODEL_REVISION": "7c9f1e2",
        "MODELSERVE_MODEL_COLOR": "blue",
        "MODELSERVE_MODEL_SHA256": sha256_file(model) if model.is_file() else "",
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def static_http_origin(root: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server for the files under `root` on loopback: (base URL, the paths requested so far)."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def moto_s3() -> Iterator[tuple[dict[str, str], Any]]:
    """moto's S3 server on loopback: (the environment a fetch needs, a boto3 client for the test)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    try:
        yield env, client
    finally:
        server.stop()


MOTO_ANONYMOUS_ACTIONS = float("inf")


@dataclass(frozen=True)
class S3Store:
    """moto's S3 requiring signed requests: its endpoint, a bucket, an IAM user's keys that may read it."""

    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str


@contextlib.contextmanager
def moto_s3_requiring_auth(objects: dict[str, bytes], bucket: str = "private-models") -> Iterator[S3Store]:
    """moto_s3 holding `objects` in `bucket`, with IAM authentication switched on after the setup (a user
    with s3:GetObject on the bucket): from then on unknown keys or a wrong signature are refused (as AWS)."""
    import json

    import boto3

    with moto_s3() as (env, s3):
        s3.create_bucket(Bucket=bucket)
        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        iam = boto3.client(
            "iam",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        iam.create_user(UserName="model-reader")
        allow = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/*"}
        policy = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="model-reader", PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="model-reader")["AccessKey"]
        store = S3Store(env["AWS_ENDPOINT_URL"], bucket, key["AccessKeyId"], key["SecretAccessKey"])
        # moto's process-wide switch: every request from now on must be signed by a known user.
        httpx.post(f"{store.endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
        try:
            yield store
        finally:
            httpx.post(f"{store.endpoint}/moto-api/reset-auth", content=str(MOTO_ANONYMOUS_ACTIONS).encode())


def wait_for_status(client: httpx.Client, path: str, status: int, timeout: float = 30) -> httpx.Response:
    """GETs `path` until it answers `status` (a signal handler or a hung call shows on the server's own
    time); the response, or a failed test naming the last one."""

    def answered() -> httpx.Response | None:
        resp = client.get(path)
        return resp if resp.status_code == status else None

    return wait_for(answered, timeout=timeout, interval=0.05, what=f"{path} answering {status}")
