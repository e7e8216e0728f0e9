"""Models made of several files, end to end: `modelserve fetch` from a real HTTP server and from moto's S3
server (GETs of the listed files only), then a real modelserve serving what was fetched. An sklearn model
with its schema file comes as a MANIFEST directory, a .tar.gz and a .zip; every byte is pinned by one
digest, and a changed file is caught by the fetch and again by the server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.multifile import files_of, make_model_dir, serves_named_records, sha256, tar_gz, zip_bytes
from harness.serving import moto_s3, run_fetch, run_to_exit, static_http_origin


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, iris_joblib) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("iris-v3"), iris_joblib)


def test_a_manifest_directory_over_https_is_fetched_file_by_file_and_served(tmp_path, model_dir):
    digest = sha256((model_dir / "MANIFEST").read_bytes())
    with static_http_origin(model_dir.parent) as (url, requested):
        result = run_fetch(f"{url}/{model_dir.name}/MANIFEST", tmp_path / "models" / "MANIFEST", digest)
    assert result.returncode == 0, result.stderr
    assert f"sha256={digest}" in result.stdout
    assert files_of(tmp_path / "models") == files_of(model_dir)
    base = f"/{model_dir.name}/"
    assert sorted(requested) == sorted(
        [
            f"{base}MANIFEST",
            f"{base}model.joblib",
            f"{base}model.joblib.schema.json",
            f"{base}notes/training%20run.txt",
        ]
    ), "only the MANIFEST and the files it lists are requested: no listing"
    serves_named_records(tmp_path / "serve", tmp_path / "models" / "MANIFEST", digest)


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ("tampered", 3, "digest mismatch for {url}/site/model.joblib"),
        ("missing", 4, "{url}/site/notes/training%20run.txt is listed in MANIFEST but not found"),
        ("wrong pin", 3, "digest mismatch for {url}/site/MANIFEST"),
    ],
)
def test_a_manifest_directory_that_does_not_match_is_refused_and_nothing_is_kept(
    tmp_path, model_dir, change, code, message
):
    site = tmp_path / "origin" / "site"
    for rel, data in files_of(model_dir).items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    digest = sha256((site / "MANIFEST").read_bytes())
    if change == "tampered":
        (site / "model.joblib").write_bytes(b"\x80" + os.urandom(100))
    elif change == "missing":
        (site / "notes" / "training run.txt").unlink()
    else:
        digest = "0" * 64
    dest = tmp_path / "models"
    with static_http_origin(site.parent) as (url, _):
        result = run_fetch(f"{url}/site/MANIFEST", dest / "MANIFEST", digest)
    assert result.returncode == code
    assert message.format(url=url) in result.stderr
    assert list(dest.iterdir()) == [], "nothing half-fetched is left for the server"


def test_the_server_checks_the_fetched_directory_again(tmp_path, model_dir):
    models = tmp_path / "models"
    for rel, data in files_of(model_dir).items():
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        (models / rel).write_bytes(data)
    (models / "model.joblib.schema.json").write_text(json.dumps({"features": ["a", "b", "c", "d"]}))
    digest = sha256((models / "MANIFEST").read_bytes())
    code, _, termination = run_to_exit(
        tmp_path, {"MODELSERVE_MODEL_PATH": str(models / "MANIFEST"), "MODELSERVE_MODEL_SHA256": digest}
    )
    assert code == 1
    assert "model.joblib.schema.json: sha256" in termination and "differs from MANIFEST's" in termination


def test_a_local_directory_with_a_manifest_is_copied_file_by_file_when_pinned(tmp_path, model_dir):
    digest = sha256((model_dir / "MANIFEST").read_bytes())
    result = run_fetch(str(model_dir), tmp_path / "copy", digest)
    assert result.returncode == 0, result.stderr
    assert files_of(tmp_path / "copy") == files_of(model_dir)
    assert run_fetch(str(model_dir), tmp_path / "other", "0" * 64).returncode == 3


def test_a_manifest_prefix_on_s3_needs_only_get_object(tmp_path, model_dir):
    digest = sha256((model_dir / "MANIFEST").read_bytes())
    with moto_s3() as (env, s3):
        s3.create_bucket(Bucket="ml-models")
        for rel, data in files_of(model_dir).items():
            s3.put_object(Bucket="ml-models", Key=f"iris/v3/{rel}", Body=data)
        s3.put_object(Bucket="ml-models", Key="iris/v3/unlisted.pkl", Body=b"never fetched")
        result = run_fetch("s3://ml-models/iris/v3/MANIFEST", tmp_path / "models" / "MANIFEST", digest, env)
    assert result.returncode == 0, result.stderr
    assert files_of(tmp_path / "models") == files_of(model_dir)  # the unlisted object stayed in the bucket
    serves_named_records(tmp_path / "serve", tmp_path / "models" / "MANIFEST", digest)


def test_a_tar_gz_over_https_is_pinned_by_its_own_digest_and_served(tmp_path, model_dir):
    archive = tmp_path / "origin" / "iris.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(tar_gz(model_dir))
    digest = sha256(archive.read_bytes())
    dest = tmp_path / "models" / "iris.tar.gz"
    with static_http_origin(archive.parent) as (url, _):
        wrong = run_fetch(f"{url}/iris.tar.gz", dest, "0" * 64)
        result = run_fetch(f"{url}/iris.tar.gz", dest, digest)
    assert wrong.returncode == 3 and "digest mismatch" in wrong.stderr
    assert result.returncode == 0, result.stderr
    serves_named_records(tmp_path / "serve", dest, digest)


def test_a_zip_on_s3_is_served(tmp_path, model_dir):
    data = zip_bytes(model_dir)
    with moto_s3() as (env, s3):
        s3.create_bucket(Bucket="ml-models")
        s3.put_object(Bucket="ml-models", Key="iris/v3/iris.zip", Body=data)
        dest = tmp_path / "models" / "iris.zip"
        result = run_fetch("s3://ml-models/iris/v3/iris.zip", dest, sha256(data), env)
    assert result.returncode == 0, result.stderr
    serves_named_records(tmp_path / "serve", tmp_path / "models" / "iris.zip", sha256(data))


def test_a_pickle_in_an_unpinned_archive_is_refused(tmp_path, model_dir):
    archive = tmp_path / "iris.zip"
    archive.write_bytes(zip_bytes(model_dir))
    code, _, termination = run_to_exit(
        tmp_path, {"MODELSERVE_MODEL_PATH": str(archive), "TMPDIR": str(tmp_path)}
    )
    assert code == 1 and "refusing to load pickle file model.joblib" in termination
