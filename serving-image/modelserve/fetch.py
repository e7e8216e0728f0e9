"""`modelserve fetch URI DEST [--sha256 HEX] [--schema-sha256 HEX]`: download atomically (temp file + rename),
verify the digest.

A URI whose last segment is MANIFEST names a directory (an S3 prefix, an https base): the MANIFEST is fetched
and checked against --sha256, then every file it lists is fetched beside DEST and checked against its line
(GetObject/GET only: nothing is listed). An archive (.tar.gz, .zip) is fetched as one file; modelserve
checks its digest again and unpacks it at start-up (archive.py).

Sources: http(s)://, s3://bucket/key (boto3; AWS_ENDPOINT_URL for S3-compatible stores), gs://bucket/object
(google-cloud-storage; STORAGE_EMULATOR_HOST for an emulator), azure://account/container/blob
(azure-storage-blob; AZURE_STORAGE_BLOB_ENDPOINT for another endpoint), file:// or a local path (file or
directory). A `<uri>.schema.json` manifest next to the model is fetched too, if present:
a 401/403/404 means "no manifest" (presigned URLs and GetObject-only S3 policies answer 403). With
`--schema-sha256` the manifest is required and verified; a manifest beside a model pinned by `--sha256` must
be pinned too. Every download has a size cap and an overall deadline (MODELSERVE_FETCH_MAX_BYTES,
MODELSERVE_FETCH_TIMEOUT_SECONDS); an https source may not redirect to http; credentials and query strings
of a URI never appear in messages.

Credentials come from the environment, never from flags: boto3's AWS_* variables for s3,
GOOGLE_APPLICATION_CREDENTIALS_JSON (a service-account key file's content; else Application Default
Credentials) for gs, one of AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY or
AZURE_STORAGE_SAS_TOKEN (else anonymous) for azure, and
MODELSERVE_FETCH_AUTHORIZATION, sent as the `Authorization` header to the URI's own origin only (never after
a redirect to another host). MODELSERVE_FETCH_CREDENTIALS_SOURCE (e.g. `secret/iris-store`) names where
they came from, so a refusal ("access denied") says which credentials were refused; values are never shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urljoin, urlparse, urlunparse

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import DigestMismatch, FetchError
from .manifest import MANIFEST_NAME, ManifestError, parse_manifest

CHUNK = 1 << 20
MANIFEST_SUFFIX = ".schema.json"
MAX_REDIRECTS = 5
# Answers that mean "no manifest here" for the optional side file (a signed URL or a narrow policy says 403).
ABSENT_STATUSES = (401, 403, 404, 410)


class FetchSettings(BaseSettings):
    """Limits of one `modelserve fetch`; flags of the same name win."""

    model_config = SettingsConfigDict(env_prefix="MODELSERVE_FETCH_", extra="ignore")

    max_bytes: int = Field(20 * 1024**3, ge=1, description="Largest download; beyond it the fetch fails.")
    timeout_seconds: float = Field(
        3600.0, gt=0, description="Deadline of the whole fetch, manifest included."
    )
    authorization: SecretStr = Field(
        SecretStr(""), description="`Authorization` header value for http(s) sources (same origin only)."
    )
    credentials_source: str = Field(
        "", description="Where the credentials come from (e.g. secret/<name>), named when they are refused."
    )


class Absent(FetchError):
    """The source says there is nothing (or nothing for us) at the URI; `status` is the HTTP-like code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    deadline: float  # time.monotonic() value

    @classmethod
    def start(cls, max_bytes: int, timeout_seconds: float) -> Limits:
        return cls(max_bytes, time.monotonic() + timeout_seconds)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def redact(uri: str) -> str:
    """The URI without user info and query (presigned signatures): what messages may show."""
    parsed = urlparse(uri)
    if not parsed.scheme or len(parsed.scheme) == 1:
        return uri
    netloc = parsed.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "***" if parsed.query else ""
    return urlunparse(parsed._replace(netloc=netloc, query=query, fragment=""))


def _scrub(text: str, uri: str) -> str:
    return text.replace(uri, redact(uri))


