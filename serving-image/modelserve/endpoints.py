"""Raw ASGI endpoints on the hot path: per-request auth, limits, parsing, batching, metrics and logging."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.types import Receive, Scope, Send

from .auth import ApiKeys, RateLimiter, extract_key
from .batching import Batcher
from .errors import BadRequest, ModelServeError, NotFound, PayloadTooLarge, PredictTimeout, Unauthorized
from .loaders import LoadedModel
from .metrics import Metrics
from .protocols import (
    check_requested_outputs,
    encode_records,
    encode_v1,
    encode_v2,
    parse_json,
    parse_records,
    parse_v1,
    parse_v2,
    split_binary_body,
)
from .reqlog import RequestLogger
from .schema import InputSchema
from .settings import Settings
from .shadow import ShadowCopier

if TYPE_CHECKING:
    from .drift import DriftWindow
    from .feedback_endpoint import Feedback

JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class ServerState:
    """What every endpoint of one worker process shares."""

    settings: Settings
    loaded: LoadedModel
    metrics: Metrics
    logger: RequestLogger
    keys: ApiKeys
    limiter: RateLimiter
    auth_failures: RateLimiter
    batcher: Batcher
    deadlines: Deadlines
    predict_in_thread: bool
    shadow: ShadowCopier
    feedback: Feedback
    drift: DriftWindow | None = None
    ready: bool = False
    draining: bool = False
    grpc: Any = None  # the gRPC server (grpcserver.GrpcServer) when MODELSERVE_GRPC_PORT is set
    identity: list[tuple[bytes, bytes]] = field(init=False)
    schema: InputSchema = field(init=False)

    def __post_init__(self) -> None:
        self.identity = identity_headers(self.settings)
        # Error messages never quote the values of fields the logs redact.
        self.schema = dataclasses.replace(self.loaded.schema, redacted=self.settings.redact_fields)


def identity_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """X-Model-Color and X-Model-Revision: which slot and build answered (set on every response)."""
    return [
        (b"x-model-color", settings.model_color.encode()),
        (b"x-model-revision", settings.model_revision.encode()),
    ]


async def send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    # A content-length spares chunked framing (one write and less parsing for the client).
    sized = [*JSON_HEADERS, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": sized + (headers or [])})
    await send({"type": "http.response.body", "body": body})


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_ID_PREFIX = secrets.token_hex(6)
_id_counter = itertools.count(1)


def request_id_from(headers: dict[bytes, bytes]) -> str:
    """The caller's X-Request-ID when sane, else a process-unique id (random prefix + counter: no syscall)."""
    given = headers.get(b"x-request-id")
    if given and len(given) <= 128 and given.isascii() and given.decode().isprintable():
        return given.decode()
    return f"{_ID_PREFIX}{next(_id_counter):010x}"


class Deadlines:
    """One watchdog for every pending prediction instead of a timer per request (a heap push and a cancel)."""

    TICK_SECONDS = 0.05

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.pending: dict[asyncio.Future[Any], float] = {}

    def add(self, future: asyncio.Future[Any]) -> None:
        self.pending[future] = time.monotonic() + self.timeout

    def discard(self, future: asyncio.Future[Any]) -> None:
        self.pending.pop(future, None)

    def expire(self, now: float) -> None:
        late = [f for f, deadline in self.pending.items() if deadline <= now]
        for future in late:
            del self.pending[future]
            if not future.done():
                future.set_exception(
                    PredictTimeout(
                        f"prediction did not finish within {self.timeout:g}s (MODELSERVE_TIMEOUT_SECONDS)"
                    )
                )

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.TICK_SECONDS)
            if self.pending:
                self.expire(time.monotonic())


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "anonymous"


