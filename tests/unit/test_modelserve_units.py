"""Pure pieces, no server: key file parsing, token bucket, batching split, format inference, request ids."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest

from modelserve.auth import TokenBucket, extract_key, parse_key_file
from modelserve.batching import split_outputs, stack_inputs
from modelserve.errors import ModelLoadError
from modelserve.loaders import check_pickle_allowed, infer_format


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("a\nb\n", ["a", "b"]),
        ("# comment\n\n  spaced  \n\t\n", ["spaced"]),
        ("", []),
        ("k1\r\nk2\r\n", ["k1", "k2"]),
    ],
)
def test_key_file_format(text, keys):
    assert parse_key_file(text) == keys


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer abc", None, "abc"),
        ("bearer  abc ", None, "abc"),
        ("Basic abc", None, None),
        (None, "xyz", "xyz"),
        ("Bearer abc", "xyz", "xyz"),
        (None, None, None),
    ],
)
def test_key_extraction_from_headers(authorization, x_api_key, expected):
    assert extract_key(authorization, x_api_key) == expected


def test_token_bucket_allows_a_burst_then_refills_at_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3.0, tokens=3.0, updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0


def test_batch_outputs_are_split_back_per_request():
    outputs = {"predict": np.arange(6), "predict_proba": np.arange(12).reshape(6, 2)}
    pieces = split_outputs(outputs, [1, 3, 2])
    assert [p["predict"].tolist() for p in pieces] == [[0], [1, 2, 3], [4, 5]]
    assert pieces[2]["predict_proba"].tolist() == [[8, 9], [10, 11]]
    assert stack_inputs([np.ones((1, 2)), np.zeros((2, 2))]).shape == (3, 2)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("model.joblib", b"anything", "sklearn"),
        ("model.pkl", b"anything", "sklearn"),
        ("model.skops", b"anything", "skops"),
        ("model.onnx", b"anything", "onnx"),
        ("model.pt", b"anything", "torchscript"),
        ("model.ubj", b"anything", "xgboost"),
        ("model.bin", b"\x80\x04\x95pickled", "sklearn"),
        ("model.txt", b"tree\nversion=v4\nnum_class=1\n", "lightgbm"),
        ("model.json", b'{"learner": {"attributes": {}}, "version": [2, 0, 0]}', "xgboost"),
    ],
)
def test_format_is_inferred_from_the_name_then_the_contents(tmp_path, name, content, fmt):
    assert infer_format(_write(tmp_path / name, content)) == fmt


def test_zip_archives_are_told_apart(tmp_path):
    skops = tmp_path / "a.model"
    with zipfile.ZipFile(skops, "w") as zf:
        zf.writestr("schema.json", "{}")
    torch = tmp_path / "b.model"
    with zipfile.ZipFile(torch, "w") as zf:
        zf.writestr("archive/constants.pkl", "")
    assert (infer_format(skops), infer_format(torch)) == ("skops", "torchscript")


def test_directory_formats(tmp_path):
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    assert infer_format(saved) == "tensorflow"
    single = tmp_path / "single"
    single.mkdir()
    (single / "model.onnx").write_bytes(b"")
    (single / "model.onnx.schema.json").write_text("{}")
    assert infer_format(single) == "onnx"
    (single / "other.onnx").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="holds 2 candidate files"):
        infer_format(single)


@pytest.mark.parametrize(
    ("fmt", "digest", "waived", "error"),
    [
        ("sklearn", "", False, "set MODELSERVE_MODEL_SHA256 to its SHA-256 digest"),
        ("sklearn", "", True, None),
        ("sklearn", "0" * 64, True, "but MODELSERVE_MODEL_SHA256 is 0000"),
        ("onnx", "", False, "refusing to load pickle file"),  # the .pkl extension alone triggers the guard
    ],
)
def test_pickle_guard_decisions(tmp_path, fmt, digest, waived, error):
    path = _write(tmp_path / "m.pkl", b"\x80\x04.")
    if error is None:
        check_pickle_allowed(path, fmt, digest, waived)
    else:
        with pytest.raises(ModelLoadError, match=error):
            check_pickle_allowed(path, fmt, digest, waived)


@pytest.mark.parametrize("amounts", [[0.0002, 0.003, 0.003, 7.0, 99.0], [0.0005, 0.001, 10.0], [1e-9]])
def test_fast_metric_observers_count_what_the_public_api_counts(amounts):
    """fast_add/fast_observe skip prometheus_client's per-call checks: same buckets, sums and counts."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from modelserve.bypass.observers import fast_add, fast_observe
    from modelserve.metrics import LATENCY_BUCKETS

    def exposition(use_fast: bool) -> bytes:
        registry = CollectorRegistry()
        counter = Counter("c", "c", ["l"], registry=registry).labels("x")
        histogram = Histogram("h", "h", ["l"], buckets=LATENCY_BUCKETS, registry=registry).labels("x")
        add = fast_add(counter) if use_fast else counter.inc
        observe = fast_observe(histogram) if use_fast else histogram.observe
        if use_fast:  # the fast paths are in use with the pinned prometheus_client, not the fallbacks
            assert observe.__qualname__.startswith("fast_observe") and add.__self__ is not counter
        for amount in amounts:
            add(1)
            observe(amount)
        return generate_latest(registry)

    assert exposition(use_fast=True) == exposition(use_fast=False)


