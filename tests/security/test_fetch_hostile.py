"""`modelserve fetch` against real local HTTP origins: the schema side file is optional (403/404) and pinned
when used, https never downgrades to http, a size cap and an overall deadline hold, credentials in a URI
are never printed, and a digest on a directory without a MANIFEST is refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .hostile import hostile_origin

MODEL = os.urandom(50_000)
DIGEST = hashlib.sha256(MODEL).hexdigest()
SCHEMA = b'{"features": [{"name": "a"}, {"name": "b"}]}'
SCHEMA_DIGEST = hashlib.sha256(SCHEMA).hexdigest()


def fetch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELSERVE_")}
    return subprocess.run(
        [sys.executable, "-m", "modelserve", "fetch", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_or_missing_schema_side_file_does_not_fail_the_fetch(tmp_path, status):
    with hostile_origin({"/m.onnx": MODEL}, {"/m.onnx.schema.json": status}) as origin:
        result = fetch(f"{origin.url}/m.onnx", str(tmp_path / "m.onnx"), "--sha256", DIGEST)
    assert result.returncode == 0, result.stderr
    assert leftovers(tmp_path) == ["m.onnx"]


def test_a_presigned_url_keeps_its_query_off_the_side_file_path_and_out_of_the_output(tmp_path):
    signature = "X-Amz-Signature=0123456789abcdefdeadbeef"
    with hostile_origin({"/m.onnx": MODEL}, {"/m.onnx.schema.json": 403}) as origin:
        result = fetch(f"{origin.url}/m.onnx?{signature}", str(tmp_path / "m.onnx"))
        assert f"/m.onnx.schema.json?{signature}" in origin.requests  # the suffix goes on the path
    assert result.returncode == 0, result.stderr
    assert "deadbeef" not in result.stdout + result.stderr
    assert f"{origin.url}/m.onnx?***" in result.stdout


def test_a_pinned_schema_is_fetched_and_verified(tmp_path):
    files = {"/m.onnx": MODEL, "/m.onnx.schema.json": SCHEMA}
    with hostile_origin(files) as origin:
        good = fetch(f"{origin.url}/m.onnx", str(tmp_path / "ok" / "m.onnx"), "--sha256", DIGEST,
                     "--schema-sha256", SCHEMA_DIGEST)  # fmt: skip
        bad = fetch(f"{origin.url}/m.onnx", str(tmp_path / "bad" / "m.onnx"), "--sha256", DIGEST,
                    "--schema-sha256", "e" * 64)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "ok" / "m.onnx.schema.json").read_bytes() == SCHEMA
    assert bad.returncode == 3 and "digest mismatch" in bad.stderr and ".schema.json" in bad.stderr
    assert "m.onnx.schema.json" not in leftovers(tmp_path / "bad")


def test_a_pinned_schema_that_is_missing_fails(tmp_path):
    with hostile_origin({"/m.onnx": MODEL}) as origin:
        result = fetch(f"{origin.url}/m.onnx", str(tmp_path / "m.onnx"), "--schema-sha256", SCHEMA_DIGEST)
    assert result.returncode == 4 and "--schema-sha256 was given" in result.stderr


def test_an_unpinned_side_file_beside_a_pinned_model_is_refused(tmp_path):
    with hostile_origin({"/m.onnx": MODEL, "/m.onnx.schema.json": SCHEMA}) as origin:
        result = fetch(f"{origin.url}/m.onnx", str(tmp_path / "m.onnx"), "--sha256", DIGEST)
    assert result.returncode == 3
    assert "is not pinned itself" in result.stderr and "--schema-sha256" in result.stderr
    assert "m.onnx.schema.json" not in leftovers(tmp_path)


def test_an_unpinned_side_file_beside_an_unpinned_model_still_travels(tmp_path):
    with hostile_origin({"/m.onnx": MODEL, "/m.onnx.schema.json": SCHEMA}) as origin:
        result = fetch(f"{origin.url}/m.onnx", str(tmp_path / "m.onnx"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m.onnx.schema.json").read_bytes() == SCHEMA


def test_an_endless_body_stops_at_the_size_cap_and_leaves_nothing(tmp_path):
    with hostile_origin() as origin:
        result = fetch(f"{origin.url}/endless.onnx", str(tmp_path / "m.onnx"), "--max-bytes", "1000000")
        assert origin.sent["/endless.onnx"] < 1_000_000 + 32 * 1024 * 1024
    assert result.returncode == 4 and "is larger than 1000000 bytes" in result.stderr
    assert leftovers(tmp_path) == []


def test_a_declared_oversize_body_is_refused_from_the_environment_setting(tmp_path):
    with hostile_origin() as origin:
        result = fetch(f"{origin.url}/huge.onnx", str(tmp_path / "m.onnx"), MODELSERVE_FETCH_MAX_BYTES="5000")
    assert result.returncode == 4 and "is larger than 5000 bytes (MODELSERVE_FETCH_MAX_BYTES" in result.stderr


def test_a_trickling_origin_stops_at_the_overall_deadline(tmp_path):
    with hostile_origin() as origin:
        result = fetch(f"{origin.url}/trickle.onnx", str(tmp_path / "m.onnx"), "--timeout-seconds", "1")
        sent = origin.sent["/trickle.onnx"]
    assert result.returncode == 4, result.stderr
    assert "deadline" in result.stderr or "ReadTimeout" in result.stderr
    assert sent < 100  # about 10 bytes a second: the fetch gave up near its 1 s deadline
    assert leftovers(tmp_path) == []


def test_credentials_in_the_uri_are_never_printed(tmp_path):
    with hostile_origin({"/m.onnx": MODEL}) as origin:
        with_auth = origin.url.replace("http://", "http://alice:hunter2secret@")
        ok = fetch(f"{with_auth}/m.onnx", str(tmp_path / "m.onnx"))
        missing = fetch(f"{with_auth}/gone.onnx", str(tmp_path / "g.onnx"))
    assert ok.returncode == 0 and missing.returncode == 4
    for result in (ok, missing):
        assert "hunter2secret" not in result.stdout + result.stderr
        assert "alice" not in result.stdout + result.stderr
    assert "***@127.0.0.1" in ok.stdout and "***@127.0.0.1" in missing.stderr


def test_an_https_to_http_redirect_is_refused():
    from modelserve.errors import FetchError
    from modelserve.fetch import _redirect_target

    with pytest.raises(FetchError, match="redirected from https to http; refused"):
        _redirect_target("https://store.example/m.onnx", "http://store.example/m.onnx")
    with pytest.raises(FetchError, match="redirected to a file:// URL"):
        _redirect_target("http://store.example/m.onnx", "file:///etc/passwd")
    assert _redirect_target("https://a.example/m.onnx", "/v2/m.onnx") == "https://a.example/v2/m.onnx"


def test_an_http_redirect_within_http_is_followed_and_counted(tmp_path):
    with hostile_origin({"/m.onnx": MODEL}) as origin:
        result = fetch(f"{origin.url}/redirect?to=/m.onnx", str(tmp_path / "m.onnx"), "--sha256", DIGEST)
    assert result.returncode == 0, result.stderr


def test_a_digest_on_a_directory_without_a_manifest_is_refused_with_a_message(tmp_path):
    from modelserve.errors import ModelLoadError
    from modelserve.loaders import open_model_source

    saved = tmp_path / "saved_model"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    with pytest.raises(
        ModelLoadError, match=r"is a directory without a MANIFEST file: a digest pins a directory"
    ):
        open_model_source(saved, "a" * 64, 1 << 20, 10)
    result = fetch(str(saved), str(tmp_path / "out"), "--sha256", "a" * 64)
    assert result.returncode == 4 and "a digest pins a directory through its MANIFEST" in result.stderr
