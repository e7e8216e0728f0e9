"""Google Cloud Storage and Azure Blob Storage emulators on loopback, for `modelserve fetch` over gs:// and
azure://: fake-gcs-server built from its Go module and Azurite installed from npm, each once into
~/.cache/modeldeploy/store (built lazily, on the first test that needs it) and then started as a process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from harness.net import free_port
from harness.poll import wait_for

FAKE_GCS_MODULE = "github.com/fsouza/fake-gcs-server"
FAKE_GCS_VERSION = "v1.56.1"
AZURITE_VERSION = "3.37.0"
# Azurite's well-known development account (public, in Azure's docs): not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STORE = Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy")) / "store"


def _stored(name: str, version: str) -> Path:
    return STORE / f"{name}-{version}"


def fake_gcs_server_binary() -> Path:
    """The fake-gcs-server binary, built with `go install` the first time (a few minutes cold)."""
    binary = _stored("fake-gcs-server", FAKE_GCS_VERSION) / "fake-gcs-server"
    if binary.is_file():
        return binary
    with tempfile.TemporaryDirectory() as gobin:
        env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
        module = f"{FAKE_GCS_MODULE}@{FAKE_GCS_VERSION}"
        command = ["nice", "-n", "10", "go", "install", "-trimpath", "-ldflags", "-s -w", module]
        subprocess.run(command, check=True, env={**env, "GOFLAGS": "-mod=mod"}, timeout=1800)
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(Path(gobin) / "fake-gcs-server", binary)
    return binary


def azurite_blob_command() -> Path:
    """Azurite's blob service launcher, installed with `npm install` the first time."""
    prefix = _stored("azurite", AZURITE_VERSION)
    launcher = prefix / "node_modules" / ".bin" / "azurite-blob"
    if launcher.is_file():
        return launcher
    partial = prefix.with_name(prefix.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    package = f"azurite@{AZURITE_VERSION}"
    command = ["nice", "-n", "10", "npm", "install", "--prefix", str(partial), "--no-audit", "--no-fund"]
    command.append(package)
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    partial.rename(prefix)  # npm's .bin links are relative: the folder may move
    return launcher


@contextlib.contextmanager
def _process(command: list[str], ready: str, what: str) -> Iterator[None]:
    """Runs `command` until the block ends, once `ready` answers; its output shows only if it dies first."""
    with tempfile.TemporaryFile() as log, subprocess.Popen(command, stdout=log, stderr=log) as proc:

        def answers() -> bool:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{what} exited {proc.returncode}: {log.read().decode()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(ready, timeout=2).status_code < 500
            return False

        try:
            wait_for(answers, timeout=60, interval=0.2, what=f"{what} answering")
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass(frozen=True)
class GcsEmulator:
    endpoint: str  # STORAGE_EMULATOR_HOST

    def put(self, bucket: str, name: str, data: bytes) -> None:
        created = httpx.post(f"{self.endpoint}/storage/v1/b", json={"name": bucket})
        if created.status_code != 409:  # 409: it exists already
            created.raise_for_status()
        url = f"{self.endpoint}/upload/storage/v1/b/{bucket}/o"
        httpx.post(url, params={"uploadType": "media", "name": name}, content=data).raise_for_status()


@contextlib.contextmanager
def fake_gcs_server() -> Iterator[GcsEmulator]:
    """fake-gcs-server over plain http on a free loopback port, objects in memory; no credentials checked."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [str(fake_gcs_server_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
               "-backend", "memory", "-external-url", endpoint, "-public-host", f"127.0.0.1:{port}",
               "-log-level", "error"]  # fmt: skip
    with _process(command, f"{endpoint}/storage/v1/b", "fake-gcs-server"):
        yield GcsEmulator(endpoint)


@dataclass
class TokenEndpoint:
    """Google's OAuth token endpoint as a service-account key names it (`token_uri`): fake-gcs-server checks
    no token, so this is where a key is accepted or refused. `requests` counts the token requests."""

    url: str
    requests: list[str] = field(default_factory=list)

    def service_account_key(self) -> str:
        """A service-account key file's content, with a fresh RSA key, pointing at this endpoint."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return json.dumps({"type": "service_account", "project_id": "ml", "private_key_id": "k1",
                           "private_key": pem, "client_email": "model-reader@ml.iam.gserviceaccount.com",
                           "client_id": "1", "token_uri": self.url})  # fmt: skip


@contextlib.contextmanager
def google_token_endpoint(grant: bool) -> Iterator[TokenEndpoint]:
    """A loopback token endpoint that grants every signed request, or refuses it as Google refuses a deleted
    or wrong key (400 invalid_grant)."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            requests.append(self.path)
            answer = {"access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer"}
            refusal = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            body = json.dumps(answer if grant else refusal).encode()
            self.send_response(200 if grant else 400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TokenEndpoint(f"http://127.0.0.1:{server.server_port}/token", requests)
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class AzureEmulator:
    endpoint: str  # the account URL: AZURE_STORAGE_BLOB_ENDPOINT
    account: str
    key: str

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
                f"BlobEndpoint={self.endpoint};")  # fmt: skip

    def put(self, container: str, name: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        with contextlib.suppress(ResourceExistsError):
            service.create_container(container)
        service.get_blob_client(container, name).upload_blob(data, overwrite=True)


@contextlib.contextmanager
def azurite(workdir: Path) -> Iterator[AzureEmulator]:
    """Azurite's blob service on a free loopback port, its data under `workdir`; it checks shared keys and
    SAS signatures like Azure (anonymous reads of a private container are refused)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    command = [str(azurite_blob_command()), "--blobHost", "127.0.0.1", "--blobPort", str(port),
               "--location", str(workdir), "--silent", "--skipApiVersionCheck"]  # fmt: skip
    with _process(command, f"{endpoint}?comp=list", "azurite"):
        yield AzureEmulator(endpoint, AZURITE_ACCOUNT, AZURITE_KEY)


if __name__ == "__main__":  # tests/run.sh builds both before pytest: no test timeout covers a cold build
    print(fake_gcs_server_binary())
    print(azurite_blob_command())
