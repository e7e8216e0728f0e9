"""Waiting for a condition with a deadline, the one polling loop of the tests, benchmarks and demo."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(AssertionError):
    """The condition never held; an AssertionError so pytest reports a failed test, not an error."""


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.5, what: str = "") -> Any:
    """Polls until predicate() is truthy and returns its value; raises WaitTimeout with the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise WaitTimeout(f"{what or 'condition'} not met within {timeout}s (last value: {value!r})")
