"""The ASGI application: FastAPI for the app shell and OpenAPI docs, raw ASGI endpoints on the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import __version__
from .auth import ApiKeys, RateLimiter
from .batching import Batcher
from .endpoints import (
    Deadlines,
    JsonEndpoint,
    PredictEndpoint,
    Receive,
    Scope,
    Send,
    ServerState,
    error_body,
)
from .errors import NotFound
from .loaders import LoadedModel
from .metrics import CONTENT_TYPE, Metrics
from .openapi import build_openapi
from .reqlog import LINES, RequestLogger, flush_periodically, log_event
from .settings import Settings


def model_metadata(state: ServerState) -> dict[str, Any]:
    settings, loaded = state.settings, state.loaded
    schema = loaded.schema
    shape = list(schema.shape)
    return {
        "name": settings.model_name,
        "versions": [settings.model_version],
        "platform": f"modelserve-{loaded.format}",
        "inputs": [{"name": schema.input_name, "datatype": schema.v2_datatype, "shape": shape}],
        "outputs": loaded.extra.get("outputs", []),
        "parameters": {
            "format": loaded.format,
            "revision": settings.model_revision,
            "color": settings.model_color,
            "classes": loaded.classes,
            "schema": schema.as_dict(),
        },
    }


def build_routes(state: ServerState) -> list[Route]:
    settings = state.settings

    def ready_status(_: Scope) -> tuple[int, bytes]:
        if state.ready and not state.draining:
            return 200, b'{"ready":true}'
        reason = "draining" if state.draining else "model not loaded"
        return 503, orjson.dumps({"ready": False, "error": f"not ready: {reason}"})

    def live(_: Scope) -> tuple[int, bytes]:
        return 200, b'{"live":true}'

    def server_metadata(_: Scope) -> tuple[int, bytes]:
        return 200, orjson.dumps({"name": "modelserve", "version": __version__, "extensions": []})

    def check_name(scope: Scope) -> None:
        params = scope.get("path_params", {})
        if params.get("name") != settings.model_name:
            raise NotFound(
                f"model '{params.get('name')}' not found; this server serves '{settings.model_name}'"
            )
        if "version" in params and params["version"] != settings.model_version:
            raise NotFound(f"version '{params['version']}' of model '{params['name']}' not found")

    def metadata(scope: Scope) -> tuple[int, bytes]:
        check_name(scope)
        return 200, orjson.dumps(model_metadata(state))

    def model_ready(scope: Scope) -> tuple[int, bytes]:
        check_name(scope)
        status, _ = ready_status(scope)
        return status, orjson.dumps({"name": settings.model_name, "ready": status == 200})

    def metrics(_: Scope) -> tuple[int, bytes]:
        return 200, state.metrics.exposition()

    def get(
        path: str,
        handler: Callable[[Scope], tuple[int, bytes]],
        content_type: bytes = b"application/json",
        protected: bool = False,
    ) -> Route:
        return Route(path, JsonEndpoint(state, path, handler, content_type, protected), methods=["GET"])

    def post(path: str, protocol: str) -> Route:
        return Route(path, PredictEndpoint(state, path, protocol), methods=["POST"])

    return [
        post("/v2/models/{name}/infer", "v2"),
        post("/v1/models/{name}:predict", "v1"),
        post("/predict", "records"),
        post("/v2/models/{name}/versions/{version}/infer", "v2"),
        get("/v2/health/live", live),
        get("/v2/health/ready", ready_status),
        get("/health", ready_status),
        get("/metrics", metrics, CONTENT_TYPE.encode()),
        get("/v2", server_metadata),
        get("/v2/models/{name}", metadata, protected=True),
        get("/v2/models/{name}/ready", model_ready),
        get("/v2/models/{name}/versions/{version}", metadata, protected=True),
        get("/v2/models/{name}/versions/{version}/ready", model_ready),
        get("/v1/models/{name}", model_ready),
    ]


class ModelServeApp(FastAPI):
    """FastAPI for docs and the odd path; the hot paths (known exactly at start-up) skip its middleware."""

    fast_routes: dict[str, tuple[frozenset[str], dict[str, str], Any]] = {}
    identity: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] == "http":
            fast = self.fast_routes.get(scope["path"])
            if fast is not None and scope["method"] in fast[0]:
                scope["path_params"] = fast[1]
                await fast[2](scope, receive, send)
                return
            send = with_headers(send, self.identity)
        await super().__call__(scope, receive, send)


def with_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """`send` that adds `headers` to a response start lacking them (docs, 404/405, unexpected 500s)."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", ())}
            missing = [(n, v) for n, v in headers if n not in present]
            if missing:
                message = {**message, "headers": [*message.get("headers", ()), *missing]}
        await send(message)

    return sending


