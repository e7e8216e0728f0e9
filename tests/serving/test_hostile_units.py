"""The pure parts of modelserve's defences against hostile clients, table-driven."""

from __future__ import annotations

import os

import numpy as np
import pytest

from modelserve.auth import auth_failure_limiter
from modelserve.batching import Batcher
from modelserve.errors import BadRequest, RateLimited
from modelserve.guard import (
    ANSWERING,
    BODY,
    CONNECTED,
    HEADERS,
    IDLE,
    GuardLimits,
    eviction_candidate,
    overdue,
)
from modelserve.protocols import FALLBACK_JSON_BYTES, parse_json
from modelserve.reqlog import LineBuffer, RequestLogger
from modelserve.schema import Feature, InputSchema, check_value, excerpt, rows_to_array
from modelserve.settings import Settings

LIMITS = GuardLimits(header_timeout=10, body_timeout=30, max_connections=4)


@pytest.mark.parametrize(
    ("phase", "elapsed", "expected"),
    [
        (CONNECTED, 9.9, None),
        (CONNECTED, 10.1, "MODELSERVE_HEADER_TIMEOUT_SECONDS"),
        (HEADERS, 10.1, "MODELSERVE_HEADER_TIMEOUT_SECONDS"),
        (BODY, 29.9, None),
        (BODY, 30.1, "MODELSERVE_BODY_TIMEOUT_SECONDS"),
        (ANSWERING, 3600, None),
        (IDLE, 3600, None),
    ],
    ids=[
        "fresh connection in time",
        "fresh connection sends nothing",
        "headers trickle",
        "body in time",
        "body trickles",
        "app answering is never cut",
        "idle keep-alive is uvicorn's",
    ],
)
def test_overdue_names_the_missed_deadline(phase, elapsed, expected):
    reason = overdue(phase, 100.0, 100.0 + elapsed, LIMITS)
    assert (reason is None) if expected is None else (expected in reason)


@pytest.mark.parametrize(
    ("connections", "victim"),
    [
        ([(IDLE, 5.0), (IDLE, 1.0), (HEADERS, 0.5)], 1),
        ([(HEADERS, 3.0), (BODY, 2.0), (ANSWERING, 0.1)], 1),
        ([(ANSWERING, 1.0), (ANSWERING, 2.0)], None),
        ([], None),
    ],
    ids=["longest idle first", "else the oldest still sending", "never one being answered", "nobody"],
)
def test_eviction_candidate(connections, victim):
    assert eviction_candidate(connections) == victim


def test_guard_sweeps_at_least_four_times_per_shortest_deadline():
    assert GuardLimits(header_timeout=1, body_timeout=30).tick == 0.25
    assert GuardLimits().tick == 1.0


@pytest.mark.parametrize(
    ("value", "hidden", "shown"),
    [
        ("short", False, "'short'"),
        ("x" * 100, False, "'" + "x" * 20 + "..."),
        (12345, False, "12345"),
        ("secret", True, "[REDACTED]"),
    ],
)
def test_excerpt_quotes_at_most_24_characters(value, hidden, shown):
    assert excerpt(value, hidden) == shown
    assert len(excerpt(value, hidden)) <= 24


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000 + b"]" * 3000,
        b"[" * 3000 + b"NaN" + b"]" * 3000,
        b"[" + b"9" * 400 + b", NaN]" + b" " * FALLBACK_JSON_BYTES,
    ],
    ids=["deep", "deep with NaN", "large body orjson refuses"],
)
def test_parse_json_refuses_what_it_cannot_parse_with_400(body):
    with pytest.raises(BadRequest):
        parse_json(body)


def test_parse_json_still_reads_small_bodies_orjson_refuses():
    assert parse_json(b"[NaN]")[0] != parse_json(b"[NaN]")[0]  # NaN, for a precise 400 later


NUMERIC = InputSchema(features=tuple(Feature(n) for n in "abcd"), shape=(-1, 4))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**400, "expected a number, got an integer beyond 64 bits"),
        (-(10**400), "expected a number, got an integer beyond 64 bits"),
    ],
)
def test_rows_with_huge_integers_are_refused_naming_the_feature(value, message):
    with pytest.raises(BadRequest, match=message) as err:
        rows_to_array([[value, 1, 1, 1]], NUMERIC, "instances")
    assert "feature 'a'" in str(err.value)


