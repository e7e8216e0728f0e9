"""OpenAPI document for the raw ASGI routes, written out by hand (no framework sees their bodies)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from . import __version__

if TYPE_CHECKING:
    from .endpoints import ServerState


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(examples=["FP64"])
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestOutput(BaseModel):
    name: str


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[Tensor]
    outputs: list[RequestOutput] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[Tensor]


class V1Request(BaseModel):
    instances: list[Any] = Field(examples=[[[5.1, 3.5, 1.4, 0.2]]])


class V1Response(BaseModel):
    predictions: list[Any]


class RecordsResponse(BaseModel):
    predictions: list[Any]
    probabilities: list[Any] | None = None


class ErrorResponse(BaseModel):
    error: str = Field(examples=["instances: expected 4 features, got 3"])


ERRORS = {
    "400": "Malformed JSON or an input that breaks the schema (the message names the field and rule)",
    "401": "Missing or wrong API key",
    "404": "Unknown model or version",
    "413": "Body larger than MODELSERVE_MAX_BODY_BYTES",
    "429": "Over the rate limit (see Retry-After)",
    "500": "The model raised",
    "503": "Queue full (MODELSERVE_MAX_QUEUE)",
    "504": "Prediction exceeded MODELSERVE_TIMEOUT_SECONDS",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _post(summary: str, request: str | dict[str, Any], response: str) -> dict[str, Any]:
    body = _ref(request) if isinstance(request, str) else request
    responses: dict[str, Any] = {
        "200": {"description": "Predictions", "content": {"application/json": {"schema": _ref(response)}}}
    }
    for code, text in ERRORS.items():
        responses[code] = {
            "description": text,
            "content": {"application/json": {"schema": _ref("ErrorResponse")}},
        }
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": responses,
            "security": [{"bearer": []}, {"apiKey": []}],
        }
    }


def _get(summary: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}


NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def build_openapi(state: ServerState, with_features: bool = True) -> dict[str, Any]:
    """The document; `with_features=False` leaves out the feature names (metadata a key protects)."""
    doc = get_openapi(title="modelserve", version=__version__, routes=[])
    names = [f.name for f in state.loaded.schema.features] if with_features else []
    record = {"type": "object", "properties": {n: {} for n in names}} if names else {"type": "object"}
    paths: dict[str, Any] = {
        "/v2/models/{name}/infer": _post(
            "Open Inference Protocol v2 inference", "InferenceRequest", "InferenceResponse"
        ),
        "/v1/models/{name}:predict": _post("KServe v1 predict", "V1Request", "V1Response"),
        "/predict": _post(
            "Plain JSON records in, predictions (and probabilities) out",
            {"type": "array", "items": record},
            "RecordsResponse",
        ),
        "/v2/health/live": _get("Liveness"),
        "/v2/health/ready": _get("Readiness: 200 once the model is loaded and warmed, 503 while draining"),
        "/health": _get("Same as /v2/health/ready"),
        "/metrics": _get("Prometheus metrics"),
        "/v2": _get("Server metadata"),
        "/v2/models/{name}": _get("Model metadata, including the input schema"),
        "/v2/models/{name}/ready": _get("Model readiness"),
    }
    for path, item in paths.items():
        if "{name}" in path:
            for op in item.values():
                op["parameters"] = [NAME]
    doc["paths"] = paths
    schemas: dict[str, Any] = {}
    for model in (InferenceRequest, InferenceResponse, V1Request, V1Response, RecordsResponse, ErrorResponse):
        js = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(js.pop("$defs", {}))
        schemas[model.__name__] = js
    doc["components"] = {
        "schemas": schemas,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
    }
    return doc
