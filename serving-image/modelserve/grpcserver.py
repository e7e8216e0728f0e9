"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) and `grpc.health.v1`.

It runs in the same process and event loop as the HTTP server and shares its state: the model, the batcher,
API keys, rate limits, metrics and request log. A request is turned into the document the REST v2 path
parses (protocols.parse_v2), so both protocols validate alike and answer with the same messages.
Imported only when MODELSERVE_GRPC_PORT is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import __version__
from .app import model_metadata
from .endpoints import (
    Arriving,
    Exchange,
    ServerState,
    admit,
    check_model_name,
    check_rows,
    predict_rows,
    request_id_from,
)
from .errors import BadRequest, ModelServeError
from .oip import grpc_predict_v2_pb2 as pb
from .oip import grpc_predict_v2_pb2_grpc as pb_grpc
from .protocols import (
    check_requested_outputs,
    decode_raw,
    decode_raw_bytes,
    encode_raw,
    parse_v2,
    v2_datatype,
)
from .reqlog import log_event
from .settings import Settings

SERVICE = "inference.GRPCInferenceService"

# The gRPC status of each HTTP status modelserve answers with.
GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# Where each typed-contents datatype travels in InferTensorContents (FP16 only travels raw).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

# Metrics and log lines name a gRPC method by its REST route, so dashboards and alerts see both protocols.
INFER_ROUTE = "/v2/models/{name}/infer"
METADATA_ROUTE = "/v2/models/{name}"


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """Message size from MODELSERVE_MAX_BODY_BYTES; a bounded connection age (then GOAWAY) so clients
    reconnect through the Service; several workers bind the port together (SO_REUSEPORT), one alone
    does not (a second server on a busy port must fail, not share it)."""
    return [
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_seconds * 1000)),
        ("grpc.max_connection_age_grace_ms", int(settings.grpc_max_connection_age_grace_seconds * 1000)),
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
    ]


def infer_document(request: pb.ModelInferRequest) -> dict[str, Any]:
    """The REST v2 request document this call stands for: tensors as arrays, raw or typed contents."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} inputs (one per input)"
        )
    inputs = []
    for i, tensor in enumerate(request.inputs):
        where = f"inputs[{i}]"
        if raw:
            if tensor.HasField("contents"):
                raise BadRequest(f"{where}.contents: must be empty when raw_input_contents is used")
            data: Any = (
                decode_raw_bytes(raw[i], where)
                if tensor.datatype == "BYTES"
                else decode_raw(raw[i], tensor.datatype, where)
            )
        else:
            data = typed_contents(tensor, where)
        inputs.append(
            {"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype, "data": data}
        )
    doc: dict[str, Any] = {"inputs": inputs}
    if request.outputs:
        doc["outputs"] = [{"name": o.name} for o in request.outputs]
    if request.id:
        doc["id"] = request.id
    return doc


def typed_contents(tensor: pb.ModelInferRequest.InferInputTensor, where: str) -> Any:
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        if tensor.datatype == "FP16":
            raise BadRequest(f"{where}.datatype: FP16 tensors must be sent in raw_input_contents")
        return []  # parse_v2 names the bad datatype
    values = getattr(tensor.contents, field)
    return list(values) if field == "bytes_contents" else np.array(values)


def infer_response(
    outputs: dict[str, np.ndarray], names: list[str], settings: Settings, request_id: str
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=settings.model_name, model_version=settings.model_version, id=request_id
    )
    for name in names:
        array = outputs[name]
        datatype = v2_datatype(array)
        response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        response.raw_output_contents.append(encode_raw(array, datatype))
    return response


def peer_address(peer: str) -> str:
    """`ipv4:10.0.0.7:51234` / `ipv6:[::1]:51234` -> the address the auth-failure limit is charged to."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return rest or "anonymous"