@pytest.mark.parametrize(
    ("feature", "value", "hidden", "message"),
    [
        (Feature("d", "int"), 10**30, False, "integers must fit in 64 bits"),
        (Feature("d", "string", categories=("x",)), "s" * 200, False, "'" + "s" * 20 + "... is not one of"),
        (Feature("d", "string", categories=("x",)), "secret", True, "[REDACTED] is not one of"),
        (Feature("d", maximum=1), 7, True, "[REDACTED] is above the maximum 1"),
        (Feature("d", "string"), 7, False, "expected a string, got int"),
    ],
)
def test_check_value_quotes_an_excerpt_or_nothing(feature, value, hidden, message):
    with pytest.raises(BadRequest) as err:
        check_value(value, feature, "where", hidden)
    assert message in str(err.value)
    if hidden:
        assert str(value) not in str(err.value)


def test_a_categorical_numeric_schema_checks_every_value_and_still_gives_numbers():
    schema = InputSchema(features=(Feature("a"), Feature("b", "int", categories=(0, 1))), shape=(-1, 2))
    assert schema.value_checked
    array = rows_to_array([[0.5, 1]], schema, "instances")
    assert array.dtype == np.float64
    with pytest.raises(BadRequest, match="not one of the allowed values"):
        rows_to_array([[0.5, 2]], schema, "instances")


def test_failed_attempts_are_limited_per_address():
    limiter = auth_failure_limiter(rps=0.001, burst=2)
    limiter.check("10.0.0.1")
    limiter.check("10.0.0.1")
    with pytest.raises(RateLimited) as err:
        limiter.check("10.0.0.1")
    assert err.value.retry_after_seconds >= 1 and "failed API-key attempts" in str(err.value)
    limiter.check("10.0.0.2")  # another address has its own budget


@pytest.mark.parametrize(
    ("env", "limit"),
    [
        ({}, 30.0),
        ({"timeout_seconds": 20}, 60.0),
        ({"stall_seconds": 2}, 2.0),
    ],
)
def test_stall_limit_is_max_of_3x_timeout_and_30s_unless_set(env, limit):
    assert Settings(**env).stall_limit_seconds == limit


@pytest.mark.parametrize(
    ("env", "required"),
    [({}, False), ({"api_keys_file": ""}, False), ({"api_keys_file": "/x/keys"}, True)],
    ids=["default path", "empty turns auth off", "named path"],
)
def test_only_a_named_key_file_is_required(env, required):
    assert Settings(**env).api_keys_required is required


def test_a_running_model_call_counts_as_stalled_only_while_it_runs():
    batcher = Batcher(lambda x: {}, 8, 0.0, 8, True, lambda *a: None)
    assert batcher.stalled_for(100.0) == 0.0
    batcher.busy_since = 90.0
    assert batcher.stalled_for(100.0) == 10.0
    batcher.close()


def test_payloads_are_not_logged_unless_asked(tmp_path):
    read, write = os.pipe()
    lines = LineBuffer(write)
    labels = {"model": "m", "version": "1", "revision": "r", "color": ""}
    rows = np.array([[1.0, 2.0]])
    outputs = {"predict": np.array([7])}
    for payloads in (False, True):
        RequestLogger(1.0, frozenset(), labels, lines, payloads=payloads).log(
            "id", "/predict", 200, 0.001, rows, ("a", "b"), outputs, None, None
        )
    lines.flush()
    os.close(write)
    quiet, loud = os.read(read, 65536).decode().splitlines()
    os.close(read)
    assert '"rows":1' in quiet and "inputs" not in quiet and "outputs" not in quiet
    assert '"inputs":[{"a":1.0,"b":2.0}]' in loud and '"outputs"' in loud


def test_a_bound_broken_by_a_redacted_feature_does_not_quote_the_value():
    schema = InputSchema(
        features=(Feature("a", maximum=1), Feature("b")), shape=(-1, 2), redacted=frozenset("a")
    )
    with pytest.raises(BadRequest) as err:
        rows_to_array([[7.25, 0.0]], schema, "instances")
    assert str(err.value) == "instances: row 0, feature 'a': [REDACTED] is above the maximum 1"
