"""The ASGI application: raw ASGI endpoints for the model's paths, a plain Starlette app around them.

`create_app` builds the server state, the routes, the Starlette app (docs, OpenAPI, 404/405, lifespan) and,
unless `MODELSERVE_FRAMEWORK_BYPASS=false`, puts the exact-path dispatcher of `modelserve.bypass` in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import orjson
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .auth import ApiKeys, RateLimiter, auth_failure_limiter
from .batching import Batcher
from .bypass import ExactPathDispatcher, exact_routes
from .drift import DriftWindow, derived_drift, load_drift
from .endpoints import (
    Deadlines,
    JsonEndpoint,
    PredictEndpoint,
    ServerState,
    authenticate,
    check_model,
    error_body,
)
from .errors import RateLimited, Unauthorized
from .feedback_endpoint import FeedbackEndpoint, build_feedback
from .loaders import LoadedModel
from .metrics import CONTENT_TYPE, Metrics
from .openapi import build_openapi
from .reqlog import LINES, RequestLogger, flush_periodically, log_event
from .runtimes.device import device_of
from .schema import NUMERIC_DTYPES
from .settings import Settings
from .shadow import ShadowCopier


def create_app(settings: Settings, loaded: LoadedModel) -> ASGIApp:
    """Build the app around an already loaded and warmed model."""
    state = build_state(settings, loaded)
    routes = build_routes(state)
    app = IdentityHeaders(build_starlette_app(state, routes), state.identity)
    if not settings.framework_bypass:
        return app
    params = {"name": settings.model_name, "version": settings.model_version}
    return ExactPathDispatcher(exact_routes(routes, params), fallback=app)


def build_state(settings: Settings, loaded: LoadedModel) -> ServerState:
    """Metrics, auth, limits, the batcher and the deadline watchdog for one loaded model."""
    metrics = Metrics(settings.metric_labels, bypass=settings.framework_bypass)
    metrics.load_seconds.set(loaded.load_seconds + loaded.warmup_seconds)
    classifier = loaded.classes is not None

    def observe(rows: int, seconds: float, outputs: dict[str, np.ndarray]) -> None:
        metrics.observe_batch(rows, seconds, outputs, classifier)

    in_thread = settings.predict_mode == "thread" or (
        settings.predict_mode == "auto" and loaded.warmup_seconds > 0.001
    )
    batcher = Batcher(
        loaded.model.predict,
        settings.max_batch_size,
        settings.max_batch_latency_ms / 1000,
        settings.max_queue,
        in_thread,
        observe,
    )
    return ServerState(
        settings=settings,
        loaded=loaded,
        metrics=metrics,
        logger=RequestLogger(
            settings.log_sample_rate,
            settings.redact_fields,
            settings.metric_labels,
            payloads=settings.log_payloads,
        ),
        keys=ApiKeys(settings.api_keys_file),
        limiter=RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst),
        auth_failures=auth_failure_limiter(settings.auth_failure_rps, settings.auth_failure_burst),
        batcher=batcher,
        deadlines=Deadlines(settings.timeout_seconds),
        predict_in_thread=in_thread,
        shadow=ShadowCopier(
            settings.shadow_config_file, classifier, settings.metric_labels, metrics.registry
        ),
        feedback=build_feedback(settings, loaded.classes, metrics.registry),
        drift=build_drift(settings, loaded, metrics),
    )


def build_drift(settings: Settings, loaded: LoadedModel, metrics: Metrics) -> DriftWindow | None:
    """The drift window when a reference is mounted; a reference that cannot be used leaves serving as it
    is (one log event says why)."""
    if not settings.drift_reference_file:
        return None
    schema = loaded.schema
    dtypes = {f.name: f.dtype for f in schema.features}
    try:
        if not schema.tabular:
            raise ValueError("drift needs a tabular model (named features)")
        profiles = load_drift(
            settings.drift_reference_file,
            schema.feature_names,
            lambda name: dtypes.get(name) in NUMERIC_DTYPES,
            settings.drift_feature_list,
            settings.drift_max_features,
            loaded.model.predict if loaded.classes is not None else None,
        )
    except (OSError, ValueError, UnicodeDecodeError) as err:
        log_event("drift_disabled", pid=os.getpid(), reason=str(err)[:300])
        return None
    return DriftWindow(profiles, settings.drift_window_rows, metrics.registry, settings.metric_labels)


def model_metadata(state: ServerState) -> dict[str, Any]:
    settings, loaded = state.settings, state.loaded
    schema = loaded.schema
    shape = list(schema.shape)
    return {
        "name": settings.model_name,
        "versions": [settings.model_version],
        "platform": f"modelserve-{loaded.format}",
        "inputs": [{"name": schema.input_name, "datatype": schema.v2_datatype, "shape": shape}],
        "outputs": [o.as_dict() for o in loaded.outputs],
        "parameters": {
            "format": loaded.format,
            "revision": settings.model_revision,
            "color": settings.model_color,
            "classes": loaded.classes,
            "schema": schema.as_dict(),
        },
    }


class StatusHandlers:
    """The GET answers other than docs: health, readiness, metadata and /metrics, each (status, body)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.settings = state.settings

    def ready_status(self, _: Scope) -> tuple[int, bytes]:
        if self.state.ready and not self.state.draining:
            return 200, b'{"ready":true}'
        reason = "draining" if self.state.draining else "model not loaded"
        return 503, orjson.dumps({"ready": False, "error": f"not ready: {reason}"})

    def live(self, _: Scope) -> tuple[int, bytes]:
        # Busy is alive; one model call running past the stall limit (a hang) is not.
        stall_limit = self.settings.stall_limit_seconds
        stalled = self.state.batcher.stalled_for(time.perf_counter())
        if stalled <= stall_limit:
            return 200, b'{"live":true}'
        message = (
            f"not live: the prediction worker made no progress for {stalled:.0f}s (limit {stall_limit:g}s)"
        )
        return 503, orjson.dumps({"live": False, "error": message})

    def server_metadata(self, _: Scope) -> tuple[int, bytes]:
        return 200, orjson.dumps({"name": "modelserve", "version": __version__, "extensions": []})

    def metadata(self, scope: Scope) -> tuple[int, bytes]:
        check_model(self.settings, scope)
        return 200, orjson.dumps(model_metadata(self.state))

    def model_ready(self, scope: Scope) -> tuple[int, bytes]:
        check_model(self.settings, scope)
        status, _ = self.ready_status(scope)
        return status, orjson.dumps({"name": self.settings.model_name, "ready": status == 200})

    def _derived(self, families: list[Any]) -> bytes:
        drift = self.state.drift
        figures = derived_drift(families, drift.profiles) if drift is not None else b""
        return self.state.feedback.exposition_figures(families) + figures

    def metrics(self, _: Scope) -> tuple[int, bytes]:
        if self.state.drift is not None:
            self.state.drift.flush(time.monotonic())  # this worker's window as it is now (others: within 1 s)
        return 200, self.state.metrics.exposition(self._derived)


