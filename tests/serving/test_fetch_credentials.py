"""`modelserve fetch` with credentials from a Secret, as the operator passes them to the init container:
S3 keys against moto's S3 server requiring authentication, an `Authorization` header against a loopback
https-like origin; a refusal says "access denied" and names the Secret, never a value, and reaches the
ModelDeployment's Degraded condition through the init container's termination message."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.serving import moto_s3_requiring_auth
from modeldeploy.desired.pods import pod_failure

PAYLOAD = os.urandom(200_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
KEY = "iris/v3/model.onnx"
SOURCE = "secret/iris-store"
TOKEN = "Bearer s3cr3t-token-value"
WRONG_SECRET = "wrong-secret-access-key-value"


def fetch(uri: str, dest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only what the init container gets: no AWS_* of the test machine leaks in.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELSERVE_"))}
    termination = dest.parent / "termination-log"
    full = {**base, "MODELSERVE_TERMINATION_MESSAGE_PATH": str(termination), **env}
    command = [sys.executable, "-m", "modelserve", "fetch", uri, str(dest), "--sha256", DIGEST]
    return subprocess.run(command, capture_output=True, text=True, env=full, timeout=120)


@pytest.fixture(scope="module")
def store():
    with moto_s3_requiring_auth({KEY: PAYLOAD}) as s3:
        yield s3


def s3_env(store, secret_access_key: str) -> dict[str, str]:
    """The init container's variables from the Secret's keys, and the Secret's name."""
    return {
        "AWS_ACCESS_KEY_ID": store.access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_ENDPOINT_URL": store.endpoint,
        "AWS_REGION": "us-east-1",
        "MODELSERVE_FETCH_CREDENTIALS_SOURCE": SOURCE,
    }


def test_s3_with_the_secrets_keys_fetches_the_model(store, tmp_path):
    dest = tmp_path / "model.onnx"
    result = fetch(f"s3://{store.bucket}/{KEY}", dest, s3_env(store, store.secret_access_key))
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == PAYLOAD
    assert store.secret_access_key not in result.stdout + result.stderr


def init_container_pod(message: str, code: int) -> dict:
    terminated = {"exitCode": code, "reason": "Error", "message": message}
    status = {"name": "fetch-model", "state": {"terminated": terminated}, "restartCount": 0}
    return {"metadata": {"name": "iris-blue-7d9-abc"}, "status": {"initContainerStatuses": [status]}}


@pytest.mark.parametrize(
    ("change", "says"),
    [({"AWS_SECRET_ACCESS_KEY": WRONG_SECRET}, "failed (SignatureDoesNotMatch): access denied"),
     ({"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNUNKNOWN00"}, "failed (InvalidAccessKeyId): access denied"),
     ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "failed: no S3 credentials found")],
    ids=["wrong secret key", "unknown access key", "empty keys"],
)  # fmt: skip
def test_s3_refusing_the_keys_fails_access_denied_naming_the_secret_and_degraded_quotes_it(
    store, tmp_path, change, says
):
    env = {**s3_env(store, store.secret_access_key), **change}
    dest = tmp_path / "model.onnx"
    result = fetch(f"s3://{store.bucket}/{KEY}", dest, env)
    assert result.returncode == 4, result.stderr
    assert says in result.stderr and f"with the credentials of {SOURCE}" in result.stderr, result.stderr
    assert not dest.exists()
    for value in (store.secret_access_key, WRONG_SECRET):
        assert value not in result.stdout + result.stderr
    # The kubelet copies the file into the init container's terminated state; the operator quotes it.
    message = (tmp_path / "termination-log").read_text()
    assert says in message and SOURCE in message
    failure = pod_failure(init_container_pod(message, result.returncode))
    assert failure is not None and failure.reason == "ModelDownloadFailed"
    assert "container fetch-model exited with code 4" in failure.message
    assert says in failure.message and SOURCE in failure.message, failure.message


class HeaderCheckingOrigin(BaseHTTPRequestHandler):
    """PAYLOAD only to `Authorization: <TOKEN>`; /moved.onnx redirects to another origin; records headers."""

    seen: list[tuple[str, str | None]]
    elsewhere: str

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.endswith("/moved.onnx"):
            self.send_response(302)
            self.send_header("Location", f"{self.elsewhere}/model.onnx")
            self.end_headers()
            return
        if self.path.endswith(".schema.json"):
            self.send_response(404)
            self.end_headers()
            return
        if self.headers.get("Authorization") != TOKEN and self.server.server_port != self.open_port:
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def origins() -> Iterator[tuple[str, str, list[tuple[int, str, str | None]]]]:
    """(the protected origin, another origin that needs no header, every request as (port, path, header))."""
    seen: list = []
    servers = []
    for _ in range(2):
        handler = type("Handler", (HeaderCheckingOrigin,), {"seen": seen})
        servers.append(ThreadingHTTPServer(("127.0.0.1", 0), handler))
    protected, other = (f"http://127.0.0.1:{s.server_port}" for s in servers)
    for server in servers:
        server.RequestHandlerClass.elsewhere = other
        server.RequestHandlerClass.open_port = servers[1].server_port
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield protected, other, seen
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_https_with_the_secrets_header_fetches_and_never_prints_it(origins, tmp_path):
    protected, _, _ = origins
    dest = tmp_path / "model.onnx"
    env = {"MODELSERVE_FETCH_AUTHORIZATION": TOKEN, "MODELSERVE_FETCH_CREDENTIALS_SOURCE": SOURCE}
    result = fetch(f"{protected}/model.onnx", dest, env)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == PAYLOAD
    assert "s3cr3t" not in result.stdout + result.stderr


def test_https_refusing_the_header_fails_access_denied_naming_the_secret(origins, tmp_path):
    protected, _, _ = origins
    env = {"MODELSERVE_FETCH_AUTHORIZATION": "Bearer expired", "MODELSERVE_FETCH_CREDENTIALS_SOURCE": SOURCE}
    result = fetch(f"{protected}/model.onnx", tmp_path / "model.onnx", env)
    assert result.returncode == 4
    assert "answered HTTP 401: access denied with the credentials of secret/iris-store" in result.stderr
    assert "expired" not in result.stderr


def test_the_header_is_not_sent_to_another_origin_after_a_redirect(origins, tmp_path):
    protected, other, seen = origins
    env = {"MODELSERVE_FETCH_AUTHORIZATION": TOKEN, "MODELSERVE_FETCH_CREDENTIALS_SOURCE": SOURCE}
    result = fetch(f"{protected}/moved.onnx", tmp_path / "model.onnx", env)
    assert result.returncode == 0, result.stderr
    assert ("/moved.onnx", TOKEN) in seen
    assert ("/model.onnx", None) in seen and ("/model.onnx", TOKEN) not in seen, seen
    assert other.rsplit(":", 1)[1] != protected.rsplit(":", 1)[1]