DENIED_STATUSES = (401, 403)
# S3 error codes that mean the store refused these credentials (or had none).
S3_DENIED_CODES = frozenset(
    {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)


def _given() -> str:
    source = FetchSettings().credentials_source
    return f"with the credentials of {source}" if source else "without credentials (set model.credentials)"


def denied_text(what: str) -> str:
    """A refusal's message: says "access denied" and names the credentials' source (never their values)."""
    return f"{what}: access denied {_given()}"


def _origin(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.scheme, parsed.netloc.rsplit("@", 1)[-1].lower()


def _auth_headers(uri: str, url: str) -> dict[str, str]:
    """The configured Authorization header, for a request to the original URI's origin only."""
    value = FetchSettings().authorization.get_secret_value()
    return {"Authorization": value} if value and _origin(url) == _origin(uri) else {}


def _redirect_target(uri: str, location: str) -> str:
    target = urljoin(uri, location)
    scheme = urlparse(target).scheme
    if scheme not in ("http", "https"):
        raise FetchError(f"GET {redact(uri)} redirected to a {scheme or 'relative'}:// URL; refused")
    if urlparse(uri).scheme == "https" and scheme == "http":
        raise FetchError(f"GET {redact(uri)} redirected from https to http; refused (it would drop TLS)")
    return target


def _http_chunks(uri: str, limits: Limits) -> Iterator[bytes]:
    import httpx

    url = uri
    try:
        for _ in range(MAX_REDIRECTS + 1):
            # Each read waits at most the time left: a trickling origin cannot outlive the deadline by much.
            wait = max(0.1, min(60.0, limits.remaining()))
            timeout = httpx.Timeout(wait, connect=min(10.0, wait))
            headers = _auth_headers(uri, url)
            with httpx.stream("GET", url, headers=headers, follow_redirects=False, timeout=timeout) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    url = _redirect_target(url, resp.headers["location"])
                    continue
                if resp.status_code in ABSENT_STATUSES:
                    raise Absent(_absent_text(uri, resp.status_code), resp.status_code)
                if resp.status_code != 200:
                    raise FetchError(f"GET {redact(uri)} answered HTTP {resp.status_code}")
                length = resp.headers.get("content-length", "")
                if length.isdigit() and int(length) > limits.max_bytes:
                    raise _too_large(uri, limits)
                yield from resp.iter_bytes()  # as it arrives, so the deadline is checked between reads
                return
        raise FetchError(f"GET {redact(uri)}: more than {MAX_REDIRECTS} redirects")
    except httpx.HTTPError as err:
        raise FetchError(_scrub(f"GET {redact(uri)} failed: {type(err).__name__}: {err}", uri)) from None


def _absent_text(uri: str, status: int) -> str:
    if status in DENIED_STATUSES:
        return denied_text(f"GET {redact(uri)} answered HTTP {status}")
    return f"{redact(uri)} not found" if status == 404 else f"GET {redact(uri)} answered HTTP {status}"


def _s3_chunks(uri: str, limits: Limits) -> Iterator[bytes]:
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise FetchError("s3:// needs boto3 (install modelserve[s3])") from None
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    try:
        answer = boto3.client("s3").get_object(Bucket=bucket, Key=key)
        if int(answer.get("ContentLength") or 0) > limits.max_bytes:
            raise _too_large(uri, limits)
        yield from answer["Body"].iter_chunks(CHUNK)
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404"):
            raise Absent(f"{redact(uri)} not found", 404) from None
        if code in S3_DENIED_CODES:  # GetObject-only policies answer 403 for a missing key
            raise Absent(denied_text(f"s3 get {redact(uri)} failed ({code})"), 403) from None
        raise FetchError(f"s3 get {redact(uri)} failed: {code or err}") from None
    except botocore.exceptions.NoCredentialsError:
        raise FetchError(f"s3 get {redact(uri)} failed: no S3 credentials found, {_given()}") from None
    except botocore.exceptions.BotoCoreError as err:
        raise FetchError(f"s3 get {redact(uri)} failed: {err}") from None


GCS_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS_JSON"  # a service-account key file's content


def _gcs_client(uri: str) -> Any:
    """A key from GOOGLE_APPLICATION_CREDENTIALS_JSON, else Application Default Credentials (a key file named
    by GOOGLE_APPLICATION_CREDENTIALS, Workload Identity); STORAGE_EMULATOR_HOST redirects to an emulator."""
    from google.cloud import storage
    from google.oauth2 import service_account

    info = os.environ.get(GCS_CREDENTIALS, "")
    if not info:
        return storage.Client(project=None)
    try:
        credentials = service_account.Credentials.from_service_account_info(json.loads(info))
    except (ValueError, TypeError, AttributeError):  # the messages may quote the key: never shown
        raise FetchError(f"gs get {redact(uri)} failed: {GCS_CREDENTIALS} is not the content of a "
                         f"service-account key file, {_given()}") from None  # fmt: skip
    return storage.Client(project=None, credentials=credentials)


def _gcs_chunks(uri: str, limits: Limits) -> Iterator[bytes]:
    try:
        import google.api_core.exceptions as gapi
        import google.auth.exceptions as gauth
    except ImportError:
        raise FetchError("gs:// needs google-cloud-storage (install modelserve[gcs])") from None
    parsed = urlparse(uri)
    try:
        blob = _gcs_client(uri).bucket(parsed.netloc).get_blob(parsed.path.lstrip("/"))
        if blob is None:
            raise Absent(f"{redact(uri)} not found", 404)
        if int(blob.size or 0) > limits.max_bytes:
            raise _too_large(uri, limits)
        with blob.open("rb", chunk_size=CHUNK) as reader:
            yield from iter(lambda: reader.read(CHUNK), b"")
    except gapi.NotFound:
        raise Absent(f"{redact(uri)} not found", 404) from None
    except (gapi.Forbidden, gapi.Unauthorized, gauth.RefreshError) as err:
        code = getattr(err, "code", None) or "token refused"
        raise Absent(denied_text(f"gs get {redact(uri)} failed ({code})"), 403) from None
    except gauth.DefaultCredentialsError:
        raise FetchError(f"gs get {redact(uri)} failed: no Google credentials found, {_given()}") from None
    except (gapi.GoogleAPIError, gauth.GoogleAuthError) as err:
        raise FetchError(f"gs get {redact(uri)} failed: {type(err).__name__}") from None


AZURE_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
AZURE_ACCOUNT_KEY = "AZURE_STORAGE_ACCOUNT_KEY"
AZURE_SAS_TOKEN = "AZURE_STORAGE_SAS_TOKEN"
AZURE_BLOB_ENDPOINT = "AZURE_STORAGE_BLOB_ENDPOINT"


def azure_location(uri: str) -> tuple[str, str, str]:
    """`azure://<account>/<container>/<blob>` as (account, container, blob)."""
    parsed = urlparse(uri)
    container, _, blob = parsed.path.lstrip("/").partition("/")
    if not parsed.netloc or not container or not blob:
        raise FetchError(f"{redact(uri)} must be azure://<account>/<container>/<blob>")
    return parsed.netloc, container, blob


def _azure_service(uri: str, account: str) -> Any:
    """A connection string, else the account URL (AZURE_STORAGE_BLOB_ENDPOINT or Azure's public one) with an
    account key, a SAS token or nothing (a public container)."""
    from azure.storage.blob import BlobServiceClient

    connection = os.environ.get(AZURE_CONNECTION_STRING, "")
    if connection:
        try:
            service = BlobServiceClient.from_connection_string(connection)
        except ValueError:  # its message may quote the string: never shown
            raise FetchError(f"azure get {redact(uri)} failed: {AZURE_CONNECTION_STRING} is not a connection "
                             f"string, {_given()}") from None  # fmt: skip
        if service.account_name != account:
            raise FetchError(f"azure get {redact(uri)} failed: {AZURE_CONNECTION_STRING} is for storage "
                             f"account {service.account_name!r}, the URI names {account!r}")  # fmt: skip
        return service
    endpoint = os.environ.get(AZURE_BLOB_ENDPOINT, "") or f"https://{account}.blob.core.windows.net"
    key, sas = os.environ.get(AZURE_ACCOUNT_KEY, ""), os.environ.get(AZURE_SAS_TOKEN, "")
    credential = {"account_name": account, "account_key": key} if key else (sas or None)
    return BlobServiceClient(account_url=endpoint, credential=credential)


def _azure_chunks(uri: str, limits: Limits) -> Iterator[bytes]:
    try:
        import azure.core.exceptions as azerr
    except ImportError:
        raise FetchError("azure:// needs azure-storage-blob (install modelserve[azure])") from None
    account, container, blob = azure_location(uri)
    try:
        client = _azure_service(uri, account).get_blob_client(container, blob)
        download = client.download_blob(max_concurrency=1)
        if int(download.size or 0) > limits.max_bytes:
            raise _too_large(uri, limits)
        yield from download.chunks()
    except azerr.ResourceNotFoundError:
        raise Absent(f"{redact(uri)} not found", 404) from None
    except azerr.ClientAuthenticationError as err:
        code = err.error_code or err.status_code
        raise Absent(denied_text(f"azure get {redact(uri)} failed ({code})"), 403) from None
    except azerr.HttpResponseError as err:  # its message quotes the request URL, SAS included: never shown
        if err.status_code in DENIED_STATUSES:
            raise Absent(denied_text(f"azure get {redact(uri)} failed ({err.error_code})"), 403) from None
        raise FetchError(f"azure get {redact(uri)} failed: HTTP {err.status_code} {err.error_code}") from None
    except azerr.AzureError as err:
        raise FetchError(f"azure get {redact(uri)} failed: {type(err).__name__}") from None
    except ValueError:  # a malformed key or token
        raise FetchError(f"azure get {redact(uri)} failed: malformed credentials, {_given()}") from None


def _file_chunks(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as fh:
            yield from iter(lambda: fh.read(CHUNK), b"")
    except IsADirectoryError:
        raise FetchError(f"{path} is a directory") from None
    except FileNotFoundError:
        raise Absent(f"{path} not found", 404) from None
    except OSError as err:
        raise FetchError(f"cannot read {path}: {err}") from None


def local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # plain path (or a Windows drive letter)
        return Path(uri)
    return None


def source_chunks(uri: str, limits: Limits) -> Iterator[bytes]:
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        return _http_chunks(uri, limits)
    if scheme == "s3":
        return _s3_chunks(uri, limits)
    if scheme == "gs":
        return _gcs_chunks(uri, limits)
    if scheme == "azure":
        return _azure_chunks(uri, limits)
    path = local_path(uri)
    if path is None:
        raise FetchError(
            f"unsupported URI scheme '{scheme}://' (use https, http, s3, gs, azure, file or a local path)"
        )
    return _file_chunks(path)


def _too_large(uri: str, limits: Limits) -> FetchError:
    return FetchError(
        f"{redact(uri)} is larger than {limits.max_bytes} bytes (MODELSERVE_FETCH_MAX_BYTES, --max-bytes)"
    )


def _write(uri: str, chunks: Iterator[bytes], out: IO[bytes], limits: Limits) -> str:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_large(uri, limits)
        if limits.remaining() < 0:
            raise FetchError(f"{redact(uri)}: the fetch took longer than its deadline "
                             "(MODELSERVE_FETCH_TIMEOUT_SECONDS, --timeout-seconds)")  # fmt: skip
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def download_file(uri: str, dest: Path, sha256: str = "", limits: Limits | None = None) -> str:
    """Stream to a temp file beside DEST, check the digest, rename into place; returns the digest."""
    limits = limits or Limits.start(FetchSettings().max_bytes, FetchSettings().timeout_seconds)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, contextlib.closing(source_chunks(uri, limits)) as chunks:
            actual = _write(uri, chunks, out, limits)
            out.flush()
            os.fsync(out.fileno())
        if sha256 and actual != sha256.lower():
            raise DigestMismatch(
                f"digest mismatch for {redact(uri)}: expected sha256 {sha256.lower()}, got {actual}"
            )
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


def manifest_uri(uri: str) -> str:
    """`<path>.schema.json` beside the model, keeping any query (a presigned one then answers 403)."""
    parsed = urlparse(uri)
    if not parsed.scheme or len(parsed.scheme) == 1 or parsed.scheme == "file":
        return uri + MANIFEST_SUFFIX
    return urlunparse(parsed._replace(path=parsed.path + MANIFEST_SUFFIX))


def fetch(
    uri: str,
    dest: str,
    sha256: str = "",
    *,
    schema_sha256: str = "",
    max_bytes: int | None = None,
    timeout_seconds: float | None = None,
) -> str:
    """Returns the SHA-256 of the fetched file or MANIFEST ('' for an unpinned local directory)."""
    settings = FetchSettings()
    limits = Limits.start(max_bytes or settings.max_bytes, timeout_seconds or settings.timeout_seconds)
    target = Path(dest)
    if _last_segment(uri) == MANIFEST_NAME:
        return fetch_tree(uri, target, sha256, limits)
    source = local_path(uri)
    if source is not None and source.is_dir():
        if sha256:
            if not (source / MANIFEST_NAME).is_file():
                raise FetchError(
                    f"{uri} is a directory without a {MANIFEST_NAME} file: a digest pins a directory through "
                    "its MANIFEST (see docs/models.md); add one, or remove the digest"
                )
            return fetch_tree(str(source / MANIFEST_NAME), target / MANIFEST_NAME, sha256, limits)
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_directory(source, target)
        return ""
    digest = download_file(uri, target, sha256, limits)
    _fetch_manifest(uri, target, bool(sha256), schema_sha256, limits)
    return digest


def _last_segment(uri: str) -> str:
    path = local_path(uri)
    return path.name if path is not None else urlparse(uri).path.rsplit("/", 1)[-1]


def sibling_uri(manifest: str, rel: str) -> str:
    """The URI of `rel` in the directory a MANIFEST URI names (percent-encoded for http, raw for S3 keys)."""
    path = local_path(manifest)
    if path is not None:
        return str(path.parent / rel)
    parsed = urlparse(manifest)
    base = parsed.path.rsplit("/", 1)[0]
    name = quote(rel) if parsed.scheme in ("http", "https") else rel
    return urlunparse(parsed._replace(path=f"{base}/{name}", query="", fragment=""))


def fetch_tree(manifest_uri: str, dest: Path, sha256: str, limits: Limits) -> str:
    """The MANIFEST to DEST and its files beside it, each verified, all written under a temp directory
    first and moved in only when every one matched (MANIFEST last). Returns the MANIFEST's digest."""
    root = dest.parent
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".fetch-"))
    try:
        digest = download_file(manifest_uri, staging / MANIFEST_NAME, sha256, limits)
        try:
            entries = parse_manifest((staging / MANIFEST_NAME).read_bytes())
        except ManifestError as err:
            raise FetchError(f"{redact(manifest_uri)}: {err}") from None
        for entry in entries:
            uri = sibling_uri(manifest_uri, entry.path)
            try:
                download_file(uri, staging / entry.path, entry.sha256, limits)
            except Absent:
                raise FetchError(f"{redact(uri)} is listed in {MANIFEST_NAME} but not found") from None
            except DigestMismatch as err:
                raise DigestMismatch(f"{err} (listed in {MANIFEST_NAME} as {entry.path})") from None
        for child in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST_NAME):
            _move_into(child, root / (dest.name if child.name == MANIFEST_NAME else child.name))
        return digest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)  # a retried init container finds the previous attempt's tree
    os.replace(source, target)


def _fetch_manifest(uri: str, target: Path, model_pinned: bool, schema_sha256: str, limits: Limits) -> None:
    """The optional schema manifest travels with the model; its absence is normal unless it is pinned."""
    manifest_dest = target.with_name(target.name + MANIFEST_SUFFIX)
    source = manifest_uri(uri)
    try:
        download_file(source, manifest_dest, schema_sha256, limits)
    except Absent:
        if schema_sha256:
            raise FetchError(f"{redact(source)} not found, but --schema-sha256 was given") from None
        return
    if model_pinned and not schema_sha256:
        manifest_dest.unlink()
        raise DigestMismatch(
            f"{redact(source)} sits beside a model pinned by --sha256 but is not pinned itself: it decides "
            "how inputs are read, so pass its digest with --schema-sha256 (or put the schema in the "
            "ModelDeployment's model.schema and remove the side file)"
        )