def build_routes(state: ServerState) -> list[Route]:
    answers = StatusHandlers(state)

    def get(
        path: str,
        handler: Callable[[Scope], tuple[int, bytes]],
        content_type: bytes = b"application/json",
        protected: bool = False,
    ) -> Route:
        return Route(path, JsonEndpoint(state, path, handler, content_type, protected), methods=["GET"])

    def post(path: str, protocol: str) -> Route:
        return Route(path, PredictEndpoint(state, path, protocol), methods=["POST"])

    def feedback(path: str) -> Route:
        return Route(path, FeedbackEndpoint(state, state.feedback, path), methods=["POST"])

    return [
        post("/v2/models/{name}/infer", "v2"),
        feedback("/v2/models/{name}/feedback"),
        feedback("/feedback"),
        post("/v1/models/{name}:predict", "v1"),
        post("/predict", "records"),
        post("/v2/models/{name}/versions/{version}/infer", "v2"),
        get("/v2/health/live", answers.live),
        get("/v2/health/ready", answers.ready_status),
        get("/health", answers.ready_status),
        get("/metrics", answers.metrics, CONTENT_TYPE.encode()),
        get("/v2", answers.server_metadata),
        get("/v2/models/{name}", answers.metadata, protected=True),
        get("/v2/models/{name}/ready", answers.model_ready),
        get("/v2/models/{name}/versions/{version}", answers.metadata, protected=True),
        get("/v2/models/{name}/versions/{version}/ready", answers.model_ready),
        get("/v1/models/{name}", answers.model_ready),
    ]


