"""Status text is cut to each field's limit at one place (the status models), so no message - a check's
finding, a long dataset header, an API server's answer - can make a status fail validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modeldeploy.api import (
    CheckResult,
    Condition,
    HistoryEntry,
    ModelDeploymentStatus,
    Outcome,
    RolloutState,
)
from modeldeploy.api.status import CUT_MARK, cut
from modeldeploy.desired import failure_status


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("eleven char", 10, "eleven ch" + CUT_MARK),
        ("", 0, ""),
    ],
)
def test_cut_keeps_what_fits_and_marks_what_it_shortened(text, limit, expected):
    assert cut(text, limit) == expected
    assert len(cut(text, limit)) <= limit


def _parsed_rollout_message() -> str:
    parsed = ModelDeploymentStatus.model_validate({"rollout": {"message": "p" * 5000}})
    assert parsed.rollout is not None
    return parsed.rollout.message


@pytest.mark.parametrize(
    ("read", "limit"),
    [
        (lambda: CheckResult(message="m" * 9000).message, 4096),
        (lambda: HistoryEntry(revision="r", outcome=Outcome.Aborted, reason="r" * 9000).reason, 4096),
        (lambda: Condition(type="Ready", status="False", message="c" * 40000).message, 32768),
        (lambda: Condition(type="Ready", status="False", reason="R" * 2000).reason, 1024),
        (_parsed_rollout_message, 4096),
    ],
    ids=["check message", "history reason", "condition message", "condition reason", "parsed rollout"],
)
def test_a_text_over_its_limit_is_cut_on_construction(read, limit):
    text = read()
    assert len(text) == limit and text.endswith(CUT_MARK)


def test_a_text_over_its_limit_is_cut_on_assignment():
    state = RolloutState()
    state.message = "a" * 5000
    state.abort_reason = "b" * 5000
    assert len(state.message) == 4096 and len(state.abort_reason or "") == 4096


def test_a_failure_status_cuts_its_message_to_the_condition_limit():
    body = {"metadata": {"generation": 3}, "status": {}}
    failed = failure_status(body, "ApplyRejected", "e" * 100_000, "Pending", datetime.now(UTC))
    for condition in failed["conditions"]:
        assert len(condition["message"]) <= 32768
    ModelDeploymentStatus.model_validate(failed)