def metadata_of(context: grpc.aio.ServicerContext) -> dict[bytes, bytes]:
    return {
        key.encode(): value if isinstance(value, bytes) else value.encode("latin-1")
        for key, value in context.invocation_metadata() or ()
    }


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.settings = state.settings
        self.schema = state.schema
        self.available_outputs = state.loaded.output_names
        self.identity = [(k.decode(), v.decode()) for k, v in state.identity]

    def ready(self) -> bool:
        return self.state.ready and not self.state.draining

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        stalled = self.state.batcher.stalled_for(time.perf_counter())
        return pb.ServerLiveResponse(live=stalled <= self.settings.stall_limit_seconds)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        await self.guard(
            context, lambda: check_model_name(self.settings, request.name, request.version or None)
        )
        return pb.ModelReadyResponse(ready=self.ready())

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="modelserve", version=__version__, extensions=[])

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        started = time.perf_counter()

        def check() -> None:  # protected like GET /v2/models/{name}: the inputs name the features
            admit(self.state, peer_address(context.peer()), metadata_of(context))
            check_model_name(self.settings, request.name, request.version or None)

        await self.guard(context, check, METADATA_ROUTE, started)
        meta = model_metadata(self.state)
        self.state.metrics.observe_request(METADATA_ROUTE, 200, time.perf_counter() - started, "grpc")
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    async def guard(self, context: Any, check: Any, route: str = "", started: float = 0.0) -> None:
        """Run `check`; a refusal aborts the call with its gRPC code (counted when `route` is given)."""
        try:
            check()
        except ModelServeError as err:
            if route:
                self.state.metrics.observe_request(
                    route, err.status_code, time.perf_counter() - started, "grpc"
                )
            await abort(context, err.status_code, err.message, getattr(err, "retry_after_seconds", None))

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        started = time.perf_counter()
        state = self.state
        metadata = metadata_of(context)
        exchange = Exchange(request_id_from(metadata), state.identity)
        response = None
        retry: int | None = None
        state.metrics.inflight_add(1)
        try:
            response = await self.answer(request, context, metadata, exchange)
        except ModelServeError as err:
            exchange.failed(err)
            retry = getattr(err, "retry_after_seconds", None)
        except Exception as err:
            exchange.crashed(err)
        finally:
            state.metrics.inflight_add(-1)
        await context.send_initial_metadata([("x-request-id", exchange.request_id), *self.identity])
        self.record(exchange, time.perf_counter() - started)
        if response is None:
            await abort(context, exchange.status, exchange.error or "internal error", retry)
        return response

    async def answer(
        self, request: pb.ModelInferRequest, context: Any, metadata: dict[bytes, bytes], exchange: Exchange
    ) -> pb.ModelInferResponse:
        state = self.state
        with Arriving(state.batcher):
            exchange.key_id = admit(state, peer_address(context.peer()), metadata)
            check_model_name(self.settings, request.model_name, request.model_version or None)
            rows, requested, v2_id = parse_v2(infer_document(request), self.schema)
            check_requested_outputs(requested, self.available_outputs)
        check_rows(rows, self.settings.max_rows)
        exchange.rows = rows
        exchange.outputs = await predict_rows(state, rows)
        return infer_response(
            exchange.outputs, requested or list(exchange.outputs), self.settings, v2_id or ""
        )

    def record(self, exchange: Exchange, latency: float) -> None:
        state = self.state
        state.metrics.observe_request(INFER_ROUTE, exchange.status, latency, "grpc")
        if state.logger.sampled(exchange.status):
            state.logger.log(
                exchange.request_id,
                INFER_ROUTE,
                exchange.status,
                latency,
                exchange.rows,
                self.schema.feature_names,
                exchange.outputs,
                exchange.error,
                exchange.key_id,
                protocol="grpc",
            )


async def abort(context: Any, status: int, message: str, retry_after: int | None = None) -> None:
    if retry_after is not None:  # a refusal for rate says when to come back, as REST's Retry-After
        context.set_trailing_metadata([("retry-after", str(retry_after))])
    await context.abort(GRPC_CODES.get(status, grpc.StatusCode.INTERNAL), message)


class GrpcServer:
    """The gRPC server of one worker process: started with the app, stopped gracefully on SIGTERM."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        settings = state.settings
        self.server = grpc.aio.server(options=server_options(settings))
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(state), self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.address = f"{settings.host}:{settings.grpc_port}"
        self._stopping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            self.server.add_insecure_port(self.address)
        except RuntimeError as err:
            raise RuntimeError(f"cannot serve gRPC on {self.address} (MODELSERVE_GRPC_PORT): {err}") from None
        await self.server.start()
        await self.set_serving(True)
        log_event("grpc_ready", pid=os.getpid(), address=self.address)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE):
            await self.health.set(service, status)

    def begin_stop(self) -> None:
        """From the drain handler: health turns NOT_SERVING, GOAWAY goes out, calls in flight finish
        within MODELSERVE_GRACEFUL_TIMEOUT_SECONDS."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._stop())

    async def _stop(self) -> None:
        await self.set_serving(False)
        await self.server.stop(self.state.settings.graceful_timeout_seconds)

    async def wait_stopped(self) -> None:
        self.begin_stop()
        assert self._stopping is not None
        with contextlib.suppress(asyncio.CancelledError):
            await self._stopping