def build_starlette_app(state: ServerState, routes: list[Route]) -> Starlette:
    """The model's routes plus the docs, JSON errors for 404/405 and crashes, and the lifespan."""
    openapi: dict[bool, dict[str, Any]] = {}

    async def openapi_json(request: Request) -> Response:
        try:
            full = shows_features(state, request.scope)
        except RateLimited as err:
            headers = {"retry-after": str(err.retry_after_seconds)}
            return Response(error_body(err.message), 429, headers, "application/json")
        if full not in openapi:
            openapi[full] = build_openapi(state, with_features=full)
        return JSONResponse(openapi[full])

    async def docs(_: Request) -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="modelserve - Swagger UI")

    docs_routes = [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    return Starlette(
        routes=[*docs_routes, *routes],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan_of(state),
    )


def shows_features(state: ServerState, scope: Scope) -> bool:
    """Whether /openapi.json may list the feature names: with keys configured, only for a valid key (a wrong
    one counts as a failed attempt; asking without one does not)."""
    if not state.keys.enabled:
        return True
    headers = dict(scope["headers"])
    if b"authorization" not in headers and b"x-api-key" not in headers:
        return False
    try:
        authenticate(state, scope, headers)
    except Unauthorized:
        return False
    return True


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path[:200]
    messages = {404: f"not found: {path}", 405: f"method {request.method} not allowed on {path}"}
    message = messages.get(exc.status_code, str(exc.detail))
    return Response(error_body(message), exc.status_code, media_type="application/json")


async def internal_error(_: Request, exc: Exception) -> Response:
    traceback.print_exception(exc, file=sys.stderr)
    return Response(error_body("internal error"), 500, media_type="application/json")


def lifespan_of(state: ServerState) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """Start: drain handler, frozen start-up objects, watchdog and log flusher, ready. Stop: the reverse."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        install_drain_handler(state)
        if state.settings.grpc_port:
            from .grpcserver import GrpcServer  # grpc is imported only when it is served

            state.grpc = GrpcServer(state)
            await state.grpc.start()
        # Start-up objects (frameworks, the model) never die: keep them out of every later GC pass,
        # or a gen-2 collection walks them all mid-request (tens of ms of p99).
        gc.collect()
        gc.freeze()
        loop = asyncio.get_running_loop()
        background = [loop.create_task(state.deadlines.watch()), loop.create_task(flush_periodically())]
        state.shadow.start()
        state.ready = True
        state.metrics.ready.set(1)
        log_ready(state)
        yield
        state.ready = False
        if state.grpc is not None:
            await state.grpc.wait_stopped()  # begun on SIGTERM: its calls in flight finish first
        for task in background:
            task.cancel()
        await state.shadow.stop()
        state.batcher.close()
        LINES.flush()  # every buffered request line is out before the process exits

    return lifespan


def log_ready(state: ServerState) -> None:
    settings, loaded = state.settings, state.loaded
    device = device_of(loaded.model)
    log_event(
        "ready",
        pid=os.getpid(),
        model=settings.model_name,
        version=settings.model_version,
        format=loaded.format,
        device=device.device,
        device_reason=device.reason,
        predict_in_thread=state.predict_in_thread,
        fast_path=loaded.fast_path,
        framework_bypass=settings.framework_bypass,
        auth=state.keys.enabled,
    )


class IdentityHeaders:
    """Adds the identity headers to responses that lack them: Starlette's own (docs, 404/405, 500)."""

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = self.headers

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                missing = [(name, value) for name, value in headers if name not in present]
                if missing:
                    message = {**message, "headers": [*message.get("headers", ()), *missing]}
            await send(message)

        await self.app(scope, receive, sending)


def install_drain_handler(state: ServerState) -> None:
    """SIGTERM: readiness turns false first, then (after drain_seconds) uvicorn's own graceful stop and the
    gRPC server's (GOAWAY to every connection, calls in flight finish)."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    delay = state.settings.drain_seconds

    def on_sigterm(signum: int, frame: Any) -> None:
        if not state.draining:
            state.draining = True
            state.metrics.ready.set(0)
            # The log buffer is not re-entrant: the event (which flushes it) runs on the loop, not in here.
            loop.call_soon_threadsafe(
                functools.partial(log_event, "draining", pid=os.getpid(), drain_seconds=delay)
            )
        if delay > 0:
            loop.call_soon_threadsafe(loop.call_later, delay, stop, signum, frame)
        else:
            stop(signum, frame)

    def stop(signum: int, frame: Any) -> None:
        if state.grpc is not None:
            loop.call_soon_threadsafe(state.grpc.begin_stop)
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
