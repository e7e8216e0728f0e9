"""`modelserve fetch`: http(s), s3 (moto's server mode), local paths; digest checks; atomic writes."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.serving import free_port, moto_s3

PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def fetch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "modelserve", "fetch", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("http-root")
    (root / "model.onnx").write_bytes(PAYLOAD)
    (root / "with-schema.onnx").write_bytes(PAYLOAD)
    (root / "with-schema.onnx.schema.json").write_text('{"features": ["a", "b"]}')
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_download_with_the_right_digest(http_root, tmp_path):
    dest = tmp_path / "models" / "model.onnx"
    result = fetch(f"{http_root}/model.onnx", str(dest), "--sha256", DIGEST)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == PAYLOAD
    assert f"sha256={DIGEST}" in result.stdout
    assert not Path(f"{dest}.schema.json").exists()


def test_http_download_brings_the_schema_manifest_along(http_root, tmp_path):
    dest = tmp_path / "with-schema.onnx"
    assert fetch(f"{http_root}/with-schema.onnx", str(dest)).returncode == 0
    assert Path(f"{dest}.schema.json").read_text() == '{"features": ["a", "b"]}'


def test_digest_mismatch_exits_3_and_leaves_nothing_behind(http_root, tmp_path):
    dest = tmp_path / "model.onnx"
    result = fetch(f"{http_root}/model.onnx", str(dest), "--sha256", "a" * 64)
    assert result.returncode == 3
    assert (
        f"digest mismatch for {http_root}/model.onnx: expected sha256 {'a' * 64}, got {DIGEST}"
        in result.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_kept_when_the_new_download_fails_its_digest(http_root, tmp_path):
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"previous model")
    assert fetch(f"{http_root}/model.onnx", str(dest), "--sha256", "b" * 64).returncode == 3
    assert dest.read_bytes() == b"previous model"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("{http}/missing.onnx", "{http}/missing.onnx not found"),
        (
            "http://127.0.0.1:{closed}/model.onnx",
            "GET http://127.0.0.1:{closed}/model.onnx failed: ConnectError",
        ),
        ("ftp://example.invalid/model.onnx", "unsupported URI scheme 'ftp://'"),
        ("/nonexistent/dir/model.onnx", "/nonexistent/dir/model.onnx not found"),
    ],
)
def test_download_failures_exit_4(http_root, tmp_path, uri, message):
    closed = str(free_port())
    uri = uri.format(http=http_root, closed=closed)
    result = fetch(uri, str(tmp_path / "out.bin"))
    assert result.returncode == 4, result.stderr
    assert message.format(http=http_root, closed=closed) in result.stderr


@pytest.mark.parametrize(
    ("uri", "digest", "said"),
    [
        ("{http}/missing.csv", "", "{http}/missing.csv not found"),
        ("{http}/model.onnx", "a" * 64, "digest mismatch for {http}/model.onnx"),
    ],
)
def test_optional_fetch_reports_the_failure_but_exits_0(http_root, tmp_path, uri, digest, said):
    message_file = tmp_path / "termination-log"
    args = [uri.format(http=http_root), str(tmp_path / "drift" / "reference.csv"), "--optional"]
    result = fetch(*args, *(["--sha256", digest] if digest else []),
                   env={"MODELSERVE_TERMINATION_MESSAGE_PATH": str(message_file)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert said.format(http=http_root) in result.stderr
    assert message_file.read_text().startswith("fetch failed: ")
    assert not (tmp_path / "drift" / "reference.csv").exists()


def test_bad_digest_argument_exits_2(tmp_path):
    result = fetch("/etc/hostname", str(tmp_path / "x"), "--sha256", "nothex")
    assert result.returncode == 2 and "--sha256 must be 64 hexadecimal characters" in result.stderr


@pytest.mark.parametrize("scheme", ["path", "file"])
def test_local_file_and_file_uri(tmp_path, scheme):
    src = tmp_path / "src.onnx"
    src.write_bytes(PAYLOAD)
    uri = str(src) if scheme == "path" else f"file://{src}"
    result = fetch(uri, str(tmp_path / "out" / "model.onnx"), "--sha256", DIGEST)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "model.onnx").read_bytes() == PAYLOAD


def test_local_directory_is_copied_whole(tmp_path):
    src = tmp_path / "saved"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(b"pb")
    (src / "variables" / "variables.index").write_bytes(b"idx")
    result = fetch(str(src), str(tmp_path / "models" / "saved"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models" / "saved" / "variables" / "variables.index").read_bytes() == b"idx"


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3() as (env, s3):
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="iris/v3/model.onnx", Body=PAYLOAD)
        yield env


def test_s3_download_with_the_right_digest(s3_endpoint, tmp_path):
    dest = tmp_path / "model.onnx"
    result = fetch("s3://models/iris/v3/model.onnx", str(dest), "--sha256", DIGEST, env=s3_endpoint)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == PAYLOAD


def test_s3_digest_mismatch_exits_3(s3_endpoint, tmp_path):
    result = fetch(
        "s3://models/iris/v3/model.onnx", str(tmp_path / "m"), "--sha256", "c" * 64, env=s3_endpoint
    )
    assert result.returncode == 3 and "digest mismatch" in result.stderr


def test_s3_missing_key_exits_4(s3_endpoint, tmp_path):
    result = fetch("s3://models/iris/v9/model.onnx", str(tmp_path / "m"), env=s3_endpoint)
    assert result.returncode == 4
    assert "s3://models/iris/v9/model.onnx not found" in result.stderr