def test_requests_that_already_timed_out_hold_no_place_in_the_queue():
    import asyncio

    from modelserve.batching import Batcher
    from modelserve.errors import Overloaded

    async def scenario() -> list[float]:
        batcher = Batcher(lambda x: {"predict": x[:, 0]}, 8, 0.0, 1, False, lambda *_: None)
        timed_out = batcher.submit(np.ones((1, 2)))
        timed_out.cancel()  # finished before its turn, as the deadline watchdog finishes a late request
        waiting = batcher.submit(np.full((1, 2), 3.0))  # the only live request: within MAX_QUEUE=1
        with pytest.raises(Overloaded):
            batcher.submit(np.ones((1, 2)))
        result = (await waiting)["predict"].tolist()
        batcher.close()
        return result

    assert asyncio.run(scenario()) == [3.0]


def test_every_format_the_settings_accept_has_one_runtime():
    from typing import get_args

    from modelserve.runtimes import FORMATS, RUNTIMES
    from modelserve.settings import ModelFormat

    assert set(get_args(ModelFormat)) - {""} == set(RUNTIMES) == set(FORMATS)


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        ({"features": [{"name": "a", "dtype": "complex"}]}, "inputs[0].dtype: must be one of"),
        ({"inputs": ["a", {"name": 3}]}, "inputs[1].name: Input should be a valid string"),
        ({"features": [{"name": "a", "min": "low"}]}, "inputs[0].min: must be a number, got 'low'"),
        ({"shape": [-1, "4"]}, "shape[1]: Input should be a valid integer"),
        ({"features": ["a", "b"], "shape": [-1, 3]}, "shape [-1, 3] does not match 2 inputs"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_schema_manifest_mistakes_name_the_field(tmp_path, manifest, error):
    import json

    from modelserve.schema import load_manifest

    path = tmp_path / "model.onnx.schema.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=re.escape(error)):
        load_manifest(path, None)


def test_schema_manifest_as_the_operator_writes_it(tmp_path):
    """The shape `ModelSchema.to_manifest()` emits: names alone or objects, min/max, categories, outputs."""
    import json

    from modelserve.schema import InputSchema, load_manifest

    doc = {
        "features": ["a", {"name": "b", "dtype": "int", "min": 0, "max": 10.5, "required": False},
                     {"name": "c", "dtype": "string", "categories": ["x", "y"]}],
        "outputs": ["predict"],
    }  # fmt: skip
    path = tmp_path / "m.schema.json"
    path.write_text(json.dumps(doc))
    schema = load_manifest(path, InputSchema(input_name="x", dtype="float32"))
    assert schema.feature_names == ("a", "b", "c")
    assert (schema.shape, schema.dtype, schema.input_name, schema.source) == (
        (-1, 3),
        "float32",
        "x",
        "manifest",
    )
    b = schema.features[1]
    assert (b.dtype, b.required, b.minimum, b.maximum) == ("int", False, 0, 10.5)
    assert type(b.minimum) is int  # messages print the bound as written ("below the minimum 0")
    assert schema.features[2].categories == ("x", "y") and schema.output_names == ("predict",)


def test_metrics_count_the_same_with_the_bypass_off():
    from modelserve.metrics import Metrics

    def exposition(bypass: bool) -> bytes:
        metrics = Metrics({"model": "m", "version": "1", "revision": "r", "color": "blue"}, bypass=bypass)
        for status, seconds in ((200, 0.0004), (200, 0.02), (400, 3.0)):
            metrics.observe_request("/predict", status, seconds)
        metrics.inflight_add(2)
        metrics.observe_batch(3, 0.001, {"predict": np.array([0, 1, 1])}, classifier=True)
        return metrics.exposition()

    assert exposition(bypass=True) == exposition(bypass=False)


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_coalescing_transport_sends_head_and_body_in_one_write():
    from modelserve.bypass.transport import CoalescingTransport

    raw = RecordingTransport()
    transport = CoalescingTransport(raw)  # type: ignore[arg-type]
    transport.write(HEAD)
    assert raw.writes == []  # held for the body write that follows
    transport.write(b"{}")
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # interim responses go out at once
    transport.write(b"HTTP/1.1 body that merely starts like a head")  # not a whole head: not held
    assert raw.writes == [
        HEAD + b"{}",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 body that merely starts like a head",
    ]
    assert transport.is_closing() is False  # anything else is the real transport's


def test_coalescing_transport_never_loses_a_held_head():
    from modelserve.bypass.transport import CoalescingTransport

    raw = RecordingTransport()
    transport = CoalescingTransport(raw)  # type: ignore[arg-type]
    transport.write(HEAD)  # a response without a body write (HEAD request, 204): sent on close
    transport.close()
    assert raw.writes == [HEAD] and raw.closed


def test_exact_path_dispatcher_serves_known_paths_and_hands_the_rest_on():
    import asyncio

    from starlette.routing import Route

    from modelserve.bypass import ExactPathDispatcher, exact_routes

    calls: list[tuple[str, object]] = []

    async def endpoint(scope, receive, send):
        calls.append(("endpoint", dict(scope["path_params"])))

    async def fallback(scope, receive, send):
        calls.append(("fallback", scope.get("path", scope["type"])))

    routes = [
        Route("/v2/models/{name}/versions/{version}/infer", endpoint, methods=["POST"]),
        Route("/health", endpoint, methods=["GET"]),
    ]
    table = exact_routes(routes, {"name": "iris", "version": "3"})
    assert set(table) == {"/v2/models/iris/versions/3/infer", "/health"}
    dispatcher = ExactPathDispatcher(table, fallback)

    async def run() -> None:
        for scope in (
            {"type": "http", "method": "POST", "path": "/v2/models/iris/versions/3/infer"},
            {
                "type": "http",
                "method": "GET",
                "path": "/v2/models/iris/versions/3/infer",
            },  # 405 is Starlette's
            {"type": "http", "method": "POST", "path": "/v2/models/wine/versions/3/infer"},
            {"type": "http", "method": "HEAD", "path": "/health"},
            {"type": "lifespan"},
        ):
            await dispatcher(scope, None, None)  # type: ignore[arg-type]

    asyncio.run(run())
    assert calls == [
        ("endpoint", {"name": "iris", "version": "3"}),
        ("fallback", "/v2/models/iris/versions/3/infer"),
        ("fallback", "/v2/models/wine/versions/3/infer"),
        ("endpoint", {}),
        ("fallback", "lifespan"),
    ]
