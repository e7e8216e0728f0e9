"""`modelserve fetch URI DEST [--sha256 HEX]`: download atomically (temp file + rename), verify the digest.

Sources: http(s)://, s3://bucket/key (boto3; AWS_ENDPOINT_URL for S3-compatible stores), file:// or a
local path (file or directory). A `<uri>.schema.json` manifest next to the model is fetched too, if present.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

from .errors import DigestMismatch, FetchError

CHUNK = 1 << 20
MANIFEST_SUFFIX = ".schema.json"


def _http_chunks(uri: str) -> Iterator[bytes]:
    import httpx

    try:
        with httpx.stream(
            "GET", uri, follow_redirects=True, timeout=httpx.Timeout(60.0, connect=10.0)
        ) as resp:
            if resp.status_code == 404:
                raise FileNotFoundError(uri)
            if resp.status_code != 200:
                raise FetchError(f"GET {uri} answered HTTP {resp.status_code}")
            yield from resp.iter_bytes(CHUNK)
    except httpx.HTTPError as err:
        raise FetchError(f"GET {uri} failed: {type(err).__name__}: {err}") from None


def _s3_chunks(uri: str) -> Iterator[bytes]:
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise FetchError("s3:// needs boto3 (install modelserve[s3])") from None
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        yield from body.iter_chunks(CHUNK)
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404"):
            raise FileNotFoundError(uri) from None
        raise FetchError(f"s3 get {uri} failed: {code or err}") from None
    except botocore.exceptions.BotoCoreError as err:
        raise FetchError(f"s3 get {uri} failed: {err}") from None


def _file_chunks(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as fh:
            yield from iter(lambda: fh.read(CHUNK), b"")
    except IsADirectoryError:
        raise FetchError(f"{path} is a directory") from None
    except FileNotFoundError:
        raise
    except OSError as err:
        raise FetchError(f"cannot read {path}: {err}") from None


def local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # plain path (or a Windows drive letter)
        return Path(uri)
    return None


def source_chunks(uri: str) -> Iterator[bytes]:
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        return _http_chunks(uri)
    if scheme == "s3":
        return _s3_chunks(uri)
    path = local_path(uri)
    if path is None:
        raise FetchError(f"unsupported URI scheme '{scheme}://' (use https, http, s3, file or a local path)")
    return _file_chunks(path)


def _write(chunks: Iterator[bytes], out: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def download_file(uri: str, dest: Path, sha256: str = "") -> str:
    """Stream to a temp file beside DEST, check the digest, rename into place; returns the digest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                actual = _write(source_chunks(uri), out)
            except FileNotFoundError:
                raise FetchError(f"{uri} not found") from None
            out.flush()
            os.fsync(out.fileno())
        if sha256 and actual != sha256.lower():
            raise DigestMismatch(f"digest mismatch for {uri}: expected sha256 {sha256.lower()}, got {actual}")
        os.replace(tmp_name, dest)
        return actual
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def copy_directory(src: Path, dest: Path) -> None:
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fetch(uri: str, dest: str, sha256: str = "") -> str:
    """Returns the SHA-256 of the fetched file ('' for a directory)."""
    target = Path(dest)
    source = local_path(uri)
    if source is not None and source.is_dir():
        if sha256:
            raise FetchError(f"{uri} is a directory: --sha256 applies to single files only")
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_directory(source, target)
        return ""
    digest = download_file(uri, target, sha256)
    _fetch_manifest(uri, target)
    return digest


def _fetch_manifest(uri: str, target: Path) -> None:
    """The optional schema manifest travels with the model; its absence is normal."""
    manifest_dest = target.with_name(target.name + MANIFEST_SUFFIX)
    try:
        download_file(uri + MANIFEST_SUFFIX, manifest_dest)
    except FetchError as err:
        if "not found" not in str(err):
            raise
