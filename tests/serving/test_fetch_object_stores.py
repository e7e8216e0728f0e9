"""`modelserve fetch` over gs:// and azure://, the CLI the init container runs, against fake-gcs-server (built
from its Go module) and Azurite (from npm) on loopback: one object pinned by its digest, a wrong digest, an
archive and a MANIFEST directory served by a real modelserve afterwards. Azurite checks signatures, so a
wrong key, a SAS token and an anonymous read are refused or accepted as by Azure; fake-gcs-server checks
none, so a service-account key is exchanged at a loopback token endpoint that grants or refuses it. A
refusal names the Secret and never prints a key."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.multifile import files_of, make_model_dir, serves_named_records, sha256, tar_gz, zip_bytes
from harness.object_stores import AzureEmulator, GcsEmulator, azurite, fake_gcs_server, google_token_endpoint
from harness.serving import run_fetch

SOURCE = "secret/iris-store"
PAYLOAD = bytes(range(256)) * 800  # 200 kB, more than one chunk of some clients


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, iris_joblib) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("iris-v3"), iris_joblib)


def clean(env: dict[str, str]) -> dict[str, str]:
    """The fetch's variables, with the credentials' source named as the operator names it."""
    return {"MODELSERVE_FETCH_CREDENTIALS_SOURCE": SOURCE, **env}


# --- gs:// against fake-gcs-server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(model_dir) -> bytes:
    return tar_gz(model_dir)  # once: gzip stamps the time


@pytest.fixture(scope="module")
def gcs(model_dir, archive) -> Iterator[GcsEmulator]:
    with fake_gcs_server() as store:
        store.put("ml-models", "blob/model.bin", PAYLOAD)
        store.put("ml-models", "iris/v3/iris.tar.gz", archive)
        for rel, data in files_of(model_dir).items():
            store.put("ml-models", f"iris/v3/dir/{rel}", data)
        store.put("ml-models", "iris/v3/dir/unlisted.pkl", b"never fetched")
        yield store


def gcs_env(store: GcsEmulator, **extra: str) -> dict[str, str]:
    return clean({"STORAGE_EMULATOR_HOST": store.endpoint, **extra})


def test_gs_object_is_fetched_and_pinned_by_its_digest(gcs, tmp_path):
    dest = tmp_path / "model.bin"
    result = run_fetch("gs://ml-models/blob/model.bin", dest, sha256(PAYLOAD), gcs_env(gcs))
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == PAYLOAD


def test_gs_object_with_another_digest_is_refused_and_not_kept(gcs, tmp_path):
    dest = tmp_path / "model.bin"
    result = run_fetch("gs://ml-models/blob/model.bin", dest, "0" * 64, gcs_env(gcs))
    assert result.returncode == 3
    assert "digest mismatch for gs://ml-models/blob/model.bin" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_gs_missing_object_is_reported_not_found(gcs, tmp_path):
    result = run_fetch("gs://ml-models/blob/none.bin", tmp_path / "m.bin", sha256(PAYLOAD), gcs_env(gcs))
    assert result.returncode != 0 and "gs://ml-models/blob/none.bin not found" in result.stderr


def test_gs_tar_gz_is_fetched_and_served(gcs, tmp_path, archive):
    digest = sha256(archive)
    dest = tmp_path / "models" / "iris.tar.gz"
    result = run_fetch("gs://ml-models/iris/v3/iris.tar.gz", dest, digest, gcs_env(gcs))
    assert result.returncode == 0, result.stderr
    serves_named_records(tmp_path / "serve", dest, digest)


def test_gs_manifest_directory_is_fetched_file_by_file_and_served(gcs, tmp_path, model_dir):
    digest = sha256((model_dir / "MANIFEST").read_bytes())
    dest = tmp_path / "models" / "MANIFEST"
    result = run_fetch("gs://ml-models/iris/v3/dir/MANIFEST", dest, digest, gcs_env(gcs))
    assert result.returncode == 0, result.stderr
    assert files_of(tmp_path / "models") == files_of(model_dir)  # the unlisted object stayed in the bucket
    serves_named_records(tmp_path / "serve", dest, digest)


def test_gs_key_that_is_not_a_service_account_key_is_refused_without_being_printed(gcs, tmp_path):
    key = json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nsecret-bits"})
    env = gcs_env(gcs, GOOGLE_APPLICATION_CREDENTIALS_JSON=key)
    result = run_fetch("gs://ml-models/blob/model.bin", tmp_path / "m.bin", sha256(PAYLOAD), env)
    assert result.returncode != 0
    assert "GOOGLE_APPLICATION_CREDENTIALS_JSON is not the content of a service-account key" in result.stderr
    assert SOURCE in result.stderr and "secret-bits" not in result.stdout + result.stderr


@pytest.mark.parametrize("grant", [True, False], ids=["key accepted", "key refused"])
def test_gs_service_account_key_is_exchanged_for_a_token_and_a_refusal_says_access_denied(
    gcs, tmp_path, grant
):
    with google_token_endpoint(grant) as tokens:
        key = tokens.service_account_key()
        env = gcs_env(gcs, GOOGLE_APPLICATION_CREDENTIALS_JSON=key)
        result = run_fetch("gs://ml-models/blob/model.bin", tmp_path / "m.bin", sha256(PAYLOAD), env)
    assert tokens.requests, "the key was not used"
    if grant:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 4
    assert "gs get gs://ml-models/blob/model.bin failed (token refused): access denied" in result.stderr
    assert f"with the credentials of {SOURCE}" in result.stderr
    assert json.loads(key)["private_key"].splitlines()[1] not in result.stdout + result.stderr


# --- azure:// against Azurite -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azure(tmp_path_factory, model_dir) -> Iterator[AzureEmulator]:
    with azurite(tmp_path_factory.mktemp("azurite")) as store:
        store.put("models", "blob/model.bin", PAYLOAD)
        store.put("models", "iris/v3/iris.zip", zip_bytes(model_dir))
        for rel, data in files_of(model_dir).items():
            store.put("models", f"iris/v3/dir/{rel}", data)
        yield store


def blob_uri(store: AzureEmulator, name: str) -> str:
    return f"azure://{store.account}/models/{name}"


def sas_token(store: AzureEmulator) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    permission = ContainerSasPermissions(read=True)
    return generate_container_sas(store.account, "models", store.key, permission=permission, expiry=expiry)


@pytest.mark.parametrize("way", ["connection string", "account key", "sas token"])
def test_azure_blob_is_fetched_with_each_kind_of_credentials(azure, tmp_path, way):
    endpoint = {"AZURE_STORAGE_BLOB_ENDPOINT": azure.endpoint}
    credentials = {
        "connection string": {"AZURE_STORAGE_CONNECTION_STRING": azure.connection_string},
        "account key": {"AZURE_STORAGE_ACCOUNT_KEY": azure.key, **endpoint},
        "sas token": {"AZURE_STORAGE_SAS_TOKEN": sas_token(azure), **endpoint},
    }[way]
    dest = tmp_path / "model.bin"
    result = run_fetch(blob_uri(azure, "blob/model.bin"), dest, sha256(PAYLOAD), clean(credentials))
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == PAYLOAD


def test_azure_blob_with_another_digest_is_refused_and_not_kept(azure, tmp_path):
    env = clean({"AZURE_STORAGE_CONNECTION_STRING": azure.connection_string})
    result = run_fetch(blob_uri(azure, "blob/model.bin"), tmp_path / "model.bin", "0" * 64, env)
    assert result.returncode == 3
    assert f"digest mismatch for {blob_uri(azure, 'blob/model.bin')}" in result.stderr
    assert list(tmp_path.iterdir()) == []


WRONG_KEY = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="


@pytest.mark.parametrize(
    ("credentials", "says"),
    [({"AZURE_STORAGE_ACCOUNT_KEY": WRONG_KEY}, f"access denied with the credentials of {SOURCE}"),
     ({}, "access denied without credentials (set model.credentials)")],
    ids=["wrong account key", "no credentials on a private container"],
)  # fmt: skip
def test_azure_refusal_says_access_denied_naming_the_secret_never_the_key(azure, tmp_path, credentials, says):
    env = {"AZURE_STORAGE_BLOB_ENDPOINT": azure.endpoint, **credentials}
    env = clean(env) if credentials else env  # without a Secret the operator names no source
    result = run_fetch(blob_uri(azure, "blob/model.bin"), tmp_path / "m.bin", sha256(PAYLOAD), env)
    assert result.returncode != 0
    assert f"azure get {blob_uri(azure, 'blob/model.bin')} failed" in result.stderr
    assert says in result.stderr, result.stderr
    assert WRONG_KEY not in result.stdout + result.stderr and azure.key not in result.stdout + result.stderr


def test_azure_sas_token_never_appears_in_a_refusal(azure, tmp_path):
    token = sas_token(azure)
    env = clean({"AZURE_STORAGE_SAS_TOKEN": token, "AZURE_STORAGE_BLOB_ENDPOINT": azure.endpoint})
    missing = blob_uri(azure, "blob/none.bin")
    result = run_fetch(missing, tmp_path / "m.bin", sha256(PAYLOAD), env)
    assert result.returncode != 0 and f"{missing} not found" in result.stderr
    signature = token.split("sig=", 1)[1].split("&", 1)[0]
    assert signature not in result.stdout + result.stderr


def test_azure_connection_string_for_another_account_is_refused(azure, tmp_path):
    env = clean({"AZURE_STORAGE_CONNECTION_STRING": azure.connection_string})
    uri = "azure://otheraccount/models/blob/model.bin"
    result = run_fetch(uri, tmp_path / "m.bin", sha256(PAYLOAD), env)
    assert result.returncode != 0
    assert "is for storage account 'devstoreaccount1', the URI names 'otheraccount'" in result.stderr


def test_azure_zip_is_fetched_and_served(azure, tmp_path, model_dir):
    digest = sha256(zip_bytes(model_dir))
    dest = tmp_path / "models" / "iris.zip"
    env = clean({"AZURE_STORAGE_CONNECTION_STRING": azure.connection_string})
    result = run_fetch(blob_uri(azure, "iris/v3/iris.zip"), dest, digest, env)
    assert result.returncode == 0, result.stderr
    serves_named_records(tmp_path / "serve", dest, digest)


def test_azure_manifest_directory_is_fetched_file_by_file_and_served(azure, tmp_path, model_dir):
    digest = sha256((model_dir / "MANIFEST").read_bytes())
    dest = tmp_path / "models" / "MANIFEST"
    env = clean({"AZURE_STORAGE_CONNECTION_STRING": azure.connection_string})
    result = run_fetch(blob_uri(azure, "iris/v3/dir/MANIFEST"), dest, digest, env)
    assert result.returncode == 0, result.stderr
    assert files_of(tmp_path / "models") == files_of(model_dir)
    serves_named_records(tmp_path / "serve", dest, digest)


def test_objects_larger_than_the_cap_are_refused_before_download(gcs, azure, tmp_path):
    cap = {"MODELSERVE_FETCH_MAX_BYTES": str(len(PAYLOAD) - 1)}
    azure_env = {"AZURE_STORAGE_CONNECTION_STRING": azure.connection_string, **cap}
    for uri, env in [("gs://ml-models/blob/model.bin", gcs_env(gcs, **cap)),
                     (blob_uri(azure, "blob/model.bin"), clean(azure_env))]:  # fmt: skip
        result = run_fetch(uri, tmp_path / "m.bin", sha256(PAYLOAD), env)
        assert result.returncode != 0
        assert f"{uri} is larger than {len(PAYLOAD) - 1} bytes" in result.stderr
