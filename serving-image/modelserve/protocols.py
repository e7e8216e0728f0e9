"""Request parsing and response encoding for OIP v2, KServe v1 and plain JSON records (pure functions)."""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np
import orjson

from .errors import BadRequest
from .schema import InputSchema, check_array, excerpt, records_to_rows, rows_to_array

V2_TO_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}
NUMPY_KIND_TO_V2 = {"f4": "FP32", "f8": "FP64", "f2": "FP16", "i8": "INT64", "i4": "INT32", "b1": "BOOL"}


FALLBACK_JSON_BYTES = 65_536  # the stdlib parser is ~17x slower than orjson and runs on the event loop


def parse_json(body: bytes) -> Any:
    """orjson first; for small bodies the stdlib parser as a fallback accepts NaN/Infinity so they get a
    precise 400. Nothing a client sends (deep nesting, huge numbers) becomes anything but a 400."""
    if not body:
        raise BadRequest("malformed JSON: the request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        if len(body) > FALLBACK_JSON_BYTES:
            raise BadRequest(f"malformed JSON: {err}") from None
    try:
        return json.loads(body)
    except RecursionError:
        raise BadRequest("malformed JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"malformed JSON: {str(err)[:200]}") from None


def v2_datatype(array: np.ndarray) -> str:
    return _v2_datatype_of(array.dtype)


@functools.cache
def _v2_datatype_of(dtype: np.dtype) -> str:
    if dtype.kind in "OUS":
        return "BYTES"
    return NUMPY_KIND_TO_V2.get(f"{dtype.kind}{dtype.itemsize}", "FP64")


def json_ready(array: np.ndarray) -> Any:
    """orjson serialises numeric numpy arrays natively; object arrays go through tolist()."""
    if array.dtype.kind in "OUS" or not array.flags.c_contiguous:
        return array.tolist()
    return array


# ---------------------------------------------------------------- Open Inference Protocol v2


class BinaryReader:
    """Tensor bytes after the JSON header (the binary tensor data extension that tritonclient uses)."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def take(self, size: int, where: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise BadRequest(f"{where}.parameters.binary_data_size: {size} bytes are not in the request body")
        chunk = bytes(self.data[self.offset : self.offset + size])
        self.offset += size
        return chunk


def _binary_tensor(item: dict[str, Any], where: str, reader: BinaryReader | None) -> np.ndarray:
    size = (item.get("parameters") or {}).get("binary_data_size")
    if reader is None or not isinstance(size, int):
        raise BadRequest(f"{where}.data: missing required field")
    datatype = item["datatype"]
    _raw_numpy_type(datatype, where)  # refuse a bad datatype before taking its bytes
    return decode_raw(reader.take(size, where), datatype, where)


def _raw_numpy_type(datatype: Any, where: str) -> np.dtype:
    np_type = V2_TO_NUMPY.get(datatype) if isinstance(datatype, str) else None
    if np_type is None or np_type is object:
        raise BadRequest(
            f"{where}.datatype: binary data is supported for numeric datatypes, got {datatype!r}"
        )
    return np.dtype(np_type).newbyteorder("<")


def decode_raw(raw: bytes, datatype: Any, where: str) -> np.ndarray:
    """Flattened little-endian values of a numeric datatype (binary extension, gRPC raw contents)."""
    dtype = _raw_numpy_type(datatype, where)
    if len(raw) % dtype.itemsize:
        raise BadRequest(f"{where}: {len(raw)} bytes is not a whole number of {datatype} values")
    return np.frombuffer(raw, dtype=dtype)


def decode_raw_bytes(raw: bytes, where: str) -> list[bytes]:
    """BYTES raw contents: each element is a 4-byte little-endian length, then that many bytes."""
    items, offset, view = [], 0, memoryview(raw)
    while offset < len(view):
        if offset + 4 > len(view):
            raise BadRequest(f"{where}: BYTES contents end inside an element's 4-byte length")
        size = int.from_bytes(view[offset : offset + 4], "little")
        offset += 4
        if offset + size > len(view):
            raise BadRequest(f"{where}: a BYTES element of {size} bytes runs past the end of the contents")
        items.append(bytes(view[offset : offset + size]))
        offset += size
    return items


def encode_raw(array: np.ndarray, datatype: str) -> bytes:
    """The inverse of decode_raw / decode_raw_bytes for one output tensor."""
    if datatype == "BYTES":
        parts = []
        for value in array.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts += [len(data).to_bytes(4, "little"), data]
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=np.dtype(V2_TO_NUMPY[datatype]).newbyteorder("<")).tobytes()


def _v2_tensor(item: Any, index: int, reader: BinaryReader | None = None) -> tuple[str, np.ndarray]:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where}: expected an object with name, shape, datatype and data")
    for key in ("name", "shape", "datatype"):
        if key not in item:
            raise BadRequest(f"{where}.{key}: missing required field")
    if "data" not in item:
        item = {**item, "data": _binary_tensor(item, where, reader)}
    name, shape, datatype, data = item["name"], item["shape"], item["datatype"], item["data"]
    if not isinstance(name, str):
        raise BadRequest(f"{where}.name: expected a string")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequest(f"{where}.shape: expected a list of non-negative integers, got {shape!r}"[:200])
    np_type = V2_TO_NUMPY.get(datatype) if isinstance(datatype, str) else None
    if np_type is None:
        raise BadRequest(f"{where}.datatype: must be one of {', '.join(V2_TO_NUMPY)}, got {datatype!r}"[:200])
    if not isinstance(data, list | np.ndarray):
        raise BadRequest(f"{where}.data: expected a list, got {type(data).__name__}")
    try:
        array = np.asarray(data, dtype=np_type)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{where}.data: values must all be of datatype {datatype}") from None
    expected = math.prod(shape)  # an int product: np.prod costs ~3 us per request here
    if array.size != expected:
        raise BadRequest(f"{where}: shape {shape} needs {expected} values, data has {array.size}")
    if np_type is object:
        array = np.asarray([v.decode() if isinstance(v, bytes) else v for v in array.ravel()], dtype=object)
    return name, array.reshape(shape)


def split_binary_body(body: bytes, header_length: bytes | None) -> tuple[bytes, BinaryReader | None]:
    """`Inference-Header-Content-Length: N`: the first N bytes are JSON, the rest tensor data."""
    if header_length is None:
        return body, None
    if not header_length.isdigit() or int(header_length) > len(body):
        raise BadRequest("Inference-Header-Content-Length: must be the length of the JSON part of the body")
    n = int(header_length)
    return body[:n], BinaryReader(body[n:])


def parse_v2(
    doc: Any, schema: InputSchema, reader: BinaryReader | None = None
) -> tuple[np.ndarray, list[str] | None, str | None]:
    """-> (rows, requested output names or None, request id)."""
    if not isinstance(doc, dict):
        raise BadRequest("request: expected a JSON object with 'inputs'")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("inputs: missing required field (a non-empty list of tensors)")
    tensors = [_v2_tensor(item, i, reader) for i, item in enumerate(inputs)]
    if len(tensors) == 1:
        name, array = tensors[0]
        field = f"inputs[0] '{name}'"
        if array.dtype == object or (schema.tabular and (not schema.numeric or schema.value_checked)):
            # The same per-value rules as records: strings, booleans, categories, integers.
            rows = rows_to_array(array.tolist() if array.ndim == 2 else [array.tolist()], schema, field)
        else:
            rows = check_array(_cast(array, schema), schema, field)
    else:
        rows = _columns_to_rows(tensors, schema)
    requested = None
    outputs = doc.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise BadRequest("outputs: expected a list of objects with a string 'name'")
        requested = [o["name"] for o in outputs]
    request_id = doc.get("id")
    return rows, requested, request_id if isinstance(request_id, str) else None


def _cast(array: np.ndarray, schema: InputSchema) -> np.ndarray:
    if array.dtype.kind == "b" or array.dtype.kind in "iu":
        return array.astype(np.float64 if schema.dtype not in ("float32",) else np.float32)
    return array


def _columns_to_rows(tensors: list[tuple[str, np.ndarray]], schema: InputSchema) -> np.ndarray:
    """One 1-D tensor per named feature (how MLServer's pandas codec sends a table)."""
    if not schema.tabular:
        raise BadRequest(f"inputs: this model takes one tensor '{schema.input_name}', got {len(tensors)}")
    by_name = dict(tensors)
    for name in by_name:
        if name not in schema.feature_names:
            raise BadRequest(
                f"inputs: unknown feature {excerpt(name)}; expected {list(schema.feature_names)}"
            )
    for feat in schema.features:
        if feat.name not in by_name:
            raise BadRequest(f"inputs: missing required feature '{feat.name}'")
    columns = [by_name[f.name].reshape(-1) for f in schema.features]
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise BadRequest(f"inputs: feature tensors have different lengths {sorted(lengths)}")
    if schema.numeric and not schema.value_checked:
        try:
            stacked = np.column_stack([c.astype(np.float64) for c in columns])
        except (ValueError, TypeError):
            raise BadRequest("inputs: every feature tensor must be numeric for this model") from None
        return check_array(stacked, schema, "inputs")
    rows = [list(r) for r in zip(*(c.tolist() for c in columns), strict=True)]
    return rows_to_array(rows, schema, "inputs")


def encode_v2(
    outputs: dict[str, np.ndarray],
    model_name: str,
    model_version: str,
    request_id: str | None,
    requested: list[str] | None,
) -> bytes:
    names = requested or list(outputs)
    tensors = []
    for name in names:
        array = outputs[name]
        tensors.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": v2_datatype(array),
                "data": json_ready(array.ravel()),
            }
        )
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request_id is not None:
        doc["id"] = request_id
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def check_requested_outputs(requested: list[str] | None, available: tuple[str, ...]) -> None:
    for i, name in enumerate(requested or ()):
        if name not in available:
            raise BadRequest(
                f"outputs[{i}].name: unknown output {excerpt(name)}; available: {list(available)}"
            )


# ---------------------------------------------------------------- KServe v1


def parse_v1(doc: Any, schema: InputSchema) -> np.ndarray:
    if not isinstance(doc, dict) or "instances" not in doc:
        raise BadRequest('instances: missing required field (expected {"instances": [[...], ...]})')
    instances = doc["instances"]
    if isinstance(instances, list) and instances and isinstance(instances[0], dict):
        return rows_to_array(records_to_rows(instances, schema, "instances"), schema, "instances")
    return rows_to_array(instances, schema, "instances")


def encode_v1(outputs: dict[str, np.ndarray]) -> bytes:
    first = outputs["predict"] if "predict" in outputs else next(iter(outputs.values()))
    return orjson.dumps({"predictions": json_ready(first)}, option=orjson.OPT_SERIALIZE_NUMPY)


# ---------------------------------------------------------------- plain JSON records


def parse_records(doc: Any, schema: InputSchema) -> np.ndarray:
    records = (
        doc.get("records", doc.get("instances"))
        if isinstance(doc, dict) and ("records" in doc or "instances" in doc)
        else doc
    )
    return rows_to_array(records_to_rows(records, schema, "records"), schema, "records")


def encode_records(outputs: dict[str, np.ndarray], classes: list[Any] | None) -> bytes:
    first = outputs["predict"] if "predict" in outputs else next(iter(outputs.values()))
    doc: dict[str, Any] = {"predictions": json_ready(first)}
    proba = outputs.get("predict_proba")
    if proba is not None:
        if classes is not None and proba.ndim == 2 and proba.shape[1] == len(classes):
            keys = [str(c) for c in classes]
            doc["probabilities"] = [dict(zip(keys, row, strict=True)) for row in proba.tolist()]
        else:
            doc["probabilities"] = json_ready(proba)
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