def exact_routes(
    routes: list[Route], settings: Settings
) -> dict[str, tuple[frozenset[str], dict[str, str], Any]]:
    """Path templates with this server's own model name and version filled in."""
    params = {"name": settings.model_name, "version": settings.model_version}
    table: dict[str, tuple[frozenset[str], dict[str, str], Any]] = {}
    for route in routes:
        names = [n for n in ("name", "version") if "{" + n + "}" in route.path]
        path = route.path
        for n in names:
            path = path.replace("{" + n + "}", params[n])
        table[path] = (frozenset(route.methods or ()), {n: params[n] for n in names}, route.endpoint)
    return table


def install_drain_handler(state: ServerState) -> None:
    """SIGTERM: readiness turns false first, then (after drain_seconds) uvicorn's own graceful stop."""
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
        if callable(previous):
            if delay > 0:
                loop.call_soon_threadsafe(loop.call_later, delay, previous, signum, frame)
            else:
                previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def create_app(settings: Settings, loaded: LoadedModel) -> FastAPI:
    """Build the app around an already loaded and warmed model."""
    metrics = Metrics(settings.metric_labels)
    classifier = loaded.classes is not None

    def observe(rows: int, seconds: float, outputs: dict[str, np.ndarray]) -> None:
        metrics.observe_batch(rows, seconds, outputs, classifier)

    in_thread = settings.predict_mode == "thread" or (
        settings.predict_mode == "auto" and loaded.warmup_seconds > 0.001
    )
    state = ServerState(
        settings=settings,
        loaded=loaded,
        metrics=metrics,
        logger=RequestLogger(settings.log_sample_rate, settings.redact_fields, settings.metric_labels),
        keys=ApiKeys(settings.api_keys_file),
        limiter=RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst),
        batcher=Batcher(
            loaded.model.predict,
            settings.max_batch_size,
            settings.max_batch_latency_ms / 1000,
            settings.max_queue,
            in_thread,
            observe,
        ),
        deadlines=Deadlines(settings.timeout_seconds),
    )
    state.extra["in_thread"] = in_thread
    background: list[asyncio.Task[None]] = []
    metrics.load_seconds.set(loaded.load_seconds + loaded.warmup_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_drain_handler(state)
        # Start-up objects (frameworks, the model) never die: keep them out of every later GC pass,
        # or a gen-2 collection walks them all mid-request (tens of ms of p99).
        gc.collect()
        gc.freeze()
        loop = asyncio.get_running_loop()
        background.append(loop.create_task(state.deadlines.watch()))
        background.append(loop.create_task(flush_periodically()))
        state.ready = True
        metrics.ready.set(1)
        log_event(
            "ready",
            pid=os.getpid(),
            model=settings.model_name,
            version=settings.model_version,
            format=loaded.format,
            predict_in_thread=in_thread,
            fast_path=loaded.extra.get("fast_path", False),
            auth=state.keys.enabled,
        )
        yield
        state.ready = False
        for task in background:
            task.cancel()
        state.batcher.close()
        LINES.flush()  # every buffered request line is out before the process exits

    app = ModelServeApp(
        title="modelserve",
        version=__version__,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    routes = build_routes(state)
    app.router.routes.extend(routes)
    app.fast_routes = exact_routes(routes, settings)
    app.identity = state.identity
    app.state.modelserve = state

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path[:200]
        messages = {404: f"not found: {path}", 405: f"method {request.method} not allowed on {path}"}
        message = messages.get(exc.status_code, str(exc.detail))
        return Response(error_body(message), exc.status_code, media_type="application/json")

    async def internal_error(_: Request, exc: Exception) -> Response:
        traceback.print_exception(exc, file=sys.stderr)
        return Response(error_body("internal error"), 500, media_type="application/json")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
    app.openapi = lambda: build_openapi(app, state)  # type: ignore[method-assign]
    return app