def authenticate(state: ServerState, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
    return authenticate_client(state, client_address(scope), headers)


def authenticate_client(state: ServerState, client: str, headers: dict[bytes, bytes]) -> str | None:
    """The key id (None when auth is off); a failure is charged to the client's address (429 past its
    limit). A valid key is checked first, so others' failures never refuse it. `headers` are HTTP headers
    or gRPC metadata (lower-case names either way)."""
    auth = headers.get(b"authorization")
    api_key = headers.get(b"x-api-key")
    try:
        return state.keys.authenticate(
            extract_key(
                auth.decode("latin-1") if auth else None, api_key.decode("latin-1") if api_key else None
            )
        )
    except Unauthorized:
        if state.auth_failures.enabled:
            state.auth_failures.check(client)
        raise


def admit(state: ServerState, client: str, headers: dict[bytes, bytes], charge: bool = True) -> str | None:
    """API key, then (when `charge`) the rate limit, per key or per client address when auth is off; the
    key id."""
    key_id = authenticate_client(state, client, headers)
    if charge and state.limiter.enabled:
        state.limiter.check(key_id or client)
    return key_id


def check_rows(rows: np.ndarray, max_rows: int) -> None:
    if max_rows and len(rows) > max_rows:
        raise PayloadTooLarge(f"request has {len(rows)} rows; the limit is {max_rows} (MODELSERVE_MAX_ROWS)")


async def predict_rows(state: ServerState, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Through the batcher, under the request deadline."""
    future = state.batcher.submit(rows)
    deadlines = state.deadlines
    deadlines.add(future)
    try:
        return await future
    finally:
        deadlines.discard(future)


def retry_after(err: ModelServeError) -> list[tuple[bytes, bytes]]:
    """Every 429 says when to come back."""
    retry = getattr(err, "retry_after_seconds", None)
    return [] if retry is None else [(b"retry-after", str(retry).encode())]


def check_model(settings: Settings, scope: Scope) -> None:
    """The {name} and {version} of the path are this server's own, or 404."""
    params = scope.get("path_params", {})
    check_model_name(settings, params.get("name"), params.get("version"))


def check_model_name(settings: Settings, name: str | None, version: str | None) -> None:
    """None: not given (any version is this one)."""
    if name is not None and name != settings.model_name:
        raise NotFound(f"model '{name}' not found; this server serves '{settings.model_name}'")
    if version is not None and version != settings.model_version:
        raise NotFound(
            f"version '{version}' of model '{name}' not found; this server serves version "
            f"'{settings.model_version}'"
        )


class Arriving:
    """While a request's body is read and parsed, the batcher knows one more is on its way (and may wait)."""

    __slots__ = ("batcher",)

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    def __enter__(self) -> None:
        self.batcher.arriving += 1

    def __exit__(self, *_: object) -> None:
        self.batcher.arriving -= 1


class Exchange:
    """One prediction request on its way: what its response, metrics and log line are made of."""

    __slots__ = (
        "body",
        "error",
        "headers",
        "key_id",
        "outputs",
        "payload",
        "request_id",
        "rows",
        "shadow_copy",
        "status",
    )

    def __init__(self, request_id: str, identity: list[tuple[bytes, bytes]]) -> None:
        self.request_id = request_id
        self.status = 200
        self.payload = b""
        self.headers = [(b"x-request-id", request_id.encode()), *identity]
        self.rows: np.ndarray | None = None
        self.outputs: dict[str, np.ndarray] | None = None
        self.error: str | None = None
        self.key_id: str | None = None
        self.body = b""
        self.shadow_copy = False  # a copy sent by the active colour (see modelserve.shadow)

    def failed(self, err: ModelServeError) -> None:
        self.status = err.status_code
        self.error = err.message
        self.payload = error_body(err.message)
        self.headers.extend(retry_after(err))

    def crashed(self, err: Exception) -> None:
        """A bug of ours: the trace goes to stderr, the client gets a short 500."""
        self.status = 500
        self.error = f"internal error ({type(err).__name__})"
        self.payload = error_body(self.error)
        traceback.print_exc(file=sys.stderr)


class PredictEndpoint:
    """One protocol's predict route: admit, read, parse, predict, encode; then metrics and the log line."""

    def __init__(self, state: ServerState, route: str, protocol: str) -> None:
        self.state = state
        self.route = route
        self.protocol = protocol
        self.schema = state.schema
        self.available_outputs = state.loaded.output_names
        self.max_rows = state.settings.max_rows

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        exchange = Exchange(request_id_from(headers), self.state.identity)
        shadow = self.state.shadow
        if shadow.tokens:
            exchange.shadow_copy = shadow.is_copy(headers)
        metrics = self.state.metrics
        metrics.inflight_add(1)
        try:
            exchange.payload = await self.answer(scope, receive, headers, exchange)
        except ModelServeError as err:
            exchange.failed(err)
        except Exception as err:
            exchange.crashed(err)
        finally:
            metrics.inflight_add(-1)
        await send_json(send, exchange.status, exchange.payload, exchange.headers)
        self.record(exchange, time.perf_counter() - started)
        # Only after the answer is out: the copy never delays or fails it.
        if shadow.config is not None and exchange.status == 200 and not exchange.shadow_copy:
            assert exchange.outputs is not None
            shadow.offer(
                scope["path"], self.protocol, exchange.body, headers, exchange.outputs, exchange.request_id
            )

    async def answer(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes], exchange: Exchange
    ) -> bytes:
        """The 200 body; any refusal on the way is a ModelServeError."""
        state = self.state
        with Arriving(state.batcher):
            exchange.key_id = self.admit(scope, headers, exchange.shadow_copy)
            body = exchange.body = await read_body(receive, headers, state.settings.max_body_bytes)
            rows, context = self.parse(body, headers)
        check_rows(rows, self.max_rows)
        exchange.rows = rows
        exchange.outputs = await self.predict(rows)
        exchange.headers.extend(state.feedback.mint(exchange.outputs, exchange.key_id))
        if state.drift is not None:
            state.drift.observe(rows, exchange.outputs.get("predict"))
        return self.encode(exchange.outputs, context)

    def admit(self, scope: Scope, headers: dict[bytes, bytes], shadow_copy: bool = False) -> str | None:
        """API key, rate limit (not for shadow copies: the client was charged by the active colour), model
        name and version; the caller's key id."""
        key_id = admit(self.state, client_address(scope), headers, charge=not shadow_copy)
        check_model(self.state.settings, scope)
        return key_id

    def parse(self, body: bytes, headers: dict[bytes, bytes]) -> tuple[np.ndarray, Any]:
        if self.protocol == "v2":
            json_part, reader = split_binary_body(body, headers.get(b"inference-header-content-length"))
            rows, requested, v2_id = parse_v2(parse_json(json_part), self.schema, reader)
            check_requested_outputs(requested, self.available_outputs)
            return rows, (requested, v2_id)
        if self.protocol == "v1":
            return parse_v1(parse_json(body), self.schema), None
        return parse_records(parse_json(body), self.schema), None

    async def predict(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return await predict_rows(self.state, rows)

    def encode(self, outputs: dict[str, np.ndarray], context: Any) -> bytes:
        if self.protocol == "v2":
            requested, v2_id = context
            settings = self.state.settings
            return encode_v2(outputs, settings.model_name, settings.model_version, v2_id, requested)
        if self.protocol == "v1":
            return encode_v1(outputs)
        return encode_records(outputs, self.state.loaded.classes)

    def record(self, exchange: Exchange, latency: float) -> None:
        state = self.state
        if exchange.shadow_copy:  # kept out of the figures the candidate's analysis reads
            state.shadow.served_copy()
        else:
            state.metrics.observe_request(self.route, exchange.status, latency)
        if state.logger.sampled(exchange.status):
            state.logger.log(
                exchange.request_id,
                self.route,
                exchange.status,
                latency,
                exchange.rows,
                self.schema.feature_names,
                exchange.outputs,
                exchange.error,
                exchange.key_id,
            )


class JsonEndpoint:
    """Cheap GET endpoints: health and metrics stay open, model metadata needs a key when keys are set."""

    def __init__(
        self,
        state: ServerState,
        route: str,
        handler: Callable[[Scope], tuple[int, bytes]],
        content_type: bytes = b"application/json",
        protected: bool = False,
    ) -> None:
        self.state = state
        self.route = route
        self.handler = handler
        self.content_type = content_type
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        extra: list[tuple[bytes, bytes]] = []
        try:
            if self.protected:
                authenticate(self.state, scope, dict(scope["headers"]))
            status, body = self.handler(scope)
        except ModelServeError as err:
            status, body, extra = err.status_code, error_body(err.message), retry_after(err)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", self.content_type),
                    (b"content-length", b"%d" % len(body)),
                    *self.state.identity,
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        self.state.metrics.observe_request(self.route, status, time.perf_counter() - started)
