"""A write the API server refuses (validation, admission, quota) is no reason to retry at once: which
answers count as refusals, and how long the operator waits after each refusal in a row."""

from __future__ import annotations

import pytest

from modeldeploy.k8s import ApiError
from modeldeploy.reconcile.apply import Rejections, is_rejection, rejection_retry_seconds


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        (400, True),  # bad request: the manifest itself
        (403, True),  # forbidden: RBAC, quota, admission webhook
        (422, True),  # invalid: field validation
        (404, False),  # gone meanwhile: the next pass sees it
        (408, False),  # timeout
        (409, False),  # conflict: retried with a fresh read
        (429, False),  # throttled: the client retries
        (500, False),  # the server's trouble, not the spec's
        (0, False),  # no answer at all
    ],
)
def test_only_answers_a_retry_cannot_fix_count_as_refusals(status, refusal):
    assert is_rejection(ApiError(status, "message")) is refusal


@pytest.mark.parametrize(
    ("refusals", "seconds"),
    [(1, 5.0), (2, 10.0), (3, 20.0), (5, 80.0), (6, 160.0), (7, 300.0), (50, 300.0)],
)
def test_the_wait_doubles_from_five_seconds_and_is_capped_at_five_minutes(refusals, seconds):
    assert rejection_retry_seconds(refusals) == seconds


def test_refusals_count_per_object_and_generation_and_a_new_generation_starts_afresh():
    rejections = Rejections()
    assert rejections.record(("ml", "iris"), 1, now=100.0) == 5.0
    assert rejections.record(("ml", "iris"), 1, now=105.0) == 10.0
    assert rejections.wait_left(("ml", "iris"), 1, now=110.0) == 5.0
    assert rejections.wait_left(("ml", "iris"), 1, now=200.0) == 0.0
    assert rejections.wait_left(("ml", "wine"), 1, now=110.0) == 0.0  # another object is not held
    assert rejections.wait_left(("ml", "iris"), 2, now=110.0) == 0.0  # an edited spec is tried at once
    assert rejections.record(("ml", "iris"), 2, now=110.0) == 5.0
    rejections.clear(("ml", "iris"))
    assert rejections.wait_left(("ml", "iris"), 2, now=110.0) == 0.0
