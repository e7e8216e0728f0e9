"""Google Cloud Storage and Azure Blob Storage emulators on loopback, for `modelserve fetch` over gs:// and
azure://: fake-gcs-server built from its Go module and Azurite installed from npm, each once into
~/.cache/modeldeploy/store (built lazily, on the first test that needs it) and then started as a process."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
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
