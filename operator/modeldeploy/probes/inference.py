"""Sending labelled rows to a modelserve instance: metadata for the feature order, then batched Open
Inference Protocol v2 requests (which return ``predict`` and, for classifiers, ``predict_proba``).

Public: ``ModelInfo``, ``InferenceError``, ``model_info(http, base_url, model_name, headers)``,
``feature_order(info, columns)``, ``predict_rows(http, base_url, model_name, rows, headers, batch_rows,
concurrency)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from modeldeploy.probes.bounded import INFER_MAX_BYTES, METADATA_MAX_BYTES, BoundedHttp, BoundedResponse
from modeldeploy.probes.scoring import Predictions

BATCH_ROWS = 256
CONCURRENCY = 4


class InferenceError(Exception):
    """The model server did not answer as the protocol says; the message is for status and Events."""


@dataclass(frozen=True)
class ModelInfo:
    feature_names: list[str]
    classes: list[Any] | None


async def model_info(http: BoundedHttp, base_url: str, model_name: str, headers: dict[str, str]) -> ModelInfo:
    url = f"{base_url}/v2/models/{model_name}"
    try:
        response = await http.get(url, headers=headers, max_bytes=METADATA_MAX_BYTES)
    except httpx.HTTPError as err:
        raise InferenceError(f"GET {url}: {type(err).__name__}: {err}") from None
    if response.status_code != 200:
        raise InferenceError(f"GET {url} answered HTTP {response.status_code}: {_error_text(response)}")
    try:
        doc = response.json()
    except ValueError:
        raise InferenceError(f"GET {url} answered HTTP 200 with a body that is not JSON") from None
    params = (doc.get("parameters") if isinstance(doc, dict) else None) or {}
    features = [f["name"] for f in (params.get("schema") or {}).get("features", []) if "name" in f]
    return ModelInfo(feature_names=features, classes=params.get("classes"))


def feature_order(info: ModelInfo, columns: Sequence[str]) -> list[int]:
    """Indexes of `columns` in the model's feature order; by position when the names do not match."""
    names = info.feature_names
    if names and set(names) <= set(columns):
        return [list(columns).index(name) for name in names]
    if not names or len(names) == len(columns):
        return list(range(len(columns)))
    raise InferenceError(  # counts only: the column names are the data set's content
        f"the data set's {len(columns)} feature columns do not match the model's {len(names)} features"
    )


def _infer_body(rows: list[list[Any]]) -> dict[str, Any]:
    width = len(rows[0]) if rows else 0
    numeric = all(isinstance(v, float) for row in rows for v in row)
    data = [v for row in rows for v in row]
    datatype = "FP64" if numeric else "BYTES"
    return {"inputs": [{"name": "input", "shape": [len(rows), width], "datatype": datatype, "data": data}]}


def _parse_outputs(doc: Any, count: int) -> tuple[list[Any], list[list[float]] | None]:
    outputs = {o.get("name"): o for o in doc.get("outputs", []) if isinstance(o, dict)}
    if not outputs:
        raise InferenceError("the answer has no outputs")
    first = outputs.get("predict") or next(iter(outputs.values()))
    predicted = list(first.get("data", []))
    if len(predicted) != count:
        raise InferenceError(f"expected {count} predictions, got {len(predicted)}")
    proba = outputs.get("predict_proba")
    if proba is None:
        return predicted, None
    width = proba["shape"][-1] if proba.get("shape") else 1
    flat = proba.get("data", [])
    return predicted, [flat[i * width : (i + 1) * width] for i in range(count)]


async def _infer(
    http: BoundedHttp, url: str, rows: list[list[Any]], headers: dict[str, str]
) -> tuple[list[Any], list[list[float]] | None]:
    try:
        response = await http.post(url, json=_infer_body(rows), headers=headers, max_bytes=INFER_MAX_BYTES)
    except httpx.HTTPError as err:
        raise InferenceError(f"POST {url}: {type(err).__name__}: {err}") from None
    if response.status_code != 200:
        raise InferenceError(f"POST {url} answered HTTP {response.status_code}: {_error_text(response)}")
    try:
        doc = response.json()
    except ValueError:
        raise InferenceError(f"POST {url} answered HTTP 200 with a body that is not JSON") from None
    if not isinstance(doc, dict):
        raise InferenceError(f"POST {url} answered HTTP 200 with JSON that is not an object")
    return _parse_outputs(doc, len(rows))


async def predict_rows(
    http: BoundedHttp,
    base_url: str,
    model_name: str,
    rows: list[list[Any]],
    headers: dict[str, str],
    classes: list[Any] | None = None,
    batch_rows: int = BATCH_ROWS,
    concurrency: int = CONCURRENCY,
) -> Predictions:
    """All `rows` (already in the model's feature order), `batch_rows` per request, in row order."""
    url = f"{base_url}/v2/models/{model_name}/infer"
    gate = asyncio.Semaphore(concurrency)

    async def one(batch: list[list[Any]]) -> tuple[list[Any], list[list[float]] | None]:
        async with gate:
            return await _infer(http, url, batch, headers)

    batches = [rows[i : i + batch_rows] for i in range(0, len(rows), batch_rows)]
    answers = await asyncio.gather(*(one(b) for b in batches))
    predicted: list[Any] = []
    probabilities: list[list[float]] | None = []
    for batch_predicted, batch_proba in answers:
        predicted.extend(batch_predicted)
        if probabilities is not None and batch_proba is not None:
            probabilities.extend(batch_proba)
        else:
            probabilities = None
    return Predictions(predicted=predicted, probabilities=probabilities, classes=classes)


def _error_text(response: BoundedResponse) -> str:
    """A short, printable excerpt of the model server's own error (its pod's words, never a third party's)."""
    try:
        doc = response.json()
    except ValueError:
        text = response.text[:200]
    else:
        text = str(doc.get("error", doc))[:300] if isinstance(doc, dict) else str(doc)[:300]
    return "".join(c if c.isprintable() else " " for c in text)
