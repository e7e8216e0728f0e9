"""Raw ASGI endpoints on the hot path: per-request auth, limits, parsing, batching, metrics and logging."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .auth import ApiKeys, RateLimiter, extract_key
from .batching import Batcher
from .errors import BadRequest, ModelServeError, NotFound, PayloadTooLarge, PredictTimeout
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
from .settings import Settings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class ServerState:
    settings: Settings
    loaded: LoadedModel
    metrics: Metrics
    logger: RequestLogger
    keys: ApiKeys
    limiter: RateLimiter
    batcher: Batcher
    deadlines: Deadlines
    ready: bool = False
    draining: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    identity: list[tuple[bytes, bytes]] = field(init=False)

    def __post_init__(self) -> None:
        self.identity = identity_headers(self.settings)


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


def authenticate(state: ServerState, headers: dict[bytes, bytes]) -> str | None:
    auth = headers.get(b"authorization")
    api_key = headers.get(b"x-api-key")
    return state.keys.authenticate(
        extract_key(auth.decode("latin-1") if auth else None, api_key.decode("latin-1") if api_key else None)
    )


class PredictEndpoint:
    """One protocol's predict route: auth, rate limit, body limit, parse, batch, encode, metrics, log."""

    def __init__(self, state: ServerState, route: str, protocol: str) -> None:
        self.state = state
        self.route = route
        self.protocol = protocol
        self.schema = state.loaded.schema
        self.available_outputs = tuple(state.loaded.extra.get("output_names", ()))

    def check_model(self, scope: Scope) -> None:
        params = scope.get("path_params", {})
        settings = self.state.settings
        name = params.get("name")
        if name is not None and name != settings.model_name:
            raise NotFound(f"model '{name}' not found; this server serves '{settings.model_name}'")
        version = params.get("version")
        if version is not None and version != settings.model_version:
            raise NotFound(
                f"version '{version}' of model '{name}' not found; this server serves version "
                f"'{settings.model_version}'"
            )

    def parse(self, body: bytes, headers: dict[bytes, bytes]) -> tuple[np.ndarray, Any]:
        if self.protocol == "v2":
            json_part, reader = split_binary_body(body, headers.get(b"inference-header-content-length"))
            rows, requested, v2_id = parse_v2(parse_json(json_part), self.schema, reader)
            check_requested_outputs(requested, self.available_outputs)
            return rows, (requested, v2_id)
        if self.protocol == "v1":
            return parse_v1(parse_json(body), self.schema), None
        return parse_records(parse_json(body), self.schema), None

    def encode(self, outputs: dict[str, np.ndarray], context: Any) -> bytes:
        if self.protocol == "v2":
            requested, v2_id = context
            settings = self.state.settings
            return encode_v2(outputs, settings.model_name, settings.model_version, v2_id, requested)
        if self.protocol == "v1":
            return encode_v1(outputs)
        return encode_records(outputs, self.state.loaded.classes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = request_id_from(headers)
        batcher = state.batcher
        state.metrics.inflight_add(1)
        batcher.arriving += 1
        arriving = True
        status = 200
        rows: np.ndarray | None = None
        outputs: dict[str, np.ndarray] | None = None
        error: str | None = None
        key_id: str | None = None
        extra_headers = [(b"x-request-id", request_id.encode()), *state.identity]
        try:
            key_id = authenticate(state, headers)
            if state.limiter.enabled:
                client = scope.get("client")
                state.limiter.check(key_id or (client[0] if client else "anonymous"))
            self.check_model(scope)
            body = await read_body(receive, headers, state.settings.max_body_bytes)
            rows, context = self.parse(body, headers)
            batcher.arriving -= 1
            arriving = False
            future = batcher.submit(rows)
            state.deadlines.add(future)
            try:
                outputs = await future
            finally:
                state.deadlines.discard(future)
            payload = self.encode(outputs, context)
        except ModelServeError as err:
            status = err.status_code
            error = err.message
            payload = error_body(error)
            retry = getattr(err, "retry_after_seconds", None)
            if retry is not None:
                extra_headers.append((b"retry-after", str(retry).encode()))
        except Exception as err:  # a bug of ours: log it server-side, answer without the trace
            status = 500
            error = f"internal error ({type(err).__name__})"
            payload = error_body(error)
            traceback.print_exc(file=sys.stderr)
        finally:
            if arriving:
                batcher.arriving -= 1
            state.metrics.inflight_add(-1)
        await send_json(send, status, payload, extra_headers)
        latency = time.perf_counter() - started
        state.metrics.observe_request(self.route, status, latency)
        if state.logger.sampled(status):
            state.logger.log(
                request_id,
                self.route,
                status,
                latency,
                rows,
                self.schema.feature_names,
                outputs,
                error,
                key_id,
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
        try:
            if self.protected:
                authenticate(self.state, dict(scope["headers"]))
            status, body = self.handler(scope)
        except ModelServeError as err:
            status, body = err.status_code, error_body(err.message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", self.content_type),
                    (b"content-length", b"%d" % len(body)),
                    *self.state.identity,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        self.state.metrics.observe_request(self.route, status, time.perf_counter() - started)
